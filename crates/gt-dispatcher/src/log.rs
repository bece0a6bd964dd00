//! The instruction log (`GT_INSTRUCTION_LOG=path`, `gt dispatcher --log PATH`): one line per
//! event the dispatcher sees or produces.
//!
//! ```text
//! <elapsed>s | #<seq> | <EVENT> | <source> | <command> | <size> | <details>
//! 1.608s | #0011 | RECV         | CLIENT s1 embedded          | Exec            |       117B | out=t2 op=add inputs=t0,t1
//! ```
//! Events: `RECV` (client → dispatcher), `SEND` (dispatcher → client), `WORKER_SEND` (dispatcher →
//! worker), `WORKER_RECV` (worker → dispatcher), `MODIFIER_INJECT` (worker messages the router
//! injected: the Send/Recv pairs of worker-to-worker moves and the Free of their temporaries),
//! `CONNECT` / `DISCONNECT`, and `ERROR`. The size is the message's postcard-encoded size (`0B`
//! for events that are not messages, whose command is `-`).
//!
//! Cost: the core holds an `Option<InstructionLog>`, so nothing is formatted when logging is off.
//! When on, lines are formatted on the core thread into one reused `String`; [`InstructionLog::flush`]
//! (called at the end of every core flush) hands the complete chunk to a writer thread, which
//! writes it through a `BufWriter` and flushes the file whenever it has nothing more queued (and
//! at least every 100 ms, and when the log is dropped). Buffers travel back to the core for reuse.

use crossbeam_channel::{Receiver, Sender};
use gt_core::{Error, SessionId, WorkerId};
use gt_proto::{ClientMsg, ClientReply, TensorData, WorkerMsg, WorkerReply};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A chunk bigger than this is handed to the writer before the next flush.
const CHUNK: usize = 64 << 10;
/// Capacity of each buffer (a full chunk plus a few long lines, so they never grow).
const CAPACITY: usize = 2 * CHUNK;

/// The kind of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Recv,
    Send,
    WorkerSend,
    WorkerRecv,
    ModifierInject,
    Connect,
    Disconnect,
    Error,
}

impl Kind {
    /// The EVENT column.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Recv => "RECV",
            Kind::Send => "SEND",
            Kind::WorkerSend => "WORKER_SEND",
            Kind::WorkerRecv => "WORKER_RECV",
            Kind::ModifierInject => "MODIFIER_INJECT",
            Kind::Connect => "CONNECT",
            Kind::Disconnect => "DISCONNECT",
            Kind::Error => "ERROR",
        }
    }
}

