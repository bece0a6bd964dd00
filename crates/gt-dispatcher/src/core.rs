//! The dispatcher's state machine. It owns sessions, the placement table, the worker registry and
//! outstanding requests; it does no I/O (outgoing batches go through each peer's [`Tx`]) and takes
//! the current time as an argument, so heartbeats are tested with a fake clock.

use crate::event::Event;
use crate::log::{InstructionLog, Kind, Source};
use crate::shard::{Dist, ShardConfig};
use gt_core::{Error, SessionId, TensorId, WorkerId};
use gt_proto::{
    ClientMsg, ClientReply, ShardStats, WorkerLoad, WorkerMsg, WorkerReply, WorkerStats,
};
use gt_transport::{Hunger, Recycler, Tx};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timing knobs of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// A worker silent for this long is declared lost.
    pub heartbeat_timeout: Duration,
    /// How long a client may wait for a first worker before it is refused.
    pub join_timeout: Duration,
    /// The sharding config every new session starts with (`GT_CONFIG`, `--config`).
    pub shard: Arc<ShardConfig>,
    /// `GT_AUTO_SHARD=1`: creations with at least this many elements are sharded along axis 0
    /// over every worker.
    pub auto_shard: Option<usize>,
    /// Most instructions per transport batch to a worker (`GT_WORKER_BATCH_SIZE`; `None`:
    /// everything queued goes in one batch). Batching never changes the instruction stream.
    pub worker_batch: Option<usize>,
    /// Workers of this process waiting for work (the embedded runtime). While one waits, a
    /// client batch is handed to the workers every [`HAND_OVER`] routed instructions instead
    /// of once routed whole, so the worker starts on the first while the rest are routed.
    pub hunger: Option<Hunger>,
}

/// Instructions routed between hand-overs to a waiting worker (see [`CoreConfig::hunger`]).
pub const HAND_OVER: usize = 16;

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            heartbeat_timeout: Duration::from_millis(1500),
            join_timeout: Duration::from_secs(30),
            shard: Arc::default(),
            auto_shard: None,
            worker_batch: None,
            hunger: None,
        }
    }
}

/// What the router knows of one live client tensor. One map entry holds both, so routing an
/// instruction costs one hash lookup per tensor it names. With the place and the meta in two
/// maps, routing the seed-size MLP step (104 instructions, on the client's thread in the
/// embedded runtime) took about 96 ns per instruction; with one, 87–90 (a probe around
/// `client_batch`, 3,000 steps, five alternating runs of each build).
#[derive(Clone, Debug)]
pub(crate) struct Tracked {
    pub(crate) place: Place,
    /// Shape and dtype (what sharding rules need); `None` when not known (a poisoned tensor).
    pub(crate) meta: Option<gt_ops::Meta>,
}

/// Where a client tensor lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Place {
    /// On one worker, under the key `Key::new(session, id)`.
    On(WorkerId),
    /// Spread over several workers (part `i` on `workers[i]`, under the same key).
    Dist(Arc<Dist>),
    /// Never computed: reading it returns this error.
    Poisoned(Error),
}

/// One client's state.
pub struct Session {
    pub(crate) id: SessionId,
    pub(crate) name: String,
    pub(crate) tx: Tx<ClientReply>,
    /// Each live tensor: where it is, with its shape and dtype (see [`Tracked`]).
    pub(crate) tensors: FxHashMap<TensorId, Tracked>,
    pub(crate) home: Option<WorkerId>,
    /// Workers lost while holding this session's tensors, reported at the next sync.
    pub(crate) lost: Vec<Error>,
    pub(crate) outbox: Vec<ClientReply>,
    /// Where emptied instruction batches go back to the client (in-process clients only).
    pub(crate) spares: Option<Arc<Recycler<ClientMsg>>>,
    pub(crate) instructions: u64,
    /// Open signal scopes, innermost last.
    pub(crate) scopes: Vec<String>,
    /// The sharding config in force for this session.
    pub(crate) config: Arc<ShardConfig>,
    /// The configured signal with a `backward:` entry this session entered last (whose
    /// backward placement a later `backward()` outside every scope uses).
    pub(crate) last_region: Option<String>,
    /// What the sharding modifier did for this session.
    pub(crate) shard_stats: ShardStats,
}

