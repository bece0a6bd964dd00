//! The worker's hot-path stream modifier: per-stream detection, then for each hot sequence a
//! mode (`state::stream`): recorded while it runs eagerly until a plan exists, then streamed
//! through the plan; flushed on deviation or sync; results installed (or deferred, see
//! `state::deferred`) when it completes.
//!
//! Invariant: the tensor table after any instruction that can observe it (a read, a transfer,
//! stats, a barrier) is exactly what eager execution would have produced. A streamed run of a
//! stream is dropped and its instructions replayed eagerly, in order, before anything that
//! could observe them, so `item()` in the middle of a hot sequence never waits for a sequence
//! that will not finish; a deferred value is computed before anything reads it.

use super::ahead::{self, Ahead};
use super::deferred::Promise;
use super::stream::{Fed, Mode, Record, Run};
use super::{Slot, WorkerState};
use crate::compile::cache::{Lookup, PlanCache};
use crate::compile::persist::Saved;
use crate::compile::program::{CompileJob, PlanOp, Split};
use crate::compile::trace::{bind, Scratch};
use crate::engine::Engine;
use crate::hotpath::detector::MAX_SEGMENT;
use crate::hotpath::{HotPathConfig, Step, StreamDetector};
use crate::state::Peers;
use gt_core::{Key, SessionId};
use gt_ops::Meta;
use gt_proto::{HotPathEvent, WorkerMsg, WorkerReply};
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;
use std::time::Instant;

mod tracer;

/// One client stream.
pub(super) struct Stream<T> {
    det: StreamDetector,
    pub(super) mode: Mode<T>,
    /// The signature announced by the last `HotPath::Start`.
    started: Option<u64>,
    /// Signatures this stream has already looked up in the plan cache.
    seen: FxHashSet<u64>,
    /// Inside a `compile: true` region seen for the first time: its instructions as they ran,
    /// and whether that is the whole region (no sync point or matched sequence inside it).
    region: Option<(Record, bool)>,
    /// The current segment recorded as it runs, while the detector has it armed (see
    /// [`StreamDetector::take_spec_hot`]).
    spec: Option<Record>,
    /// While `spec` records: the values of the last segment its instructions read, as
    /// `(that segment's signature, instruction index)` ([`StreamDetector::made_in_last_segment`]).
    carried: Vec<(u64, u32)>,
    /// The last finished streamed run, emptied, for the next one to reuse ([`Run::reset`]).
    pub(super) spare: Option<Box<Run<T>>>,
    /// The next instance predicted and run ahead (`state::ahead`).
    pub(super) ahead: Ahead<T>,
    /// A streamed run that completed with its results installed, whose bookkeeping waits for
    /// idle time ([`WorkerState::settle`]).
    pub(super) settle: Option<Settle<T>>,
}

/// A completed run's bookkeeping that does not decide what anything reads: learning the next
/// instance's prediction, the per-op counters, the guard's record and emptying the run for
/// reuse. Done while the worker is idle, so a read that ends the instance is answered first.
pub(super) struct Settle<T> {
    run: Box<Run<T>>,
    sig: u64,
    /// The deferred values' group, when some live-outs were deferred.
    group: Option<Arc<std::sync::Mutex<super::deferred::Group<T>>>>,
}

/// Detector states, streamed runs and the plan cache of one worker.
pub(crate) struct Tracer<T> {
    cfg: HotPathConfig,
    pub(super) streams: FxHashMap<SessionId, Stream<T>>,
    pub(crate) cache: PlanCache,
    /// Streams with work to do ahead while the worker is idle (`state::ahead`).
    pub(super) idle: Vec<SessionId>,
    saved: Vec<Saved>,
    /// Per plan: which live-outs are deferred (all, until one gets used), and the split made
    /// from that (`None` until a run needs it).
    defer: FxHashMap<u64, (Vec<bool>, Option<Arc<Split>>)>,
    /// Per plan being compiled from a speculative recording: the instructions (by index) whose
    /// results were used after the instance before it, by the recorded instance itself or by
    /// the read that ended it. They seed the plan's deferral mask ([`Tracer::split_for`]).
    used_after: FxHashMap<u64, Vec<u32>>,
    /// Counters of streams that have ended.
    gone: (u64, u64, u64, u64),
}

