//! The instruction log (`GT_INSTRUCTION_LOG=path`, `gt dispatcher --log PATH`): one line per
//! event the dispatcher sees or produces, written to a file and/or streamed to monitors.
//!
//! ```text
//! <elapsed>s | #<seq> | <EVENT> | <source> | <command> | <size> | <details>
//! 1.608s | #0011 | RECV         | CLIENT s1 embedded          | Exec            |       117B | out=t2 op=add inputs=t0,t1
//! ```
//! Events: `RECV` (client → dispatcher), `SEND` (dispatcher → client), `WORKER_SEND` (dispatcher →
//! worker), `WORKER_RECV` (worker → dispatcher), `MODIFIER_INJECT` (worker messages the router
//! injected: the Send/Recv pairs of worker-to-worker moves and the Free of their temporaries),
//! `HOTPATH_START` / `HOTPATH_END` (a worker's hot-path detector entered or left a hot sequence
//! of a client's stream), `EXEC` (a worker's timing record of one instruction, while timing is
//! on), `CONNECT` / `DISCONNECT`, and `ERROR`. The size is the message's postcard-encoded size
//! (`0B` for events that are not messages, whose command is `-`).
//!
//! Cost: the core holds an `Option<InstructionLog>`, so nothing happens when logging is off. When
//! on, the core only pushes small binary [`Record`]s (the hot ones — client and worker `Exec` and
//! `Free`, and workers' `EXEC` timing spans — copy a few ids and numbers; rare events format
//! their details on the spot) stamped with the time of the core's current round. [`InstructionLog::flush`] (end of every core round) hands
//! the batch to a writer thread ([`writer`]) that numbers, formats and writes the lines, and
//! streams them to monitors.

mod format;
mod render;
pub mod writer;

use gt_core::{Key, SessionId, TensorId, WorkerId};
use gt_ops::Op;
use gt_proto::{ClientMsg, ClientReply, MonitorMsg, WorkerMsg, WorkerReply};
use gt_transport::Tx;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

pub use format::{client_msg_name, worker_msg_name};

/// Records per batch before it is handed to the writer early.
pub(crate) const BATCH: usize = 1024;
/// Records that make a batch worth waking the writer for.
const HANDOFF: usize = BATCH;
/// A smaller batch is handed over once its oldest record is this old (µs). The heartbeat tick
/// runs a core round at least every 250 ms, so an idle dispatcher's lines are never stuck.
const HANDOFF_US: u64 = 5_000;
/// A client's sync point (a read, a sync, a stats request) hands the batch over when at least
/// this many records came since the client's previous one. The client then waits for its
/// reply, so the writer formats while the client's core would only poll: at the end of a
/// training step (214 records for the seed-size MLP step) that took the log's cost from +66% to
/// about +43% of the step. A short stretch between sync points is left for later: the wake-up
/// costs the core several µs, and handing over the 8 records of every `x = x + 1; x.item()`
/// round trip (or every 16th of them) made those round trips slower (median 4.6 → 4.9 µs).
const SYNC_STRETCH: usize = 64;
/// Op names of `EXEC` spans the core numbers (op names and instruction kinds: a few dozen; a
/// worker sending more, which only a broken one would, gets the rest logged as text).
const NAMES: usize = 1024;
/// Ops the core remembers by number (most recently used first, found by a linear search).
/// A training step uses a few dozen distinct ops (the seed-size MLP step 22, counting each
/// attribute variant: `reshape([32])`, `mul(x, scalar=0.01)`, …). With room for 8, nearly every
/// instruction of such a step evicted an op and defined one anew (a clone, a box, and on the
/// writer a `format!` of the op), and the log cost the step +95% instead of +65%.
const OPS: usize = 64;

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
    HotpathStart,
    HotpathEnd,
    Exec,
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
            Kind::HotpathStart => "HOTPATH_START",
            Kind::HotpathEnd => "HOTPATH_END",
            Kind::Exec => "EXEC",
        }
    }

    /// The EVENT column padded to 12 characters (longer labels are not cut).
    pub fn padded(self) -> &'static str {
        match self {
            Kind::Recv => "RECV        ",
            Kind::Send => "SEND        ",
            Kind::WorkerSend => "WORKER_SEND ",
            Kind::WorkerRecv => "WORKER_RECV ",
            Kind::ModifierInject => "MODIFIER_INJECT",
            Kind::Connect => "CONNECT     ",
            Kind::Disconnect => "DISCONNECT  ",
            Kind::Error => "ERROR       ",
            Kind::HotpathStart => "HOTPATH_START",
            Kind::HotpathEnd => "HOTPATH_END ",
            Kind::Exec => "EXEC        ",
        }
    }

    /// Every kind, for parsers and tests.
    pub const ALL: [Kind; 11] = [
        Kind::Recv,
        Kind::Send,
        Kind::WorkerSend,
        Kind::WorkerRecv,
        Kind::ModifierInject,
        Kind::Connect,
        Kind::Disconnect,
        Kind::Error,
        Kind::HotpathStart,
        Kind::HotpathEnd,
        Kind::Exec,
    ];
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