pub(crate) struct WorkerSlot {
    pub(crate) tx: Tx<WorkerMsg>,
    pub(crate) peer_addr: String,
    pub(crate) alive: bool,
    pub(crate) last_seen: Instant,
    pub(crate) homed: usize,
    pub(crate) outbox: Vec<WorkerMsg>,
    /// Indices in `outbox` of messages the router injected (kept only while logging).
    pub(crate) injected: Vec<usize>,
    /// Its executor load, from its latest heartbeat.
    pub(crate) load: Option<WorkerLoad>,
}

/// What a worker-level request id answers.
pub(crate) enum Pending {
    Read {
        session: SessionId,
        req: gt_core::ReqId,
    },
    Part {
        agg: u64,
    },
}

/// A client request answered by several workers (stats, sync).
pub(crate) struct Agg {
    pub(crate) session: SessionId,
    pub(crate) req: gt_core::ReqId,
    pub(crate) remaining: usize,
    pub(crate) stats: Option<Vec<WorkerStats>>,
}

struct WaitingClient {
    name: String,
    tx: Tx<ClientReply>,
    spares: Option<Arc<Recycler<ClientMsg>>>,
    accepted: crossbeam_channel::Sender<Result<(SessionId, u32), String>>,
    deadline: Instant,
}

/// The dispatcher state machine.
pub struct Core {
    pub(crate) cfg: CoreConfig,
    pub(crate) sessions: FxHashMap<SessionId, Session>,
    next_session: u32,
    pub(crate) workers: Vec<WorkerSlot>,
    pub(crate) pending: FxHashMap<u64, (WorkerId, Pending)>,
    pub(crate) aggs: FxHashMap<u64, Agg>,
    pub(crate) next_req: u64,
    pub(crate) next_xfer: u64,
    pub(crate) next_temp: u64,
    waiting: Vec<WaitingClient>,
    queues: FxHashMap<SessionId, VecDeque<Vec<ClientMsg>>>,
    order: VecDeque<SessionId>,
    stopped: bool,
    pub(crate) log: Option<InstructionLog>,
    /// Sharding counters over every session.
    pub(crate) shard_total: ShardStats,
    /// Attached monitors (`gt top`, `gt trace --connect`); see `monitor.rs`.
    pub(crate) monitor: crate::monitor::Monitors,
}

impl Core {
    /// An empty dispatcher.
    pub fn new(cfg: CoreConfig) -> Core {
        Core {
            cfg,
            sessions: FxHashMap::default(),
            next_session: 1, // session 0 names the dispatcher's own temporaries
            workers: Vec::new(),
            pending: FxHashMap::default(),
            aggs: FxHashMap::default(),
            next_req: 1,
            next_xfer: 1,
            next_temp: 1,
            waiting: Vec::new(),
            queues: FxHashMap::default(),
            order: VecDeque::new(),
            stopped: false,
            log: None,
            shard_total: ShardStats::default(),
            monitor: Default::default(),
        }
    }

    /// Logs every event to `log` from now on (`None` turns logging off).
    pub fn set_log(&mut self, log: Option<InstructionLog>) {
        self.log = log;
        self.sync_timing();
    }

    /// Whether `Shutdown` was handled.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether instruction-log records wait for a hand-over to the log's writer.
    pub fn log_pending(&self) -> bool {
        self.log.as_ref().is_some_and(|l| l.pending())
    }

    /// Hands pending instruction-log records to the writer (the core is idle).
    pub fn flush_log(&mut self) {
        if let Some(log) = &mut self.log {
            log.flush_now();
        }
    }

    /// Number of live workers.
    pub fn alive_workers(&self) -> usize {
        self.workers.iter().filter(|w| w.alive).count()
    }