impl<E: Engine> WorkerState<E> {
    fn meta_of(
        tensors: &FxHashMap<Key, Slot<E::Tensor>>,
        deferred: &FxHashMap<Key, Promise<E::Tensor>>,
        engine: &E,
        k: Key,
    ) -> Option<Meta> {
        match tensors.get(&k) {
            Some(Slot::Ready(t)) => Some(engine.meta(t)),
            Some(Slot::Poisoned(_)) => None,
            None => deferred.get(&k).map(|p| p.meta.clone()),
        }
    }

    pub(super) fn handle_traced(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        msg: WorkerMsg,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        let s = match &msg {
            WorkerMsg::Exec { out: k, inputs, .. } => {
                let s = k.session();
                if inputs.iter().any(|i| i.session() != s) {
                    // Dispatcher temporaries of another stream: not part of any trace, and
                    // every stream they name must have its tensors in the table.
                    let others: Vec<SessionId> = inputs.iter().map(|i| i.session()).collect();
                    self.sync_stream(tr, s, peers, out);
                    for o in others {
                        self.sync_stream(tr, o, peers, out);
                    }
                    return self.exec_now(msg, peers, out);
                }
                s
            }
            WorkerMsg::Upload { out: k, .. } | WorkerMsg::Free { key: k } => k.session(),
            WorkerMsg::Read { key, .. }
            | WorkerMsg::Send { key, .. }
            | WorkerMsg::Recv { out: key, .. }
            | WorkerMsg::Poison { key, .. } => {
                self.sync_stream(tr, key.session(), peers, out);
                tr.used_after_sync(*key);
                return self.exec_now(msg, peers, out);
            }
            WorkerMsg::Alias { out: a, src } => {
                self.sync_stream(tr, a.session(), peers, out);
                self.sync_stream(tr, src.session(), peers, out);
                return self.exec_now(msg, peers, out);
            }
            WorkerMsg::Stats { req } => {
                let pending: Vec<SessionId> = tr.streams.keys().copied().collect();
                for s in pending {
                    self.settle(tr, s);
                }
                self.flush_all(tr, peers, out);
                let mut stats = self.stats();
                stats.hotpath = tr.hotpath_stats();
                stats.compile = self.compile_stats(tr.cache.stats.clone());
                out.push(WorkerReply::Stats {
                    req: *req,
                    stats: Box::new(stats),
                });
                return;
            }
            WorkerMsg::Barrier { .. } => {
                self.flush_all(tr, peers, out);
                return self.exec_now(msg, peers, out);
            }
            WorkerMsg::FreeSession { session } => {
                self.settle(tr, *session);
                tr.idle.retain(|x| x != session);
                if let Some(st) = tr.streams.remove(session) {
                    // A streamed run only made tensors of this session: dropped with it.
                    tr.gone.0 += st.det.total;
                    tr.gone.1 += st.det.hot_instructions;
                    tr.gone.2 += st.det.unique_sequences();
                    tr.gone.3 += st.det.hot().len() as u64;
                }
                return self.exec_now(msg, peers, out);
            }
            WorkerMsg::CompileRegion { session, enter } => {
                return self.compile_region(tr, *session, *enter, peers, out);
            }
            WorkerMsg::Peers { .. }
            | WorkerMsg::PeerLost { .. }
            | WorkerMsg::Ping
            | WorkerMsg::Timing { .. } => return self.exec_now(msg, peers, out),
        };
        let Some(msg) = self.stream_known(tr, s, msg, peers, out) else {
            return;
        };
        let (tensors, deferred, engine) = (&self.tensors, &self.deferred, &self.engine);
        let st = tr.stream(s);
        let step = st
            .det
            .observe(&msg, |k| Self::meta_of(tensors, deferred, engine, k));
        if let Some((r, whole)) = &mut st.region {
            match step {
                Step::Eager => {
                    r.note(&msg, |k| Self::meta_of(tensors, deferred, engine, k));
                }
                Step::Outside => {}
                _ => *whole = false,
            }
        }
        if st.det.armed() && st.region.is_none() && step == Step::Eager {
            let r = st.spec.get_or_insert_with(Record::default);
            if r.msgs.len() < MAX_SEGMENT {
                r.note(&msg, |k| Self::meta_of(tensors, deferred, engine, k));
                if let WorkerMsg::Exec { inputs, .. } = &msg {
                    let det = &st.det;
                    st.carried
                        .extend(inputs.iter().filter_map(|&k| det.made_in_last_segment(k)));
                }
                let dt = self.exec_timed(msg, peers, out);
                if let Some(r) = &mut tr.streams.get_mut(&s).expect("stream").spec {
                    r.ns += dt;
                }
                return;
            }
            st.det.disarm();
        }
        if !st.det.armed() {
            st.spec = None;
        }
        if step == Step::Eager && !matches!(msg, WorkerMsg::Free { .. }) {
            // The stream moved on to something else: a run prepared ahead is stale.
            if let Some(run) = st.ahead.drop_run() {
                st.spare = Some(run);
            }
        }
        match step {
            Step::Eager | Step::Outside => self.exec_now(msg, peers, out),
            Step::Begin => {
                let sig = st.det.active_sig().unwrap_or(0);
                st.started = Some(sig);
                out.push(WorkerReply::HotPath {
                    session: s,
                    event: HotPathEvent::Start {
                        signature: sig,
                        len: st.det.active_len().unwrap_or(0) as u32,
                    },
                });
                begin(tr, s, sig);
                self.feed(tr, s, msg, peers, out);
            }
            Step::Buffer => self.feed(tr, s, msg, peers, out),
            Step::Complete(c) => {
                let (sig, len) = {
                    let h = &st.det.hot()[c as usize];
                    (h.sig, h.hashes.len())
                };
                if st.started.take().is_none() {
                    out.push(WorkerReply::HotPath {
                        session: s,
                        event: HotPathEvent::Start {
                            signature: sig,
                            len: len as u32,
                        },
                    });
                    begin(tr, s, sig);
                }
                self.feed(tr, s, msg, peers, out);
                self.end_hot(tr, s, sig, peers, out);
            }
            Step::Deviate => {
                self.flush(tr, s, peers, out);
                self.exec_now(msg, peers, out);
            }
        }
        if tr.cfg.cache_dir.is_some() {
            tr.persist_new(s);
        }
    }

