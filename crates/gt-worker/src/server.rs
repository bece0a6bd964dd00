//! The worker's shell. [`Inbound`] is what the dispatcher sends to: liveness pings and lost-peer
//! notices are handled at once (even while a long kernel runs), everything else is queued for the
//! executor thread, which owns the [`WorkerState`]. [`run`] does the same over a socket, with a
//! peer listener for transfers from other workers.
//!
//! Observability lives here, around the core: the executor adds up its busy time and the queue
//! depth in [`LoadCounters`] (two clock reads per batch), every `Pong` carries a
//! [`WorkerLoad`] built from them, and while the dispatcher has switched timing on
//! (`WorkerMsg::Timing`) each instruction is timed and reported in a `WorkerReply::Timing`
//! batch. With timing off, that costs one relaxed flag load per batch.

use crate::cpu::CpuEngine;
use crate::hotpath::HotPathConfig;
use crate::peers::{Mailbox, PeerLinks, PeerNet};
use crate::state::WorkerState;
use crossbeam_channel::{RecvError, TryRecvError};
use gt_core::{Error, Result, WorkerId};
use gt_proto::{ExecSpan, Hello, PeerMsg, Role, WorkerLoad, WorkerMsg, WorkerReply};
use gt_transport::{
    accept_handshake, connect_handshake, send_welcome, spawn_reader, spawn_writer, Addr, Hunger,
    Listener, ParkReceiver, ParkSender, Recycler, Stream, Tx,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How long report-only replies (hot-path markers, timing records) may wait to travel with the
/// next real reply.
const REPORT_DELAY: Duration = Duration::from_millis(20);

/// Everything a worker needs to know, read once by the binary.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Compute threads (`GT_WORKER_THREADS`).
    pub threads: usize,
    /// Shared secret (`GT_TOKEN`).
    pub token: Option<String>,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Where to listen for peer transfers (port 0 picks one).
    pub peer_listen: Addr,
    /// The address other workers should use to reach `peer_listen` (defaults to it).
    pub advertise: Option<String>,
    /// How long a `Recv` waits for its transfer.
    pub transfer_timeout: Duration,
    /// Hot-path detection and trace compilation (`GT_AUTO_COMPILE` and friends).
    pub hotpath: HotPathConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            threads: 1,
            token: None,
            max_frame: gt_proto::DEFAULT_MAX_FRAME,
            peer_listen: Addr::Tcp("127.0.0.1:0".into()),
            advertise: None,
            transfer_timeout: Duration::from_secs(60),
            hotpath: HotPathConfig::default(),
        }
    }
}

/// A worker before it is started: the receiving side is ready, so it can be registered with a
/// dispatcher first and learn its id.
pub struct Worker {
    rx: ParkReceiver<Vec<WorkerMsg>>,
    inbound: Inbound,
    hotpath: HotPathConfig,
    hunger: Option<Hunger>,
}

/// The dispatcher-facing input of a worker.
#[derive(Clone)]
pub struct Inbound {
    exec: ParkSender<Vec<WorkerMsg>>,
    mailbox: Arc<Mailbox>,
    replies: Arc<OnceLock<Tx<WorkerReply>>>,
    load: Arc<LoadCounters>,
    /// Batches the executor has emptied, handed back to an in-process dispatcher.
    spares: Arc<Recycler<WorkerMsg>>,
}

/// The executor's load, shared between the executor (which adds) and the inbound side (which
/// reports it with every `Pong`).
pub struct LoadCounters {
    started: Instant,
    busy_ns: AtomicU64,
    handled: AtomicU64,
    /// Instructions pushed to the executor's queue, minus those it has handled.
    queued: AtomicU64,
    /// Whether each instruction is timed (`WorkerMsg::Timing`).
    timing: AtomicBool,
}

impl Default for LoadCounters {
    fn default() -> Self {
        LoadCounters {
            started: Instant::now(),
            busy_ns: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            timing: AtomicBool::new(false),
        }
    }
}

impl LoadCounters {
    /// The current load.
    pub fn snapshot(&self) -> WorkerLoad {
        WorkerLoad {
            uptime_ns: self.started.elapsed().as_nanos() as u64,
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            handled: self.handled.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
        }
    }
}

