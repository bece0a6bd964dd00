//! Turning records into text. The hot records (`Exec`, `Free`) are formatted on the writer thread
//! with hand-rolled integer formatting; the details of rare events are formatted by the core
//! when they happen (they may borrow data the core keeps, like error messages).

use super::{Kind, Record, Src};
use gt_core::{Error, Key, SessionId, WorkerId};
use gt_proto::{
    ClientMsg, ClientReply, ExecSpan, HotPathEvent, TensorData, WorkerMsg, WorkerReply,
};
use rustc_hash::FxHashMap;
use std::fmt::Write as _;

/// Formats records into lines; owned by the writer thread.
pub(crate) struct Formatter {
    cols: Columns,
    /// The ops the core numbered: their Display text and encoded size.
    ops: FxHashMap<u32, (String, usize)>,
}

/// What the columns before the details need.
struct Columns {
    seq: u64,
    /// The source column of each client session, padded (`CLIENT s1 name      `).
    clients: FxHashMap<SessionId, Vec<u8>>,
    /// The source column of each worker, padded.
    workers: Vec<Vec<u8>>,
    /// The elapsed column of the last line (records of one core round share their time).
    last_ms: u64,
    elapsed: Vec<u8>,
}

impl Formatter {
    pub(crate) fn new() -> Formatter {
        Formatter {
            cols: Columns {
                seq: 0,
                clients: FxHashMap::default(),
                workers: Vec::new(),
                last_ms: u64::MAX,
                elapsed: Vec::new(),
            },
            ops: FxHashMap::default(),
        }
    }

    /// Appends the line for `r` (nothing for records that are not lines).
    pub(crate) fn line(&mut self, b: &mut Vec<u8>, r: &Record) {
        match r {
            Record::Name { sid, name } => {
                let col = source_column(&format!("CLIENT {sid} {name}"));
                self.cols.clients.insert(*sid, col);
            }
            Record::Monitor(_) => {}
            Record::DefineOp { n, op } => {
                self.ops.insert(*n, (op.to_string(), super::size_of(op)));
            }
            Record::ForgetOp { n } => {
                self.ops.remove(n);
            }
            Record::ClientExec {
                at,
                sid,
                out,
                op,
                inputs,
            } => {
                let (text, op_size) = self
                    .ops
                    .get(op)
                    .map(|(t, n)| (t.as_str(), *n))
                    .unwrap_or(("?", 0));
                let size = 1 + varint_len(out.0) + op_size + ids_len(inputs.iter().map(|t| t.0));
                self.cols
                    .head(b, *at, Kind::Recv, &Src::Client(*sid), "Exec", size);
                b.extend_from_slice(b"out=t");
                uint(b, out.0);
                b.extend_from_slice(b" op=");
                b.extend_from_slice(text.as_bytes());
                for (i, x) in inputs.iter().enumerate() {
                    b.extend_from_slice(if i == 0 { b" inputs=t" } else { b",t" });
                    uint(b, x.0);
                }
                b.push(b'\n');
            }
            Record::ClientFree { at, sid, id } => {
                let size = 1 + varint_len(id.0);
                self.cols
                    .head(b, *at, Kind::Recv, &Src::Client(*sid), "Free", size);
                b.extend_from_slice(b"id=t");
                uint(b, id.0);
                b.push(b'\n');
            }
            Record::WorkerExec {
                at,
                kind,
                w,
                out,
                op,
                inputs,
            } => {
                let (text, op_size) = self
                    .ops
                    .get(op)
                    .map(|(t, n)| (t.as_str(), *n))
                    .unwrap_or(("?", 0));
                let size = 1 + varint_len(out.0) + op_size + ids_len(inputs.iter().map(|k| k.0));
                self.cols
                    .head(b, *at, *kind, &Src::Worker(*w), "Exec", size);
                b.extend_from_slice(b"out=");
                key(b, *out);
                b.extend_from_slice(b" op=");
                b.extend_from_slice(text.as_bytes());
                for (i, x) in inputs.iter().enumerate() {
                    b.extend_from_slice(if i == 0 { b" inputs=" } else { b"," });
                    key(b, *x);
                }
                b.push(b'\n');
            }
            Record::WorkerFree {
                at,
                kind,
                w,
                key: k,
            } => {
                let size = 1 + varint_len(k.0);
                self.cols
                    .head(b, *at, *kind, &Src::Worker(*w), "Free", size);
                b.extend_from_slice(b"key=");
                key(b, *k);
                b.push(b'\n');
            }
            Record::Text {
                at,
                kind,
                src,
                cmd,
                size,
                details,
            } => {
                self.cols.head(b, *at, *kind, src, cmd, *size);
                b.extend_from_slice(details.as_bytes());
                b.push(b'\n');
            }
        }
    }
}