    /// Number of connected sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Handles one event. Client instructions are queued per session; [`Core::serve`] runs them
    /// round-robin so one busy client cannot starve the others.
    pub fn handle(&mut self, ev: Event, now: Instant) {
        if let Some(log) = &mut self.log {
            log.set_now(now);
        }
        match ev {
            Event::ClientJoined {
                name,
                tx,
                accepted,
                spares,
            } => {
                let w = WaitingClient {
                    name,
                    tx,
                    spares,
                    accepted,
                    deadline: now + self.cfg.join_timeout,
                };
                self.waiting.push(w);
                self.admit_waiting(now);
            }
            Event::ClientBatch { session, msgs } => {
                if self.sessions.contains_key(&session) {
                    let q = self.queues.entry(session).or_default();
                    if q.is_empty() {
                        self.order.push_back(session);
                    }
                    q.push_back(msgs);
                }
            }
            Event::ClientLeft { session, reason } => self.client_left(session, reason),
            Event::WorkerJoined {
                peer_addr,
                tx,
                accepted,
            } => {
                let id = WorkerId(self.workers.len() as u32);
                tracing::info!(target: "gt::dispatcher", "{id} joined (peer address {peer_addr})");
                if let Some(log) = &mut self.log {
                    log.note(
                        Kind::Connect,
                        Source::Worker(id),
                        format_args!("peer={peer_addr}"),
                    );
                }
                self.workers.push(WorkerSlot {
                    tx,
                    peer_addr,
                    alive: true,
                    last_seen: now,
                    homed: 0,
                    outbox: Vec::new(),
                    injected: Vec::new(),
                    load: None,
                });
                if self.monitor.timing_on {
                    self.workers[id.0 as usize]
                        .outbox
                        .push(WorkerMsg::Timing { on: true });
                }
                let _ = accepted.send(id);
                self.announce_peers();
                self.admit_waiting(now);
            }
            Event::WorkerBatch { worker, msgs } => {
                if let Some(w) = self.workers.get_mut(worker.0 as usize) {
                    w.last_seen = now;
                }
                for m in msgs {
                    if let Some(log) = &mut self.log {
                        log.worker_reply(worker, &m);
                    }
                    self.worker_reply(worker, m);
                }
            }
            Event::WorkerLeft { worker, reason } => {
                if let Some(log) = &mut self.log {
                    log.note(
                        Kind::Disconnect,
                        Source::Worker(worker),
                        format_args!("reason={reason}"),
                    );
                }
                self.lose_worker(worker, reason)
            }
            Event::MonitorJoined { tx, lines } => self.monitor_joined(tx, lines),
            Event::Tick => self.tick(now),
            Event::Shutdown => {
                self.monitors_bye("it was stopped");
                self.stopped = true
            }
        }
    }

    /// Runs queued client batches, one batch per session per turn.
    pub fn serve(&mut self) {
        while let Some(sid) = self.order.pop_front() {
            let Some(batch) = self.queues.get_mut(&sid).and_then(|q| q.pop_front()) else {
                continue;
            };
            if self.queues.get(&sid).is_some_and(|q| !q.is_empty()) {
                self.order.push_back(sid);
            }
            self.client_batch(sid, batch);
        }
    }

    /// Sends everything queued for clients and workers.
    pub fn flush(&mut self) {
        loop {
            let mut broken = None;
            for (i, w) in self.workers.iter_mut().enumerate() {
                if !w.outbox.is_empty() {
                    // A recycled vector already has room for a batch like this one, so the
                    // next round's pushes neither reallocate nor page-fault.
                    let spare = w.tx.spare(0);
                    let batch = std::mem::replace(&mut w.outbox, spare);
                    if let (Some(log), true) = (&mut self.log, w.alive) {
                        let mut marks = w.injected.iter().copied().peekable();
                        for (j, m) in batch.iter().enumerate() {
                            let kind = if marks.next_if_eq(&j).is_some() {
                                Kind::ModifierInject
                            } else {
                                Kind::WorkerSend
                            };
                            log.worker_msg(kind, WorkerId(i as u32), m);
                        }
                    }
                    w.injected.clear();
                    if w.alive && send_split(&w.tx, batch, self.cfg.worker_batch).is_err() {
                        broken = Some(WorkerId(i as u32));
                        break;
                    }
                }
            }
            // A link that refuses a batch is a dead worker; losing it queues more messages
            // (errors for clients, notices for other workers), so go round again.
            match broken {
                Some(w) => self.lose_worker(w, "its link closed".into()),
                None => break,
            }
        }
        for s in self.sessions.values_mut() {
            if !s.outbox.is_empty() {
                if let Some(log) = &mut self.log {
                    for r in &s.outbox {
                        log.client_reply(s.id, &s.name, r);
                    }
                }
                let _ = s.tx.send(std::mem::take(&mut s.outbox));
            }
        }
        // Hand this round's lines to the writer, which writes them out once it is idle.
        if let Some(log) = &mut self.log {
            log.flush();
        }
    }