    /// Executes `msg` eagerly, returning the nanoseconds it took.
    fn exec_timed(
        &mut self,
        msg: WorkerMsg,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) -> u64 {
        let t0 = Instant::now();
        self.exec_now(msg, peers, out);
        t0.elapsed().as_nanos() as u64
    }

    /// Hands an instruction of the hot sequence being matched in stream `s` to its mode.
    fn feed(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        s: SessionId,
        msg: WorkerMsg,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        let st = tr.streams.get_mut(&s).expect("stream exists");
        match &mut st.mode {
            Mode::Idle => self.exec_now(msg, peers, out),
            Mode::Eager(ns) => {
                let ns0 = *ns;
                let dt = self.exec_timed(msg, peers, out);
                st.mode = Mode::Eager(ns0 + dt);
            }
            Mode::Record(r) => {
                let (tensors, deferred, engine) = (&self.tensors, &self.deferred, &self.engine);
                r.note(&msg, |k| Self::meta_of(tensors, deferred, engine, k));
                let dt = self.exec_timed(msg, peers, out);
                if let Mode::Record(r) = &mut tr.streams.get_mut(&s).expect("stream").mode {
                    r.ns += dt;
                }
            }
            Mode::Stream(run) => {
                match run.feed(msg, &self.tensors, &self.deferred, &mut self.engine) {
                    Fed::Ran => {}
                    Fed::Failed => self.give_up(tr, s, None, peers, out),
                    Fed::Rejected(msg) => self.give_up(tr, s, Some(*msg), peers, out),
                }
            }
        }
    }

    /// Gives up stream `s`'s streamed run: the instance is not the plan's (another candidate
    /// of the detector may still complete), or a kernel failed. What arrived (and `rest`) is
    /// replayed eagerly, which reports any error exactly as eager execution does, and recorded;
    /// the rest of the instance is recorded as it runs.
    fn give_up(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        s: SessionId,
        rest: Option<WorkerMsg>,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        let st = tr.streams.get_mut(&s).expect("stream exists");
        let Mode::Stream(run) = std::mem::replace(&mut st.mode, Mode::Idle) else {
            return;
        };
        st.ahead.abandoned(&run, &mut tr.cache.stats);
        let mut r = Record::default();
        for m in run.msgs.into_iter().chain(rest) {
            let (tensors, deferred, engine) = (&self.tensors, &self.deferred, &self.engine);
            r.note(&m, |k| Self::meta_of(tensors, deferred, engine, k));
            r.ns += self.exec_timed(m, peers, out);
        }
        tr.streams.get_mut(&s).expect("stream").mode = Mode::Record(r);
    }