impl Inbound {
    /// Accepts one batch from the dispatcher.
    pub fn push(&self, msgs: Vec<WorkerMsg>) -> bool {
        let urgent = msgs.iter().any(|m| {
            matches!(
                m,
                WorkerMsg::Ping | WorkerMsg::PeerLost { .. } | WorkerMsg::Timing { .. }
            )
        });
        if !urgent {
            return self.queue(msgs);
        }
        let mut rest = Vec::with_capacity(msgs.len());
        for m in msgs {
            match m {
                WorkerMsg::Ping => {
                    if let Some(r) = self.replies.get() {
                        let load = WorkerReply::Load(self.load.snapshot());
                        let _ = r.send(vec![WorkerReply::Pong, load]);
                    }
                }
                WorkerMsg::PeerLost { worker, error } => self.mailbox.lose(worker, error),
                WorkerMsg::Timing { on } => self.load.timing.store(on, Ordering::Relaxed),
                other => rest.push(other),
            }
        }
        rest.is_empty() || self.queue(rest)
    }

    fn queue(&self, msgs: Vec<WorkerMsg>) -> bool {
        self.load
            .queued
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        self.exec.send(msgs).is_ok()
    }

    /// As a [`Tx`] for in-process dispatchers (the executor hands emptied batches back to it).
    pub fn into_tx(self) -> Tx<WorkerMsg> {
        let spares = self.spares.clone();
        Tx::recycling(
            move |msgs| {
                if self.push(msgs) {
                    Ok(())
                } else {
                    Err(gt_transport::Closed)
                }
            },
            spares,
        )
    }
}

impl Default for Worker {
    fn default() -> Self {
        Self::new()
    }
}

impl Worker {
    /// A worker with an empty queue and mailbox.
    pub fn new() -> Worker {
        let (exec, rx) = gt_transport::parking_channel();
        let inbound = Inbound {
            exec,
            mailbox: Arc::new(Mailbox::default()),
            replies: Arc::new(OnceLock::new()),
            load: Arc::new(LoadCounters::default()),
            spares: Arc::new(Recycler::new()),
        };
        Worker {
            rx,
            inbound,
            hotpath: HotPathConfig::default(),
            hunger: None,
        }
    }

    /// Detects and compiles hot sequences as `cfg` says (off by default).
    pub fn with_hotpath(mut self, cfg: HotPathConfig) -> Worker {
        self.hotpath = cfg;
        self
    }

    /// Counts this worker in `hunger` while it waits with nothing queued, so in-process clients
    /// sharing `hunger` send their buffered instructions early (see [`Hunger`]).
    pub fn with_hunger(mut self, hunger: Hunger) -> Worker {
        self.hunger = Some(hunger);
        self
    }

    /// The input to register with the dispatcher. The executor stops once every clone is gone.
    pub fn inbound(&self) -> Inbound {
        self.inbound.clone()
    }

    /// This worker's mailbox (register it with in-process peers).
    pub fn mailbox(&self) -> Arc<Mailbox> {
        self.inbound.mailbox.clone()
    }

    /// Starts the executor thread.
    pub fn start(
        self,
        id: WorkerId,
        replies: Tx<WorkerReply>,
        engine: CpuEngine,
        net: PeerNet,
        transfer_timeout: Duration,
    ) -> JoinHandle<()> {
        let _ = self.inbound.replies.set(replies.clone());
        let links = PeerLinks::new(net, self.inbound.mailbox.clone(), transfer_timeout);
        let (rx, hot) = (self.rx, self.hotpath);
        let load = self.inbound.load.clone();
        let spares = self.inbound.spares.clone();
        drop(self.inbound); // only the dispatcher's clones keep the queue open
        let queue = Queue {
            rx,
            spares,
            hunger: self.hunger,
        };
        // The state is built here, so its compile thread is running before the first
        // instruction can arrive: started from the executor thread, the compile thread's start
        // overlapped a program's first step (seed-size mixed, first step: 155 µs compiled
        // against 94 eager before, 122 since; medians of 40 fresh runtimes).
        let state = WorkerState::with_hotpath(id, engine, &hot);
        std::thread::Builder::new()
            .name(format!("gt-worker-{}", id.0))
            .spawn(move || execute_loop(id, state, queue, replies, links, load))
            .expect("spawning a thread")
    }
}

/// The executor's input: batches to run, and where their emptied vectors go back.
struct Queue {
    rx: ParkReceiver<Vec<WorkerMsg>>,
    spares: Arc<Recycler<WorkerMsg>>,
    hunger: Option<Hunger>,
}

impl Queue {
    /// The next batch, waiting while none is queued (counted in the shared [`Hunger`] if
    /// `hungry`: not inside a compiled plan's streamed run, where early sends measured slower);
    /// `Ok(None)` once `timeout` passes with nothing (waits for good without one); `Err` once
    /// the dispatcher is gone.
    fn next(
        &self,
        timeout: Option<Duration>,
        hungry: bool,
    ) -> Result<Option<Vec<WorkerMsg>>, RecvError> {
        match self.rx.try_recv() {
            Ok(b) => return Ok(Some(b)),
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) => {}
        }
        let _waiting = self.hunger.as_ref().filter(|_| hungry).map(Hunger::waiting);
        match timeout {
            None => self.rx.recv().map(Some),
            Some(t) => self.rx.recv_timeout(t),
        }
    }
}