    fn admit_waiting(&mut self, now: Instant) {
        let alive = self.alive_workers() as u32;
        for w in std::mem::take(&mut self.waiting) {
            if alive > 0 {
                let id = SessionId(self.next_session);
                self.next_session += 1;
                let home = self.least_loaded();
                if let Some(h) = home {
                    self.workers[h.0 as usize].homed += 1;
                }
                tracing::info!(target: "gt::dispatcher", "client '{}' joined as {id}", w.name);
                if let Some(log) = &mut self.log {
                    log.note(
                        Kind::Connect,
                        Source::Client(id, &w.name),
                        format_args!(
                            "home={} workers={alive}",
                            home.map(|h| h.0 as i64).unwrap_or(-1)
                        ),
                    );
                }
                let session = Session {
                    id,
                    name: w.name,
                    tx: w.tx,
                    tensors: FxHashMap::default(),
                    home,
                    lost: Vec::new(),
                    outbox: Vec::new(),
                    spares: w.spares,
                    instructions: 0,
                    scopes: Vec::new(),
                    config: self.cfg.shard.clone(),
                    last_region: None,
                    shard_stats: ShardStats::default(),
                };
                self.sessions.insert(id, session);
                let _ = w.accepted.send(Ok((id, alive)));
            } else if now >= w.deadline {
                let reason = format!(
                    "no worker joined the dispatcher within {:?}",
                    self.cfg.join_timeout
                );
                if let Some(log) = &mut self.log {
                    log.note(
                        Kind::Error,
                        Source::Joining(&w.name),
                        format_args!("refused: {reason}"),
                    );
                }
                let _ = w.accepted.send(Err(reason));
            } else {
                self.waiting.push(w);
            }
        }
    }