    /// The fast path of an instruction streamed through a plan: the plan's match (op,
    /// canonical dataflow, external metas) comes first, and the detector is told the hash the
    /// plan's sequence has there instead of computing it ([`StreamDetector::observe_known`]),
    /// so a compiled instruction is checked once, not twice. Hands `msg` back for the usual
    /// path when the stream is not streaming a run the detector is matching at this position,
    /// or when the plan rejects `msg` (the run is then given up first).
    fn stream_known(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        s: SessionId,
        msg: WorkerMsg,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) -> Option<WorkerMsg> {
        let Some(mut st) = tr.streams.get_mut(&s) else {
            return Some(msg);
        };
        if st.settle.is_some() {
            // The stream's next instruction came before the worker was idle.
            self.settle(tr, s);
            st = tr.streams.get_mut(&s).expect("stream exists");
        }
        let Mode::Stream(run) = &mut st.mode else {
            return Some(msg);
        };
        if st.region.is_some() {
            return Some(msg);
        }
        let Some(h) = st.det.expects(run.plan.sig, run.accepted()) else {
            return Some(msg);
        };
        let failed = match run.feed(msg, &self.tensors, &self.deferred, &mut self.engine) {
            Fed::Ran => false,
            Fed::Failed => true,
            Fed::Rejected(msg) => {
                st.det.adopt_externals(run.ext_keys());
                self.give_up(tr, s, None, peers, out);
                return Some(*msg);
            }
        };
        let step = st
            .det
            .observe_known(run.msgs.last().expect("just accepted"), h);
        if failed {
            st.det.adopt_externals(run.ext_keys());
            self.give_up(tr, s, None, peers, out);
        }
        match step {
            Step::Complete(c) => {
                let sig = tr.streams[&s].det.hot()[c as usize].sig;
                self.end_hot(tr, s, sig, peers, out);
            }
            Step::Buffer => {}
            other => unreachable!("a known hash continues the match ({other:?})"),
        }
        if tr.cfg.cache_dir.is_some() {
            tr.persist_new(s);
        }
        None
    }

    /// Ends stream `s`'s hot sequence `sig`, whose last instruction was fed, and reports it.
    fn end_hot(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        s: SessionId,
        sig: u64,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        if let Some(st) = tr.streams.get_mut(&s) {
            st.started = None;
        }
        let compiled = self.complete(tr, s, sig, peers, out);
        out.push(WorkerReply::HotPath {
            session: s,
            event: HotPathEvent::End {
                signature: sig,
                compiled,
            },
        });
    }

    /// Ends stream `s`'s hot sequence `sig` (its last instruction was fed). Returns whether it
    /// ran compiled.
    fn complete(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        s: SessionId,
        sig: u64,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) -> bool {
        let st = tr.streams.get_mut(&s).expect("stream exists");
        match std::mem::replace(&mut st.mode, Mode::Idle) {
            Mode::Idle => false,
            Mode::Eager(ns) => {
                if !matches!(tr.cache.lookup(sig), Lookup::Off) {
                    tr.cache.record_eager(sig, ns);
                }
                false
            }
            Mode::Record(r) => {
                tr.cache.record_eager(sig, r.ns);
                if matches!(tr.cache.lookup(sig), Lookup::Missing) {
                    tr.cache.start_build(sig, move || compile_job(sig, &r));
                }
                false
            }
            Mode::Stream(mut run) => {
                let t0 = run.timed().then(Instant::now);
                let results = if run.plan.sig == sig && run.finished() {
                    run.results()
                } else {
                    None
                };
                let Some(promises) = results else {
                    // Not the plan's instance after all: the tensor table still has everything
                    // eager execution needs, so replay it.
                    st.ahead.abandoned(&run, &mut tr.cache.stats);
                    for m in run.msgs {
                        self.exec_now(m, peers, out);
                    }
                    return false;
                };
                let group = promises.first().map(|(_, p)| p.group.clone());
                for (k, t) in run.ready.drain(..) {
                    self.tensors.insert(k, Slot::Ready(t));
                }
                if let Some((_, p)) = promises.first() {
                    let keys = promises.iter().map(|x| x.0).collect();
                    self.deferred_groups
                        .push_back((Arc::downgrade(&p.group), keys));
                }
                for (k, p) in promises {
                    self.tensors.remove(&k);
                    self.deferred.insert(k, p);
                    self.deferred_counts.0 += 1;
                }
                for k in run.freed.drain(..) {
                    self.tensors.remove(&k);
                    if self.deferred.remove(&k).is_some() {
                        self.deferred_counts.2 += 1;
                    }
                }
                if let Some(t0) = t0 {
                    run.ns += t0.elapsed().as_nanos() as u64;
                }
                let timed = run.timed();
                let st = tr.streams.get_mut(&s).expect("stream exists");
                st.settle = Some(Settle { run, sig, group });
                if timed {
                    // The regression guard's runs: its verdict may disable the plan now.
                    self.settle(tr, s);
                } else {
                    ahead::schedule(tr, s);
                }
                true
            }
        }
    }