impl Columns {
    /// The columns before the details.
    fn head(&mut self, b: &mut Vec<u8>, at_us: u64, kind: Kind, src: &Src, cmd: &str, size: usize) {
        let ms = at_us / 1000;
        if ms != self.last_ms {
            self.last_ms = ms;
            self.elapsed.clear();
            uint(&mut self.elapsed, ms / 1000);
            let frac = ms % 1000;
            self.elapsed.extend_from_slice(&[
                b'.',
                b'0' + (frac / 100) as u8,
                b'0' + (frac / 10 % 10) as u8,
                b'0' + (frac % 10) as u8,
            ]);
            self.elapsed.extend_from_slice(b"s | #");
        }
        b.extend_from_slice(&self.elapsed);
        padded(b, self.seq, 4, b'0');
        self.seq += 1;
        b.extend_from_slice(b" | ");
        b.extend_from_slice(kind.padded().as_bytes());
        b.extend_from_slice(b" | ");
        match src {
            Src::Client(sid) => match self.clients.get(sid) {
                Some(col) => b.extend_from_slice(col),
                None => b.extend_from_slice(&source_column(&format!("CLIENT {sid} ?"))),
            },
            Src::Joining(name) => {
                b.extend_from_slice(&source_column(&format!("CLIENT - {name}")));
            }
            Src::Worker(w) => {
                let i = w.0 as usize;
                while self.workers.len() <= i {
                    let col = source_column(&format!("WORKER {}", self.workers.len()));
                    self.workers.push(col);
                }
                b.extend_from_slice(&self.workers[i]);
            }
        }
        b.extend_from_slice(b" | ");
        pad(b, cmd, 15);
        b.extend_from_slice(b" | ");
        padded(b, size as u64, 10, b' ');
        b.extend_from_slice(b"B | ");
    }
}

/// A source column padded to 27 characters, as `format!("{:<27}")` would.
fn source_column(s: &str) -> Vec<u8> {
    format!("{s:<27}").into_bytes()
}

/// Bytes of a postcard varint.
fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of a postcard sequence of ids (its length, then each id).
fn ids_len(ids: impl ExactSizeIterator<Item = u64>) -> usize {
    varint_len(ids.len() as u64) + ids.map(varint_len).sum::<usize>()
}

/// The decimal digits of `n`, right-aligned in the returned buffer from the returned index.
fn digits(mut n: u64) -> ([u8; 20], usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    (tmp, i)
}

/// Appends `n` in decimal.
fn uint(b: &mut Vec<u8>, n: u64) {
    let (tmp, i) = digits(n);
    b.extend_from_slice(&tmp[i..]);
}

/// Appends `n` in decimal, left-padded with `fill` to `width`.
fn padded(b: &mut Vec<u8>, n: u64, width: usize, fill: u8) {
    let (tmp, i) = digits(n);
    for _ in (tmp.len() - i)..width {
        b.push(fill);
    }
    b.extend_from_slice(&tmp[i..]);
}

fn pad(b: &mut Vec<u8>, s: &str, width: usize) {
    b.extend_from_slice(s.as_bytes());
    for _ in s.len()..width {
        b.push(b' ');
    }
}

fn key(b: &mut Vec<u8>, k: Key) {
    b.push(b's');
    uint(b, k.session().0 as u64);
    b.push(b':');
    uint(b, k.local());
}