    pub(crate) fn least_loaded(&self) -> Option<WorkerId> {
        self.workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.alive)
            .min_by_key(|(i, w)| (w.homed, *i))
            .map(|(i, _)| WorkerId(i as u32))
    }

    fn announce_peers(&mut self) {
        let peers: Vec<(WorkerId, String)> = self
            .workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.alive)
            .map(|(i, w)| (WorkerId(i as u32), w.peer_addr.clone()))
            .collect();
        for w in self.workers.iter_mut().filter(|w| w.alive) {
            w.outbox.push(WorkerMsg::Peers {
                peers: peers.clone(),
            });
        }
    }

    pub(crate) fn new_req(&mut self, worker: WorkerId, p: Pending) -> gt_core::ReqId {
        let r = self.next_req;
        self.next_req += 1;
        self.pending.insert(r, (worker, p));
        gt_core::ReqId(r)
    }

    pub(crate) fn new_agg(&mut self, agg: Agg) -> u64 {
        let id = self.next_req;
        self.next_req += 1;
        self.aggs.insert(id, agg);
        id
    }

    fn worker_reply(&mut self, worker: WorkerId, m: WorkerReply) {
        let req = match &m {
            WorkerReply::Pong | WorkerReply::HotPath { .. } | WorkerReply::Timing { .. } => return,
            WorkerReply::Load(l) => {
                if let Some(w) = self.workers.get_mut(worker.0 as usize) {
                    w.load = Some(*l);
                }
                return;
            }
            WorkerReply::Data { req, .. }
            | WorkerReply::Stats { req, .. }
            | WorkerReply::BarrierDone { req } => *req,
        };
        let Some((_, p)) = self.pending.remove(&req.0) else {
            tracing::warn!(target: "gt::dispatcher", "{worker} answered unknown request {}", req.0);
            if let Some(log) = &mut self.log {
                log.note(
                    Kind::Error,
                    Source::Worker(worker),
                    format_args!("unknown request {}", req.0),
                );
            }
            return;
        };
        match (p, m) {
            (Pending::Read { session, req }, WorkerReply::Data { result, .. }) => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.outbox.push(ClientReply::Data { req, result });
                }
            }
            (Pending::Part { agg }, WorkerReply::Stats { stats, .. }) => {
                self.part_done(agg, Some(*stats))
            }
            (Pending::Part { agg }, WorkerReply::BarrierDone { .. }) => self.part_done(agg, None),
            (_, other) => {
                tracing::warn!(target: "gt::dispatcher", "{worker} sent a mismatched reply {other:?}");
                if let Some(log) = &mut self.log {
                    log.note(
                        Kind::Error,
                        Source::Worker(worker),
                        format_args!("mismatched reply {}", req.0),
                    );
                }
            }
        }
    }

    pub(crate) fn part_done(&mut self, agg: u64, stats: Option<WorkerStats>) {
        let Some(stats) = self.monitor_part(agg, stats) else {
            return; // a monitor's poll
        };
        let Some(a) = self.aggs.get_mut(&agg) else {
            return;
        };
        if let (Some(list), Some(st)) = (a.stats.as_mut(), stats) {
            list.push(st);
        }
        a.remaining -= 1;
        if a.remaining > 0 {
            return;
        }
        let a = self.aggs.remove(&agg).expect("present");
        let Some(s) = self.sessions.get_mut(&a.session) else {
            return;
        };
        let reply = match a.stats {
            Some(mut list) => {
                list.sort_by_key(|st| st.worker);
                ClientReply::Stats {
                    req: a.req,
                    result: Ok(list),
                }
            }
            None => {
                let result = if s.lost.is_empty() {
                    Ok(())
                } else {
                    Err(s.lost.remove(0))
                };
                s.lost.clear();
                ClientReply::Synced { req: a.req, result }
            }
        };
        s.outbox.push(reply);
    }

    fn client_left(&mut self, session: SessionId, reason: Option<String>) {
        // Batches the client sent before leaving may still wait for their turn (`serve` runs
        // after the round's events): they run first, as they would have with a turn between.
        if let Some(queued) = self.queues.remove(&session) {
            for batch in queued {
                self.client_batch(session, batch);
            }
        }
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        tracing::info!(
            target: "gt::dispatcher",
            "client '{}' ({session}) left{}; freeing {} tensors",
            s.name,
            reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            s.tensors.len()
        );
        if let Some(log) = &mut self.log {
            let src = Source::Client(session, &s.name);
            if let Some(r) = &reason {
                log.note(Kind::Error, src, format_args!("connection failed: {r}"));
            }
            log.note(
                Kind::Disconnect,
                src,
                format_args!(
                    "reason={} tensors={}",
                    reason.as_deref().unwrap_or("closed"),
                    s.tensors.len()
                ),
            );
        }
        if let Some(h) = s.home {
            let slot = &mut self.workers[h.0 as usize];
            slot.homed = slot.homed.saturating_sub(1);
        }
        self.queues.remove(&session);
        for w in self.workers.iter_mut().filter(|w| w.alive) {
            w.outbox.push(WorkerMsg::FreeSession { session });
        }
    }

    /// Declares `worker` lost: its tensors are poisoned (each owner hears at its next sync),
    /// requests waiting on it fail, other workers stop waiting for transfers from it.
    pub(crate) fn lose_worker(&mut self, worker: WorkerId, reason: String) {
        let Some(slot) = self.workers.get_mut(worker.0 as usize) else {
            return;
        };
        if !slot.alive {
            return;
        }
        slot.alive = false;
        slot.outbox.clear();
        slot.injected.clear();
        tracing::warn!(target: "gt::dispatcher", "{worker} lost: {reason}");
        if let Some(log) = &mut self.log {
            log.note(
                Kind::Error,
                Source::Worker(worker),
                format_args!("worker lost: {reason}"),
            );
        }
        let err = Error::WorkerLost {
            worker: worker.0,
            reason,
        };
        let new_home = self.least_loaded();
        // Parts of distributed tensors that survive on other workers are freed there.
        let mut orphans: Vec<(WorkerId, gt_core::Key)> = Vec::new();
        for s in self.sessions.values_mut() {
            let mut held = false;
            for (id, Tracked { place, .. }) in s.tensors.iter_mut() {
                let here = match place {
                    Place::On(w) => *w == worker,
                    Place::Dist(d) => d.workers.contains(&worker),
                    Place::Poisoned(_) => false,
                };
                if here {
                    if let Place::Dist(d) = place {
                        let key = gt_core::Key::new(s.id, id.0);
                        orphans.extend(
                            d.workers
                                .iter()
                                .filter(|w| **w != worker)
                                .map(|w| (*w, key)),
                        );
                    }
                    *place = Place::Poisoned(err.clone());
                    held = true;
                }
            }
            if held {
                s.lost.push(err.clone());
            }
            if s.home == Some(worker) {
                s.home = new_home;
                if let Some(h) = new_home {
                    self.workers[h.0 as usize].homed += 1;
                }
            }
        }
        let failed: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (w, _))| *w == worker)
            .map(|(r, _)| *r)
            .collect();
        for r in failed {
            let (_, p) = self.pending.remove(&r).expect("present");
            match p {
                Pending::Read { session, req } => {
                    if let Some(s) = self.sessions.get_mut(&session) {
                        s.outbox.push(ClientReply::Data {
                            req,
                            result: Err(err.clone()),
                        });
                    }
                }
                Pending::Part { agg } => {
                    let dead = WorkerStats {
                        worker: worker.0,
                        alive: false,
                        ..Default::default()
                    };
                    let is_stats = self.aggs.get(&agg).is_some_and(|a| a.stats.is_some());
                    self.part_done(agg, is_stats.then_some(dead));
                }
            }
        }
        for (w, key) in orphans {
            let slot = &mut self.workers[w.0 as usize];
            if slot.alive {
                slot.outbox.push(WorkerMsg::Free { key });
            }
        }
        for w in self.workers.iter_mut().filter(|w| w.alive) {
            w.outbox.push(WorkerMsg::PeerLost {
                worker,
                error: err.clone(),
            });
        }
    }

    fn tick(&mut self, now: Instant) {
        let timeout = self.cfg.heartbeat_timeout;
        let silent: Vec<WorkerId> = self
            .workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.alive && now.duration_since(w.last_seen) > timeout)
            .map(|(i, _)| WorkerId(i as u32))
            .collect();
        for w in silent {
            self.lose_worker(w, format!("no heartbeat for {timeout:?}"));
        }
        for w in self.workers.iter_mut().filter(|w| w.alive) {
            w.outbox.push(WorkerMsg::Ping);
        }
        self.monitor_tick();
        self.admit_waiting(now);
    }
}

/// Sends `batch` in order, in transport batches of at most `cap` messages.
fn send_split(
    tx: &gt_transport::Tx<WorkerMsg>,
    batch: Vec<WorkerMsg>,
    cap: Option<usize>,
) -> Result<(), gt_transport::Closed> {
    match cap {
        Some(c) if c > 0 && batch.len() > c => {
            let mut batch = batch;
            let mut it = batch.drain(..).peekable();
            while it.peek().is_some() {
                let mut part = tx.spare(c);
                part.extend(it.by_ref().take(c));
                tx.send(part)?;
            }
            drop(it);
            tx.give_back(batch);
            Ok(())
        }
        _ => tx.send(batch),
    }
}