    /// Does stream `s`'s completed run's bookkeeping ([`Settle`]), if it waits.
    pub(super) fn settle(&mut self, tr: &mut Tracer<E::Tensor>, s: SessionId) {
        let Some(st) = tr.streams.get_mut(&s) else {
            return;
        };
        let Some(Settle {
            mut run,
            sig,
            group,
        }) = st.settle.take()
        else {
            return;
        };
        if st.ahead.completed(&run, group, &mut tr.cache.stats) {
            ahead::schedule(tr, s);
        }
        let plan = &run.plan;
        let execs = plan.names().iter().map(|x| x.1).sum::<u64>();
        self.ops_executed += execs + plan.dead as u64;
        for (name, n) in plan.names() {
            *self.by_name.entry(name).or_insert(0) += n;
        }
        self.bound_deferred(tr);
        let disable = tr.cache.record_compiled(sig, run.ns, run.plan.len() as u64);
        run.clear();
        if let Some(st) = tr.streams.get_mut(&s) {
            st.spare = Some(run);
        }
        if disable {
            disable_everywhere(tr, sig);
        }
    }

    /// Stream `s` enters or leaves a `compile: true` region. Both end a segment. A region seen
    /// for the first time is recorded as it runs; on leaving, its segment becomes hot at once
    /// and the recording is compiled, so the next entry already streams through a plan.
    fn compile_region(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        s: SessionId,
        enter: bool,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        if enter {
            self.sync_stream(tr, s, peers, out);
            let st = tr.stream(s);
            st.det.wake();
            st.region = Some((Record::default(), true));
            return;
        }
        tr.stream(s);
        self.flush(tr, s, peers, out);
        let st = tr.streams.get_mut(&s).expect("stream exists");
        let region = st.region.take();
        let sig = st.det.sync_hot();
        if let (Some(sig), Some((r, true))) = (sig, region) {
            if matches!(tr.cache.lookup(sig), Lookup::Missing) {
                tr.cache.start_build(sig, move || compile_job(sig, &r));
            }
        }
        if tr.cfg.cache_dir.is_some() {
            tr.persist_new(s);
        }
    }

    /// Computes the values of the oldest traces with deferred values beyond
    /// [`MAX_GROUPS`](super::deferred::MAX_GROUPS).
    fn bound_deferred(&mut self, tr: &mut Tracer<E::Tensor>) {
        self.deferred_groups.retain(|g| g.0.strong_count() > 0);
        while self.deferred_groups.len() > super::deferred::MAX_GROUPS {
            let Some((_, keys)) = self.deferred_groups.pop_front() else {
                break;
            };
            for k in keys {
                if let Some((sig, idx)) = self.force(k) {
                    tr.live_out_used(sig, idx);
                }
            }
        }
    }

    /// Ends stream `s`'s segment (a sync point), flushing its run in progress.
    fn sync_stream(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        s: SessionId,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        if let Some(st) = tr.streams.get_mut(&s) {
            if let Some((_, whole)) = &mut st.region {
                *whole = false;
            }
            st.det.sync();
            let spec = st.spec.take();
            if let (Some(sig), Some(r)) = (st.det.take_spec_hot(), spec) {
                // The armed segment just became hot: its recording is an instance, so the
                // next one can already run compiled.
                if matches!(tr.cache.lookup(sig), Lookup::Missing) {
                    // The instance before it was one of the same sequence: what the recorded
                    // one used of its results, the next will use of the recorded one's.
                    let used = st.carried.iter().filter(|c| c.0 == sig).map(|c| c.1);
                    tr.used_after.insert(sig, used.collect());
                    tr.cache.record_eager(sig, r.ns);
                    tr.cache.start_build(sig, move || compile_job(sig, &r));
                }
            }
            st.carried.clear();
            self.flush(tr, s, peers, out);
            if tr.cfg.cache_dir.is_some() {
                tr.persist_new(s);
            }
        }
    }