/// The source of a record (client names are looked up by the writer).
#[derive(Clone, Debug)]
pub(crate) enum Src {
    Client(SessionId),
    Joining(String),
    Worker(WorkerId),
}

/// One event, as the core pushes it. Times are microseconds since the log started.
pub(crate) enum Record {
    /// A client session's name (sent before its first line; writes nothing).
    Name { sid: SessionId, name: String },
    /// A new monitor: the writer streams lines to it until it closes.
    Monitor(Tx<MonitorMsg>),
    /// Op number `n` is `op` until forgotten (ops travel once, records carry their number).
    DefineOp { n: u32, op: Box<Op> },
    /// Op number `n` will not be used again.
    ForgetOp { n: u32 },
    ClientExec {
        ms: u32,
        sid: SessionId,
        out: TensorId,
        op: u32,
        /// The first `n` of `ins` are the inputs.
        n: u8,
        ins: [u64; MAX_INS],
    },
    ClientFree {
        ms: u32,
        sid: SessionId,
        id: TensorId,
    },
    WorkerExec {
        ms: u32,
        kind: Kind,
        w: WorkerId,
        out: Key,
        op: u32,
        n: u8,
        ins: [u64; MAX_INS],
    },
    WorkerFree {
        ms: u32,
        kind: Kind,
        w: WorkerId,
        key: Key,
    },
    /// Name number `n` (of an `EXEC` span's op) is `name`.
    DefineName { n: u16, name: Box<str> },
    /// A worker's timing record of one instruction (`EXEC`): started `t_us` after the log
    /// started, took `dur_ns`.
    Span {
        ms: u32,
        w: WorkerId,
        key: Key,
        name: u16,
        t_us: u64,
        dur_ns: u64,
    },
    /// Anything else, its details already formatted (boxed: rare, and it would double the size
    /// of every record).
    Text(Box<TextRecord>),
}

/// Inputs a hot `Exec` record holds inline (with their count beside them, so that a record is
/// 40 bytes): copying them is two stores, where cloning the message's `SmallVec` went through its
/// generic `extend` and cost more than the rest of the record. Ops with more inputs are rare and
/// logged as [`Record::Text`].
pub(crate) const MAX_INS: usize = 2;

/// The count and the inline array of `ids`, at most [`MAX_INS`] (callers check). Written out
/// element by element: a loop over the array compiled to a `memcpy` call, whose result was then
/// read back at a different width (a store-forwarding stall that cost more than the rest of the
/// record).
pub(crate) fn inline_ids(mut ids: impl ExactSizeIterator<Item = u64>) -> (u8, [u64; MAX_INS]) {
    debug_assert!(ids.len() <= MAX_INS);
    let n = ids.len().min(MAX_INS) as u8;
    let first = ids.next().unwrap_or(0);
    let second = ids.next().unwrap_or(0);
    (n, [first, second])
}