fn execute_loop(
    id: WorkerId,
    mut state: WorkerState<CpuEngine>,
    queue: Queue,
    replies: Tx<WorkerReply>,
    mut links: PeerLinks,
    load: Arc<LoadCounters>,
) {
    let mut out = Vec::new();
    // Timing records are stamped with the Unix clock so the dispatcher can place them on its own
    // timeline; one reading anchors the monotonic clock used per instruction.
    let (epoch_unix, epoch) = (unix_ns(), Instant::now());
    // When a burst of work ahead began (see below).
    let mut ahead: Option<Instant> = None;
    loop {
        // Replies that only report (hot-path markers, timing) wait for the next real reply or
        // a quiet moment: sending them at once would wake the dispatcher once more per batch.
        let timeout = (!out.is_empty()).then_some(REPORT_DELAY);
        // While nothing is queued, compiled programs' predicted work runs, one step at a time
        // (see `state::ahead`). It does not count as waiting in the shared `Hunger`: early
        // sends while a step's work runs ahead made the mixed workload slower (0.0174 vs
        // 0.0144 ms per step) and the MLP step no faster.
        let next = if state.has_work_ahead() {
            match queue.rx.try_recv() {
                Ok(b) => Ok(Some(b)),
                Err(TryRecvError::Disconnected) => Err(RecvError),
                Err(TryRecvError::Empty) => {
                    ahead.get_or_insert_with(Instant::now);
                    state.work_ahead();
                    continue;
                }
            }
        } else {
            Ok(None)
        };
        // A burst of work ahead is timed as a whole: a clock read per step cost more than the
        // smallest steps.
        if let Some(t0) = ahead.take() {
            load.busy_ns
                .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        let next = match next {
            Ok(None) => queue.next(timeout, !state.streaming()),
            got => got,
        };
        let mut batch = match next {
            Ok(Some(b)) => b,
            Ok(None) => {
                if replies
                    .send(std::mem::replace(&mut out, replies.spare(0)))
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        let n = batch.len() as u64;
        // Executing the last queued batch eagerly: count as draining, so clients send what
        // they hold early and the next batch is queued before this one is done (see `Hunger`).
        // Not while compiled work streams or runs ahead: early sends measured slower there
        // (see `Queue::next`), and the compiled seed MLP step gained nothing from them.
        let _draining = queue
            .hunger
            .as_ref()
            .filter(|_| {
                load.queued.load(Ordering::Relaxed) <= n
                    && !state.streaming()
                    && !state.has_work_ahead()
            })
            .map(Hunger::draining);
        let start = Instant::now();
        if load.timing.load(Ordering::Relaxed) {
            let mut spans = Vec::with_capacity(batch.len());
            for msg in batch.drain(..) {
                let (key, op) = describe(&msg);
                let t0 = Instant::now();
                state.handle(msg, &mut links, &mut out);
                let t1 = Instant::now();
                if let Some(key) = key {
                    spans.push(ExecSpan {
                        key,
                        op: op.into(),
                        start_unix_ns: epoch_unix + (t0 - epoch).as_nanos() as u64,
                        dur_ns: (t1 - t0).as_nanos() as u64,
                    });
                }
            }
            if !spans.is_empty() {
                out.push(WorkerReply::Timing { spans });
            }
        } else {
            for msg in batch.drain(..) {
                state.handle(msg, &mut links, &mut out);
            }
        }
        queue.spares.give(batch);
        // Statistics report the executor's busy time, which only this loop knows.
        for r in out.iter_mut() {
            if let WorkerReply::Stats { stats, .. } = r {
                stats.busy_ns =
                    load.busy_ns.load(Ordering::Relaxed) + start.elapsed().as_nanos() as u64;
            }
        }
        load.busy_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        load.handled.fetch_add(n, Ordering::Relaxed);
        load.queued.fetch_sub(n, Ordering::Relaxed);
        let urgent = out
            .iter()
            .any(|r| !matches!(r, WorkerReply::HotPath { .. } | WorkerReply::Timing { .. }));
        if urgent
            && replies
                .send(std::mem::replace(&mut out, replies.spare(0)))
                .is_err()
        {
            break;
        }
    }
    if !out.is_empty() {
        let _ = replies.send(out);
    }
    tracing::debug!(target: "gt::worker", "worker {} stopped", id.0);
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The key and name a timing record gives an instruction (`None`: not worth a record).
fn describe(m: &WorkerMsg) -> (Option<gt_core::Key>, &'static str) {
    match m {
        WorkerMsg::Exec { out, op, .. } => (Some(*out), op.name()),
        WorkerMsg::Upload { out, .. } => (Some(*out), "upload"),
        WorkerMsg::Alias { out, .. } => (Some(*out), "alias"),
        WorkerMsg::Read { key, .. } => (Some(*key), "read"),
        WorkerMsg::Send { key, .. } => (Some(*key), "send"),
        WorkerMsg::Recv { out, .. } => (Some(*out), "recv"),
        WorkerMsg::Free { .. }
        | WorkerMsg::FreeSession { .. }
        | WorkerMsg::Poison { .. }
        | WorkerMsg::Stats { .. }
        | WorkerMsg::Barrier { .. }
        | WorkerMsg::Peers { .. }
        | WorkerMsg::PeerLost { .. }
        | WorkerMsg::Ping
        | WorkerMsg::Timing { .. }
        | WorkerMsg::CompileRegion { .. } => (None, ""),
    }
}

/// Runs a worker connected to the dispatcher at `dispatcher` until that connection ends.
pub fn run(dispatcher: &Addr, cfg: &WorkerConfig) -> Result<()> {
    let worker = Worker::new().with_hotpath(cfg.hotpath.clone());
    let peer_listener = Listener::bind(&cfg.peer_listen)?;
    let advertise = cfg
        .advertise
        .clone()
        .unwrap_or_else(|| peer_listener.local_addr().to_string());
    spawn_peer_acceptor(peer_listener, worker.mailbox(), cfg.clone());

    let stream = Stream::connect(dispatcher, Duration::from_secs(10))?;
    let hello = Hello::new(Role::Worker, cfg.token.clone(), advertise.clone());
    let (id, _) = connect_handshake(&stream, &hello, cfg.max_frame)?;
    let id = WorkerId(id);
    tracing::info!(target: "gt::worker", "joined {dispatcher} as worker {} (peers reach it at {advertise})", id.0);
    let replies = spawn_writer::<WorkerReply>(stream.try_clone()?, "dispatcher".into());
    let inbound = worker.inbound();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Option<Error>>(1);
    spawn_reader::<WorkerMsg, _, _>(
        stream,
        cfg.max_frame,
        "dispatcher".into(),
        move |msgs| inbound.push(msgs),
        move |err| {
            let _ = done_tx.send(err);
        },
    );
    let engine = CpuEngine::new(cfg.threads);
    let net = PeerNet::Socket {
        token: cfg.token.clone(),
        max_frame: cfg.max_frame,
        conns: Default::default(),
    };
    let exec = worker.start(id, replies, engine, net, cfg.transfer_timeout);
    let ended = done_rx.recv().unwrap_or(None);
    let _ = exec.join();
    match ended {
        None => {
            tracing::info!(target: "gt::worker", "dispatcher closed the connection; worker {} exits", id.0);
            Ok(())
        }
        Some(e) => Err(e),
    }
}

fn spawn_peer_acceptor(listener: Listener, mailbox: Arc<Mailbox>, cfg: WorkerConfig) {
    std::thread::Builder::new()
        .name("gt-peer-accept".into())
        .spawn(move || loop {
            let stream = match listener.accept() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(target: "gt::worker", "peer accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let (mailbox, cfg) = (mailbox.clone(), cfg.clone());
            std::thread::spawn(move || {
                match accept_handshake(&stream, cfg.token.as_deref(), Duration::from_secs(5)) {
                    Ok(h) if h.role == Role::Peer => {
                        if send_welcome(&stream, 0, 0).is_err() {
                            return;
                        }
                        spawn_reader::<PeerMsg, _, _>(
                            stream,
                            cfg.max_frame,
                            "peer".into(),
                            move |msgs| {
                                msgs.into_iter().for_each(|m| mailbox.put(m));
                                true
                            },
                            |err| {
                                if let Some(e) = err {
                                    tracing::warn!(target: "gt::worker", "peer connection failed: {e}");
                                }
                            },
                        );
                    }
                    Ok(h) => {
                        tracing::warn!(target: "gt::worker", "refusing {:?} connection on the peer port", h.role);
                        stream.shutdown();
                    }
                    Err(e) => {
                        tracing::error!(target: "gt::worker", "rejected peer connection from {}: {e}", stream.peer_name());
                        stream.shutdown();
                    }
                }
            });
        })
        .expect("spawning a thread");
}