    /// Abandons stream `s`'s hot sequence in progress, bringing the tensor table to eager
    /// execution's state (a streamed run is replayed eagerly).
    fn flush(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        s: SessionId,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        let Some(st) = tr.streams.get_mut(&s) else {
            return;
        };
        st.det.abandon();
        let mode = std::mem::replace(&mut st.mode, Mode::Idle);
        if matches!(mode, Mode::Idle) {
            return;
        }
        if let Some(sig) = st.started.take() {
            out.push(WorkerReply::HotPath {
                session: s,
                event: HotPathEvent::End {
                    signature: sig,
                    compiled: false,
                },
            });
        }
        tr.cache.deviation();
        if let Mode::Stream(run) = mode {
            st.ahead.abandoned(&run, &mut tr.cache.stats);
            for m in run.msgs {
                self.exec_now(m, peers, out);
            }
        }
    }

    fn flush_all(
        &mut self,
        tr: &mut Tracer<E::Tensor>,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        let pending: Vec<SessionId> = tr
            .streams
            .iter()
            .filter(|(_, st)| !matches!(st.mode, Mode::Idle))
            .map(|(s, _)| *s)
            .collect();
        for s in pending {
            self.flush(tr, s, peers, out);
        }
    }
}

/// Picks stream `s`'s mode for hot sequence `sig`, which begins now.
fn begin<T: Clone>(tr: &mut Tracer<T>, s: SessionId, sig: u64) {
    let lookup = tr.cache.wait(sig);
    let st = tr.streams.get_mut(&s).expect("stream exists");
    if st.seen.insert(sig) && !matches!(lookup, Lookup::Missing) {
        tr.cache.hit();
    }
    let off = matches!(lookup, Lookup::Off);
    let mode = match lookup {
        Lookup::Ready(_) if tr.cache.wants_eager_sample(sig) => Mode::Eager(0),
        Lookup::Ready(plan) => {
            let split = tr.split_for(&plan);
            let timed = tr.cache.timing(sig);
            let st = tr.streams.get_mut(&s).expect("stream exists");
            if let Some(mut run) = st.ahead.take_for(&plan, &split) {
                // Predicted and (partly) run ahead: the instance now checks the prediction.
                run.set_timed(timed);
                Mode::Stream(run)
            } else {
                match st.spare.take() {
                    Some(mut run) => {
                        run.reset(plan, split, timed);
                        Mode::Stream(run)
                    }
                    None => Mode::Stream(Box::new(Run::new(plan, split, timed))),
                }
            }
        }
        Lookup::Missing => Mode::Record(Record::default()),
        Lookup::Pending | Lookup::Off => Mode::Eager(0),
    };
    let st = tr.streams.get_mut(&s).expect("stream exists");
    st.mode = mode;
    if let Some(run) = st.ahead.drop_run() {
        // Prepared for another plan (or split): its buffers serve the next run.
        st.spare.get_or_insert(run);
    }
    if off {
        disable_everywhere(tr, sig);
    }
}

/// The compile job for a recorded instance (`None` when it holds something a plan cannot).
/// Runs on the compile thread.
fn compile_job(sig: u64, r: &Record) -> Option<CompileJob> {
    let bound = bind(&r.msgs, &mut Scratch::default())?;
    let ext_metas = bound
        .ext
        .iter()
        .map(|k| r.metas.get(k).cloned())
        .collect::<Option<Vec<Meta>>>()?;
    let ops = r.msgs.iter().map(PlanOp::of).collect::<Option<Vec<_>>>()?;
    Some(CompileJob {
        sig,
        ops,
        bound,
        ext_metas,
    })
}

/// Stops every stream from matching `sig` (its plan failed or lost to eager).
fn disable_everywhere<T>(tr: &mut Tracer<T>, sig: u64) {
    for st in tr.streams.values_mut() {
        st.det.disable(sig);
    }
}