/// The source column: who the event is about.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// An admitted client session and its name.
    Client(SessionId, &'a str),
    /// A client without a session yet (e.g. refused).
    Joining(&'a str),
    /// A worker.
    Worker(WorkerId),
}

/// An open instruction log. Dropping it writes everything logged so far.
pub struct InstructionLog {
    start: Instant,
    seq: u64,
    buf: String,
    chunks: Option<Sender<String>>,
    spare: Receiver<String>,
    writer: Option<JoinHandle<()>>,
}

impl InstructionLog {
    /// Creates (truncates) `path` and starts the writer thread; elapsed times count from now.
    pub fn create(path: &Path) -> std::io::Result<InstructionLog> {
        let file = std::fs::File::create(path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create the instruction log {}: {e}", path.display()),
            )
        })?;
        let (chunks, rx) = crossbeam_channel::unbounded::<String>();
        let (back, spare) = crossbeam_channel::bounded(16);
        let name = path.display().to_string();
        let writer = std::thread::Builder::new()
            .name("gt-instruction-log".into())
            .spawn(move || write_loop(file, rx, back, name))?;
        Ok(InstructionLog {
            start: Instant::now(),
            seq: 0,
            buf: String::with_capacity(CAPACITY),
            chunks: Some(chunks),
            spare,
            writer: Some(writer),
        })
    }

    /// Hands the lines formatted so far to the writer thread (which writes and flushes them).
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| String::with_capacity(CAPACITY));
        let chunk = std::mem::replace(&mut self.buf, next);
        if let Some(tx) = &self.chunks {
            let _ = tx.send(chunk);
        }
    }

    /// Writes the columns before the details.
    fn head(&mut self, kind: Kind, src: Source, command: &str, size: usize) {
        // Integer milliseconds: float formatting with a precision takes a slow path.
        let ms = self.start.elapsed().as_millis();
        let b = &mut self.buf;
        let _ = write!(
            b,
            "{}.{:03}s | #{:04} | {:<12} | ",
            ms / 1000,
            ms % 1000,
            self.seq,
            kind.label()
        );
        self.seq += 1;
        let at = b.len();
        let _ = match src {
            Source::Client(sid, name) => write!(b, "CLIENT {sid} {name}"),
            Source::Joining(name) => write!(b, "CLIENT - {name}"),
            Source::Worker(w) => write!(b, "WORKER {}", w.0),
        };
        while b.len() - at < 27 {
            b.push(' ');
        }
        let _ = write!(b, " | {command:<15} | {size:>10}B | ");
    }

    fn end(&mut self) {
        self.buf.push('\n');
        if self.buf.len() >= CHUNK {
            self.flush();
        }
    }

    /// A line that is not a message (connects, disconnects, errors).
    pub fn note(&mut self, kind: Kind, src: Source, details: std::fmt::Arguments) {
        self.head(kind, src, "-", 0);
        let _ = self.buf.write_fmt(details);
        self.end();
    }

    /// A client instruction (`RECV`).
    pub fn client_msg(&mut self, sid: SessionId, name: &str, m: &ClientMsg) {
        let (cmd, size) = (client_msg_name(m), size_of(m));
        self.head(Kind::Recv, Source::Client(sid, name), cmd, size);
        let b = &mut self.buf;
        let _ = match m {
            ClientMsg::Exec { out, op, inputs } => {
                let _ = write!(b, "out={out} op={op}");
                list(b, inputs.iter());
                Ok(())
            }
            ClientMsg::Upload { out, data } => {
                let _ = write!(b, "out={out} ");
                data_summary(b, data);
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
        self.end();
    }

    /// A reply to a client (`SEND`).
    pub fn client_reply(&mut self, sid: SessionId, name: &str, r: &ClientReply) {
        let (cmd, size) = match r {
            ClientReply::Data { .. } => ("Data", size_of(r)),
            ClientReply::Stats { .. } => ("Stats", size_of(r)),
            ClientReply::Synced { .. } => ("Synced", size_of(r)),
            ClientReply::DispatcherStats { .. } => ("DispatcherStats", size_of(r)),
        };
        self.head(Kind::Send, Source::Client(sid, name), cmd, size);
        let b = &mut self.buf;
        match r {
            ClientReply::Data { req, result } => {
                let _ = write!(b, "req={} ", req.0);
                data_result(b, result);
            }
            ClientReply::Stats { req, result } => {
                let _ = write!(b, "req={} ", req.0);
                match result {
                    Ok(list) => drop(write!(b, "workers={}", list.len())),
                    Err(e) => error(b, e),
                }
            }
            ClientReply::Synced { req, result } => {
                let _ = write!(b, "req={} ", req.0);
                match result {
                    Ok(()) => b.push_str("ok"),
                    Err(e) => error(b, e),
                }
            }
            ClientReply::DispatcherStats { req, result } => {
                let _ = write!(b, "req={} ", req.0);
                match result {
                    Ok(st) => drop(write!(b, "sharded_ops={}", st.shard.sharded_ops)),
                    Err(e) => error(b, e),
                }
            }
        }
        self.end();
    }

    /// A message to a worker (`WORKER_SEND`, or `MODIFIER_INJECT` when the router injected it).
    pub fn worker_msg(&mut self, kind: Kind, w: WorkerId, m: &WorkerMsg) {
        let (cmd, size) = (worker_msg_name(m), size_of(m));
        self.head(kind, Source::Worker(w), cmd, size);
        let b = &mut self.buf;
        let _ = match m {
            WorkerMsg::Exec { out, op, inputs } => {
                let _ = write!(b, "out={out} op={op}");
                list(b, inputs.iter());
                Ok(())
            }
            WorkerMsg::Upload { out, data } => {
                let _ = write!(b, "out={out} ");
                data_summary(b, data);
                Ok(())
            }
            WorkerMsg::Free { key } => write!(b, "key={key}"),
            WorkerMsg::Alias { out, src } => write!(b, "out={out} src={src}"),
            WorkerMsg::FreeSession { session } => write!(b, "session={session}"),
            WorkerMsg::Poison { key, error: e } => {
                let _ = write!(b, "key={key} ");
                error(b, e);
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
                error(b, e);
                Ok(())
            }
            WorkerMsg::Ping => Ok(()),
        };
        self.end();
    }

    /// A reply from a worker (`WORKER_RECV`).
    pub fn worker_reply(&mut self, w: WorkerId, r: &WorkerReply) {
        let cmd = match r {
            WorkerReply::Data { .. } => "Data",
            WorkerReply::Stats { .. } => "Stats",
            WorkerReply::BarrierDone { .. } => "BarrierDone",
            WorkerReply::Pong => "Pong",
            WorkerReply::HotPath { .. } => "HotPath",
        };
        self.head(Kind::WorkerRecv, Source::Worker(w), cmd, size_of(r));
        let b = &mut self.buf;
        match r {
            WorkerReply::Data { req, result } => {
                let _ = write!(b, "req={} ", req.0);
                data_result(b, result);
            }
            WorkerReply::Stats { req, stats } => {
                let _ = write!(b, "req={} executed={}", req.0, stats.ops_executed);
            }
            WorkerReply::BarrierDone { req } => drop(write!(b, "req={}", req.0)),
            WorkerReply::Pong => {}
            WorkerReply::HotPath { session, event } => {
                let _ = write!(b, "session={session} {event:?}");
            }
        }
        self.end();
    }
}

impl Drop for InstructionLog {
    fn drop(&mut self) {
        self.flush();
        self.chunks = None;
        if let Some(t) = self.writer.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(file: std::fs::File, rx: Receiver<String>, back: Sender<String>, name: String) {
    let mut out = std::io::BufWriter::with_capacity(256 << 10, file);
    let mut dirty = false;
    let mut last = Instant::now();
    let mut failed = false;
    loop {
        let done = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(mut chunk) => {
                if !failed {
                    if let Err(e) = out.write_all(chunk.as_bytes()) {
                        tracing::error!(target: "gt::dispatcher", "writing the instruction log {name}: {e}");
                        failed = true;
                    }
                }
                chunk.clear();
                let _ = back.try_send(chunk);
                dirty = true;
                false
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => false,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => true,
        };
        // Flush when nothing more is queued (the core went idle), or every 100 ms under load.
        if dirty && (done || rx.is_empty() || last.elapsed() >= Duration::from_millis(100)) {
            let _ = out.flush();
            dirty = false;
            last = Instant::now();
        }
        if done {
            break;
        }
    }
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
    }
}

fn size_of<T: Serialize>(m: &T) -> usize {
    postcard::experimental::serialized_size(m).unwrap_or(0)
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