/// A rare event's line, ready but for its sequence number and time column.
pub(crate) struct TextRecord {
    pub(crate) at: u64,
    pub(crate) kind: Kind,
    pub(crate) src: Src,
    pub(crate) cmd: &'static str,
    pub(crate) size: usize,
    pub(crate) details: String,
}

/// An open instruction log. Dropping it writes everything logged so far.
pub struct InstructionLog {
    start: Instant,
    start_unix_ns: u64,
    /// Microseconds since `start` of the core's current round.
    now_us: u64,
    /// The same in milliseconds, as hot records carry it (49 days fit; the lines show ms).
    now_ms: u32,
    /// When the last batch was handed to the writer.
    handed_us: u64,
    named: Vec<bool>,
    batch: Vec<Record>,
    writer: writer::Writer,
    timing: bool,
    /// Recently used ops and their numbers, most recent first.
    ops: Vec<(Op, u32)>,
    next_op: u32,
    /// The op names of `EXEC` spans so far, and their numbers.
    span_names: rustc_hash::FxHashMap<Box<str>, u16>,
    /// A client's sync point ended a long stretch of records this round ([`SYNC_STRETCH`]).
    sync_point: bool,
    /// The batch's length at the last sync point.
    sync_mark: usize,
}

impl InstructionLog {
    /// Creates (truncates) `path` and starts the writer thread; elapsed times count from now.
    ///
    /// The file is locked (`flock`-style, released when the log closes) before it is truncated,
    /// so a second runtime given the same path — another process, or a second embedded runtime
    /// in this one, both reading the same `GT_INSTRUCTION_LOG` — fails here with an error that
    /// says so, instead of truncating the first one's log and interleaving with it (which left
    /// runs of zero bytes where the two writers' offsets crossed). On a filesystem without locks
    /// the log is written unlocked.
    pub fn create(path: &Path) -> std::io::Result<InstructionLog> {
        let named = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create the instruction log {}: {e}", path.display()),
            )
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(named)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ResourceBusy,
                    format!(
                        "the instruction log {} is being written by another GT runtime (in this \
                         process or another); give each runtime a file of its own",
                        path.display()
                    ),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::debug!(target: "gt::dispatcher", "instruction log {} not locked: {e}", path.display());
            }
        }
        file.set_len(0).map_err(named)?;
        Self::start(Some((file, path.display().to_string())))
    }

    /// A log with no file, for monitors only (see [`InstructionLog::add_monitor`]).
    pub fn for_monitors() -> std::io::Result<InstructionLog> {
        Self::start(None)
    }

    fn start(file: Option<(std::fs::File, String)>) -> std::io::Result<InstructionLog> {
        let start = Instant::now();
        let start_unix_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ok(InstructionLog {
            start,
            start_unix_ns,
            now_us: 0,
            now_ms: 0,
            handed_us: 0,
            named: Vec::new(),
            batch: Vec::with_capacity(BATCH),
            writer: writer::Writer::spawn(file)?,
            timing: false,
            ops: Vec::with_capacity(OPS),
            next_op: 0,
            span_names: Default::default(),
            sync_point: false,
            sync_mark: 0,
        })
    }

    /// Whether workers should send timing records (`EXEC` lines).
    pub fn timing(&self) -> bool {
        self.timing
    }

    /// Asks for (or stops asking for) `EXEC` lines; the core passes this on to the workers.
    pub fn set_timing(&mut self, on: bool) {
        self.timing = on;
    }

    /// Whether a file is written (a monitors-only log has none).
    pub fn has_file(&self) -> bool {
        self.writer.has_file
    }

    /// Monitors still attached, as last seen by the writer.
    pub fn monitors(&self) -> usize {
        self.writer.monitors()
    }

    /// Streams every line from now on to `tx` (until it closes).
    pub fn add_monitor(&mut self, tx: Tx<MonitorMsg>) {
        self.batch.push(Record::Monitor(tx));
        self.flush_now();
    }

    /// Sets the time stamped on the following records (the core's current round).
    pub fn set_now(&mut self, now: Instant) {
        self.now_us = now.saturating_duration_since(self.start).as_micros() as u64;
        self.now_ms = u32::try_from(self.now_us / 1000).unwrap_or(u32::MAX);
    }

    /// Microseconds since the log started, for a Unix time in nanoseconds (timing records).
    pub fn unix_to_us(&self, unix_ns: u64) -> u64 {
        unix_ns.saturating_sub(self.start_unix_ns) / 1000
    }

    /// Milliseconds since the log started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Called at the end of every core round: hands the records pushed so far to the writer
    /// thread once there are enough of them or they have waited long enough (waking the writer
    /// for every small round costs more than formatting).
    pub fn flush(&mut self) {
        if std::mem::take(&mut self.sync_point)
            || self.batch.len() >= HANDOFF
            || self.now_us.saturating_sub(self.handed_us) >= HANDOFF_US
        {
            self.flush_now();
        }
    }

    /// Whether records are waiting for the next hand-over.
    pub fn pending(&self) -> bool {
        !self.batch.is_empty()
    }

    /// Hands the records pushed so far to the writer thread now.
    pub fn flush_now(&mut self) {
        self.handed_us = self.now_us;
        self.sync_mark = 0;
        if !self.batch.is_empty() {
            let next = self.writer.empty_batch();
            self.writer.send(std::mem::replace(&mut self.batch, next));
        }
    }

    /// The number of `op`, defining it for the writer when it is new.
    fn op(&mut self, op: &Op) -> u32 {
        if let Some(i) = self.ops.iter().position(|(o, _)| o == op) {
            let n = self.ops[i].1;
            if i > 0 {
                self.ops.swap(i, i - 1);
            }
            return n;
        }
        let n = self.next_op;
        self.next_op = self.next_op.wrapping_add(1);
        if self.ops.len() >= OPS {
            if let Some((_, old)) = self.ops.pop() {
                self.batch.push(Record::ForgetOp { n: old });
            }
        }
        self.ops.push((op.clone(), n));
        self.batch.push(Record::DefineOp {
            n,
            op: Box::new(op.clone()),
        });
        n
    }

    /// The number of an `EXEC` span's op name, defining it for the writer when it is new;
    /// `None` once [`NAMES`] are taken (a span is then logged as text).
    fn name_number(&mut self, name: &str) -> Option<u16> {
        if let Some(&n) = self.span_names.get(name) {
            return Some(n);
        }
        if self.span_names.len() >= NAMES {
            return None;
        }
        let n = self.span_names.len() as u16;
        self.span_names.insert(name.into(), n);
        self.batch.push(Record::DefineName {
            n,
            name: name.into(),
        });
        Some(n)
    }

    fn push(&mut self, r: Record) {
        self.batch.push(r);
        if self.batch.len() >= BATCH {
            self.flush_now();
        }
    }

    fn name(&mut self, sid: SessionId, name: &str) {
        let i = sid.0 as usize;
        if self.named.get(i) != Some(&true) {
            if self.named.len() <= i {
                self.named.resize(i + 1, false);
            }
            self.named[i] = true;
            self.batch.push(Record::Name {
                sid,
                name: name.into(),
            });
        }
    }

    fn src(&mut self, src: Source) -> Src {
        match src {
            Source::Client(sid, name) => {
                self.name(sid, name);
                Src::Client(sid)
            }
            Source::Joining(name) => Src::Joining(name.into()),
            Source::Worker(w) => Src::Worker(w),
        }
    }

    fn text(&mut self, kind: Kind, src: Src, cmd: &'static str, size: usize, details: String) {
        let at = self.now_us;
        self.push(Record::Text(Box::new(TextRecord {
            at,
            kind,
            src,
            cmd,
            size,
            details,
        })));
    }

    /// A line that is not a message (connects, disconnects, errors).
    pub fn note(&mut self, kind: Kind, src: Source, details: std::fmt::Arguments) {
        let src = self.src(src);
        self.text(kind, src, "-", 0, details.to_string());
    }

    /// A client instruction (`RECV`).
    pub fn client_msg(&mut self, sid: SessionId, name: &str, m: &ClientMsg) {
        self.name(sid, name);
        match m {
            ClientMsg::Exec { out, op, inputs } if inputs.len() <= MAX_INS => {
                let (n, ins) = inline_ids(inputs.iter().map(|t| t.0));
                let op = self.op(op);
                self.push(Record::ClientExec {
                    ms: self.now_ms,
                    sid,
                    out: *out,
                    op,
                    n,
                    ins,
                })
            }
            ClientMsg::Free { id } => self.push(Record::ClientFree {
                ms: self.now_ms,
                sid,
                id: *id,
            }),
            _ => {
                if matches!(
                    m,
                    ClientMsg::Read { .. } | ClientMsg::Sync { .. } | ClientMsg::Stats { .. }
                ) {
                    let stretch = self.batch.len().saturating_sub(self.sync_mark);
                    self.sync_point |= stretch >= SYNC_STRETCH;
                    self.sync_mark = self.batch.len();
                }
                let details = format::client_msg_details(m);
                self.text(
                    Kind::Recv,
                    Src::Client(sid),
                    client_msg_name(m),
                    size_of(m),
                    details,
                );
            }
        }
    }

    /// A reply to a client (`SEND`).
    pub fn client_reply(&mut self, sid: SessionId, name: &str, r: &ClientReply) {
        self.name(sid, name);
        let (cmd, details) = format::client_reply(r);
        self.text(Kind::Send, Src::Client(sid), cmd, size_of(r), details);
    }

    /// A message to a worker (`WORKER_SEND`, or `MODIFIER_INJECT` when the router injected it).
    pub fn worker_msg(&mut self, kind: Kind, w: WorkerId, m: &WorkerMsg) {
        match m {
            WorkerMsg::Exec { out, op, inputs } if inputs.len() <= MAX_INS => {
                let (n, ins) = inline_ids(inputs.iter().map(|k| k.0));
                let op = self.op(op);
                self.push(Record::WorkerExec {
                    ms: self.now_ms,
                    kind,
                    w,
                    out: *out,
                    op,
                    n,
                    ins,
                })
            }
            WorkerMsg::Free { key } => self.push(Record::WorkerFree {
                ms: self.now_ms,
                kind,
                w,
                key: *key,
            }),
            _ => {
                let details = format::worker_msg_details(m);
                self.text(
                    kind,
                    Src::Worker(w),
                    worker_msg_name(m),
                    size_of(m),
                    details,
                );
            }
        }
    }

    /// A reply from a worker: `WORKER_RECV`, `HOTPATH_START`/`HOTPATH_END` for hot-path events
    /// (their source is the client stream they are about), one `EXEC` line per timing record.
    pub fn worker_reply(&mut self, w: WorkerId, r: &WorkerReply) {
        match r {
            WorkerReply::HotPath { session, event } => {
                let (kind, details) = format::hotpath(w, event);
                self.text(kind, Src::Client(*session), "HotPath", size_of(r), details);
            }
            WorkerReply::Timing { spans } => {
                for s in spans {
                    let t_us = self.unix_to_us(s.start_unix_ns);
                    match self.name_number(&s.op) {
                        Some(name) => self.push(Record::Span {
                            ms: self.now_ms,
                            w,
                            key: s.key,
                            name,
                            t_us,
                            dur_ns: s.dur_ns,
                        }),
                        None => {
                            let details = format::exec_span(s, t_us);
                            self.text(Kind::Exec, Src::Worker(w), "Timing", 0, details);
                        }
                    }
                }
            }
            _ => {
                let (cmd, details) = format::worker_reply(r);
                self.text(Kind::WorkerRecv, Src::Worker(w), cmd, size_of(r), details);
            }
        }
    }
}

impl Drop for InstructionLog {
    fn drop(&mut self) {
        self.flush_now();
        self.writer.close();
    }
}

pub(crate) fn size_of<T: Serialize + ?Sized>(m: &T) -> usize {
    postcard::experimental::serialized_size(m).unwrap_or(0)
}

#[cfg(test)]
mod tests;