/// The variant name of a client message.
pub fn client_msg_name(m: &ClientMsg) -> &'static str {
    match m {
        ClientMsg::Exec { .. } => "Exec",
        ClientMsg::Upload { .. } => "Upload",
        ClientMsg::Free { .. } => "Free",
        ClientMsg::ToWorker { .. } => "ToWorker",
        ClientMsg::Read { .. } => "Read",
        ClientMsg::Stats { .. } => "Stats",
        ClientMsg::Sync { .. } => "Sync",
        ClientMsg::ScopeEnter { .. } => "ScopeEnter",
        ClientMsg::ScopeExit => "ScopeExit",
        ClientMsg::Configure { .. } => "Configure",
        ClientMsg::DispatcherStats { .. } => "DispatcherStats",
    }
}

/// The variant name of a worker message.
pub fn worker_msg_name(m: &WorkerMsg) -> &'static str {
    match m {
        WorkerMsg::Exec { .. } => "Exec",
        WorkerMsg::Upload { .. } => "Upload",
        WorkerMsg::Free { .. } => "Free",
        WorkerMsg::Alias { .. } => "Alias",
        WorkerMsg::FreeSession { .. } => "FreeSession",
        WorkerMsg::Poison { .. } => "Poison",
        WorkerMsg::Read { .. } => "Read",
        WorkerMsg::Stats { .. } => "Stats",
        WorkerMsg::Barrier { .. } => "Barrier",
        WorkerMsg::Send { .. } => "Send",
        WorkerMsg::Recv { .. } => "Recv",
        WorkerMsg::Peers { .. } => "Peers",
        WorkerMsg::PeerLost { .. } => "PeerLost",
        WorkerMsg::Ping => "Ping",
        WorkerMsg::Timing { .. } => "Timing",
    }
}

/// The details of a client message.
pub(crate) fn client_msg_details(m: &ClientMsg) -> String {
    let mut b = String::new();
    let _ = match m {
        ClientMsg::Exec { out, op, inputs } => {
            let _ = write!(b, "out={out} op={op}");
            list(&mut b, inputs.iter());
            Ok(())
        }
        ClientMsg::Upload { out, data } => {
            let _ = write!(b, "out={out} ");
            data_summary(&mut b, data);
            Ok(())
        }
        ClientMsg::Free { id } => write!(b, "id={id}"),
        ClientMsg::ToWorker { out, src, worker } => {
            write!(b, "out={out} src={src} worker={}", worker.0)
        }
        ClientMsg::Read { req, id } => write!(b, "req={} id={id}", req.0),
        ClientMsg::Stats { req } | ClientMsg::Sync { req } => write!(b, "req={}", req.0),
        ClientMsg::ScopeEnter { name } => write!(b, "name={name}"),
        ClientMsg::ScopeExit => Ok(()),
        ClientMsg::Configure { req, yaml } => write!(b, "req={} bytes={}", req.0, yaml.len()),
        ClientMsg::DispatcherStats { req } => write!(b, "req={}", req.0),
    };
    b
}

/// The command and details of a reply to a client.
pub(crate) fn client_reply(r: &ClientReply) -> (&'static str, String) {
    let mut b = String::new();
    let cmd = match r {
        ClientReply::Data { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            data_result(&mut b, result);
            "Data"
        }
        ClientReply::Stats { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            match result {
                Ok(list) => drop(write!(b, "workers={}", list.len())),
                Err(e) => error(&mut b, e),
            }
            "Stats"
        }
        ClientReply::Synced { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            match result {
                Ok(()) => b.push_str("ok"),
                Err(e) => error(&mut b, e),
            }
            "Synced"
        }
        ClientReply::DispatcherStats { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            match result {
                Ok(st) => drop(write!(b, "sharded_ops={}", st.shard.sharded_ops)),
                Err(e) => error(&mut b, e),
            }
            "DispatcherStats"
        }
    };
    (cmd, b)
}

/// The details of a message to a worker.
pub(crate) fn worker_msg_details(m: &WorkerMsg) -> String {
    let mut b = String::new();
    let _ = match m {
        WorkerMsg::Exec { out, op, inputs } => {
            let _ = write!(b, "out={out} op={op}");
            list(&mut b, inputs.iter());
            Ok(())
        }
        WorkerMsg::Upload { out, data } => {
            let _ = write!(b, "out={out} ");
            data_summary(&mut b, data);
            Ok(())
        }
        WorkerMsg::Free { key } => write!(b, "key={key}"),
        WorkerMsg::Alias { out, src } => write!(b, "out={out} src={src}"),
        WorkerMsg::FreeSession { session } => write!(b, "session={session}"),
        WorkerMsg::Poison { key, error: e } => {
            let _ = write!(b, "key={key} ");
            error(&mut b, e);
            Ok(())
        }
        WorkerMsg::Read { req, key } => write!(b, "req={} key={key}", req.0),
        WorkerMsg::Stats { req } | WorkerMsg::Barrier { req } => write!(b, "req={}", req.0),
        WorkerMsg::Send { key, to, xfer } => write!(b, "key={key} to={} xfer={xfer}", to.0),
        WorkerMsg::Recv { out, from, xfer } => {
            write!(b, "out={out} from={} xfer={xfer}", from.0)
        }
        WorkerMsg::Peers { peers } => write!(b, "peers={}", peers.len()),
        WorkerMsg::PeerLost { worker, error: e } => {
            let _ = write!(b, "worker={} ", worker.0);
            error(&mut b, e);
            Ok(())
        }
        WorkerMsg::Ping => Ok(()),
        WorkerMsg::Timing { on } => write!(b, "on={on}"),
    };
    b
}

/// The command and details of a worker's reply (not hot-path events or timing records).
pub(crate) fn worker_reply(r: &WorkerReply) -> (&'static str, String) {
    let mut b = String::new();
    let cmd = match r {
        WorkerReply::Data { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            data_result(&mut b, result);
            "Data"
        }
        WorkerReply::Stats { req, stats } => {
            let _ = write!(
                b,
                "req={} executed={} live={} bytes={}",
                req.0, stats.ops_executed, stats.live_tensors, stats.bytes_in_use
            );
            "Stats"
        }
        WorkerReply::BarrierDone { req } => {
            let _ = write!(b, "req={}", req.0);
            "BarrierDone"
        }
        WorkerReply::Pong => "Pong",
        WorkerReply::HotPath { session, event } => {
            let _ = write!(b, "session={session} {event:?}");
            "HotPath"
        }
        WorkerReply::Load(l) => {
            let _ = write!(
                b,
                "busy_us={} uptime_us={} handled={} queued={}",
                l.busy_ns / 1000,
                l.uptime_ns / 1000,
                l.handled,
                l.queued
            );
            "Load"
        }
        WorkerReply::Timing { spans } => {
            let _ = write!(b, "spans={}", spans.len());
            "Timing"
        }
    };
    (cmd, b)
}

/// The kind and details of a hot-path event reported by worker `w`.
pub(crate) fn hotpath(w: WorkerId, e: &HotPathEvent) -> (Kind, String) {
    match e {
        HotPathEvent::Start { signature, len } => (
            Kind::HotpathStart,
            format!("signature={signature:016x} len={len} worker={}", w.0),
        ),
        HotPathEvent::End {
            signature,
            compiled,
        } => (
            Kind::HotpathEnd,
            format!(
                "signature={signature:016x} compiled={compiled} worker={}",
                w.0
            ),
        ),
    }
}

/// The details of a timing record that started `t_us` after the log started.
pub(crate) fn exec_span(s: &ExecSpan, t_us: u64) -> String {
    format!(
        "key={} op={} t={}.{:06}s dur={}.{:03}us",
        s.key,
        s.op,
        t_us / 1_000_000,
        t_us % 1_000_000,
        s.dur_ns / 1000,
        s.dur_ns % 1000
    )
}

/// ` inputs=a,b` (nothing when there are none).
fn list<T: std::fmt::Display>(b: &mut String, items: impl Iterator<Item = T>) {
    for (i, x) in items.enumerate() {
        b.push_str(if i == 0 { " inputs=" } else { "," });
        let _ = write!(b, "{x}");
    }
}

fn data_summary(b: &mut String, d: &TensorData) {
    let _ = write!(b, "dtype={} shape=", d.dtype);
    for (i, n) in d.shape.dims().iter().enumerate() {
        if i > 0 {
            b.push('x');
        }
        let _ = write!(b, "{n}");
    }
}

fn data_result(b: &mut String, r: &Result<TensorData, Error>) {
    match r {
        Ok(d) => data_summary(b, d),
        Err(e) => error(b, e),
    }
}

fn error(b: &mut String, e: &Error) {
    let _ = write!(b, "error={e}");
}
