//! The worker's hot-path stream modifier: per-stream detection, buffering of hot sequences,
//! flushing on deviation or sync, and running buffered sequences as compiled plans.
//!
//! Invariant: the tensor table after any instruction that can observe it (a read, a transfer,
//! stats, a barrier) is exactly what eager execution would have produced. Buffered instructions
//! of a stream are flushed (executed eagerly, in order) before anything that could observe them,
//! so `item()` in the middle of a hot sequence never waits for a sequence that will not finish.

use super::{Slot, WorkerState};
use crate::compile::cache::{Lookup, PlanCache};
use crate::compile::persist::{self, Saved};
use crate::compile::program::{CompileJob, PlanOp};
use crate::compile::trace::{bind, Scratch};
use crate::engine::Engine;
use crate::hotpath::detector::Params;
use crate::hotpath::{HotPathConfig, Step, StreamDetector};
use crate::state::Peers;
use gt_core::{Key, SessionId};
use gt_ops::Meta;
use gt_proto::{HotPathEvent, HotPathStats, WorkerMsg, WorkerReply};
use rustc_hash::{FxHashMap, FxHashSet};
use std::time::Instant;

/// One client stream.
struct Stream {
    det: StreamDetector,
    buf: Vec<WorkerMsg>,
    /// The signature announced by the last `HotPath::Start`.
    started: Option<u64>,
    /// Signatures this stream has already looked up in the plan cache.
    seen: FxHashSet<u64>,
}

/// Detector states, buffers and the plan cache of one worker.
pub(crate) struct Tracer {
    cfg: HotPathConfig,
    streams: FxHashMap<SessionId, Stream>,
    pub(crate) cache: PlanCache,
    scratch: Scratch,
    saved: Vec<Saved>,
    /// Counters of streams that have ended.
    gone: (u64, u64, u64, u64),
}

impl Tracer {
    pub(crate) fn new(cfg: HotPathConfig) -> Tracer {
        let saved = cfg
            .cache_dir
            .as_deref()
            .map(persist::load)
            .unwrap_or_default();
        if !saved.is_empty() {
            tracing::info!(target: "gt::compile", "{} hot sequences loaded from the compile cache", saved.len());
        }
        Tracer {
            cache: PlanCache::new(cfg.compile_inline),
            cfg,
            streams: FxHashMap::default(),
            scratch: Scratch::default(),
            saved,
            gone: (0, 0, 0, 0),
        }
    }

    fn stream(&mut self, s: SessionId) -> &mut Stream {
        let (cfg, saved) = (&self.cfg, &self.saved);
        self.streams.entry(s).or_insert_with(|| {
            let mut det = StreamDetector::new(Params {
                threshold: cfg.effective_threshold(),
                min_seq: cfg.min_seq,
                window: cfg.window,
            });
            for sv in saved {
                det.preload(sv.sig, sv.hashes.clone(), sv.anchored);
            }
            Stream {
                det,
                buf: Vec::new(),
                started: None,
                seen: FxHashSet::default(),
            }
        })
    }

    /// Seed 000's `hotpath` section, summed over streams.
    pub(crate) fn hotpath_stats(&self) -> HotPathStats {
        let (mut total, mut hot, mut uniq, mut hseq) = self.gone;
        for s in self.streams.values() {
            total += s.det.total;
            hot += s.det.hot_instructions;
            uniq += s.det.unique_sequences();
            hseq += s.det.hot().len() as u64;
        }
        HotPathStats {
            enabled: true,
            total_instructions: total,
            hot_instructions: hot,
            unique_sequences: uniq,
            hot_sequences: hseq,
            hot_threshold: self.cfg.effective_threshold() as u64,
            window_size: self.cfg.window as u64,
        }
    }

    /// Persists sequences that just became hot in stream `s`.
    fn persist_new(&mut self, s: SessionId) {
        let Some(dir) = self.cfg.cache_dir.clone() else {
            return;
        };
        let Some(st) = self.streams.get_mut(&s) else {
            return;
        };
        for i in st.det.take_new_hot() {
            let h = &st.det.hot()[i as usize];
            let sv = Saved {
                anchored: h.anchored,
                sig: h.sig,
                hashes: h.hashes.clone(),
            };
            if self.saved.iter().any(|x| x.sig == sv.sig) {
                continue;
            }
            if let Err(e) = persist::save(&dir, &sv) {
                tracing::warn!(target: "gt::compile", "cannot write the compile cache in {}: {e}", dir.display());
            }
            self.saved.push(sv);
        }
    }
}

impl<E: Engine> WorkerState<E> {
    fn meta_of(tensors: &FxHashMap<Key, Slot<E::Tensor>>, engine: &E, k: Key) -> Option<Meta> {
        match tensors.get(&k) {
            Some(Slot::Ready(t)) => Some(engine.meta(t)),
            _ => None,
        }
    }

    pub(super) fn handle_traced(
        &mut self,
        tr: &mut Tracer,
        msg: WorkerMsg,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        let s = match &msg {
            WorkerMsg::Exec { out: k, inputs, .. } => {
                let s = k.session();
                if inputs.iter().any(|i| i.session() != s) {
                    // Dispatcher temporaries of another stream: not part of any trace.
                    self.sync_stream(tr, s, peers, out);
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
                return self.exec_now(msg, peers, out);
            }
            WorkerMsg::Alias { out: a, src } => {
                self.sync_stream(tr, a.session(), peers, out);
                self.sync_stream(tr, src.session(), peers, out);
                return self.exec_now(msg, peers, out);
            }
            WorkerMsg::Stats { req } => {
                self.flush_all(tr, peers, out);
                let mut stats = self.stats();
                stats.hotpath = tr.hotpath_stats();
                stats.compile = tr.cache.stats.clone();
                out.push(WorkerReply::Stats { req: *req, stats });
                return;
            }
            WorkerMsg::Barrier { .. } => {
                self.flush_all(tr, peers, out);
                return self.exec_now(msg, peers, out);
            }
            WorkerMsg::FreeSession { session } => {
                if let Some(st) = tr.streams.remove(session) {
                    // Its buffered instructions only made tensors that are dropped now.
                    tr.gone.0 += st.det.total;
                    tr.gone.1 += st.det.hot_instructions;
                    tr.gone.2 += st.det.unique_sequences();
                    tr.gone.3 += st.det.hot().len() as u64;
                }
                return self.exec_now(msg, peers, out);
            }
            WorkerMsg::Peers { .. }
            | WorkerMsg::PeerLost { .. }
            | WorkerMsg::Ping
            | WorkerMsg::Timing { .. } => return self.exec_now(msg, peers, out),
        };
        let (tensors, engine) = (&self.tensors, &self.engine);
        let st = tr.stream(s);
        let step = st.det.observe(&msg, |k| Self::meta_of(tensors, engine, k));
        match step {
            Step::Eager => self.exec_now(msg, peers, out),
            Step::Begin => {
                let sig = st.det.active_sig().unwrap_or(0);
                st.started = Some(sig);
                st.buf.push(msg);
                out.push(WorkerReply::HotPath {
                    session: s,
                    event: HotPathEvent::Start {
                        signature: sig,
                        len: st.det.active_len().unwrap_or(0) as u32,
                    },
                });
            }
            Step::Buffer => st.buf.push(msg),
            Step::Complete(c) => {
                st.buf.push(msg);
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
                }
                let compiled = self.run_trace(tr, s, sig, peers, out);
                out.push(WorkerReply::HotPath {
                    session: s,
                    event: HotPathEvent::End {
                        signature: sig,
                        compiled,
                    },
                });
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

    /// Ends stream `s`'s segment (a sync point), flushing what it buffered.
    fn sync_stream(
        &mut self,
        tr: &mut Tracer,
        s: SessionId,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        if let Some(st) = tr.streams.get_mut(&s) {
            st.det.sync();
            self.flush(tr, s, peers, out);
            if tr.cfg.cache_dir.is_some() {
                tr.persist_new(s);
            }
        }
    }

    /// Executes stream `s`'s buffered prefix eagerly.
    fn flush(
        &mut self,
        tr: &mut Tracer,
        s: SessionId,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) {
        let Some(st) = tr.streams.get_mut(&s) else {
            return;
        };
        st.det.abandon();
        if st.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut st.buf);
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
        for m in buf {
            self.exec_now(m, peers, out);
        }
    }

    fn flush_all(&mut self, tr: &mut Tracer, peers: &mut dyn Peers, out: &mut Vec<WorkerReply>) {
        let pending: Vec<SessionId> = tr
            .streams
            .iter()
            .filter(|(_, st)| !st.buf.is_empty())
            .map(|(s, _)| *s)
            .collect();
        for s in pending {
            self.flush(tr, s, peers, out);
        }
    }

    /// Runs stream `s`'s complete buffered sequence `sig`: compiled when a plan accepts it, else
    /// eagerly (starting a compile when none exists). Returns whether it ran compiled.
    fn run_trace(
        &mut self,
        tr: &mut Tracer,
        s: SessionId,
        sig: u64,
        peers: &mut dyn Peers,
        out: &mut Vec<WorkerReply>,
    ) -> bool {
        let st = tr.streams.get_mut(&s).expect("stream exists");
        let msgs = std::mem::take(&mut st.buf);
        let first_look = st.seen.insert(sig);
        let lookup = tr.cache.lookup(sig);
        if first_look && !matches!(lookup, Lookup::Missing) {
            tr.cache.hit();
        }
        let bound = bind(&msgs, &mut tr.scratch);
        // Metas of the external inputs; `None` if any is missing or failed (eager reports it).
        let ext_metas: Option<Vec<Meta>> = bound.as_ref().and_then(|b| {
            b.ext
                .iter()
                .map(|k| Self::meta_of(&self.tensors, &self.engine, *k))
                .collect()
        });
        match (lookup, bound, ext_metas) {
            (Lookup::Ready(plan), Some(b), Some(metas)) if plan.accepts(&msgs, &b, &metas) => {
                let t0 = Instant::now();
                let ext: Vec<&E::Tensor> = b
                    .ext
                    .iter()
                    .map(|k| match self.tensors.get(k) {
                        Some(Slot::Ready(t)) => t,
                        _ => unreachable!("external inputs were checked"),
                    })
                    .collect();
                let engine = &mut self.engine;
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    plan.run(engine, &msgs, &ext)
                }));
                drop(ext);
                match run {
                    Ok(Ok(live)) => {
                        for (t, (_, k)) in live.into_iter().zip(&b.live) {
                            self.tensors.insert(*k, Slot::Ready(t));
                        }
                        for &j in &b.free_ext {
                            self.tensors.remove(&b.ext[j as usize]);
                        }
                        let execs = plan.names().iter().map(|x| x.1).sum::<u64>() as usize;
                        self.ops_executed += (execs + plan.dead) as u64;
                        for (name, n) in plan.names() {
                            *self.by_name.entry(name).or_insert(0) += n;
                        }
                        let ns = t0.elapsed().as_nanos() as u64;
                        if tr.cache.record_compiled(sig, ns, msgs.len() as u64) {
                            disable_everywhere(tr, sig);
                        }
                        true
                    }
                    // A kernel failed or panicked: nothing was stored, so replaying eagerly
                    // poisons exactly what eager execution poisons.
                    _ => {
                        self.replay(msgs, peers, out);
                        false
                    }
                }
            }
            (Lookup::Missing, Some(b), Some(metas)) => {
                let ops: Option<Vec<PlanOp>> = msgs.iter().map(PlanOp::of).collect();
                let t0 = Instant::now();
                let job = ops.map(|ops| CompileJob {
                    sig,
                    ops,
                    bound: b,
                    ext_metas: metas,
                });
                self.replay(msgs, peers, out);
                tr.cache.record_eager(sig, t0.elapsed().as_nanos() as u64);
                if let Some(job) = job {
                    tr.cache.start(job);
                }
                false
            }
            (Lookup::Off, ..) => {
                disable_everywhere(tr, sig);
                self.replay(msgs, peers, out);
                false
            }
            _ => {
                let t0 = Instant::now();
                self.replay(msgs, peers, out);
                tr.cache.record_eager(sig, t0.elapsed().as_nanos() as u64);
                false
            }
        }
    }

    fn replay(&mut self, msgs: Vec<WorkerMsg>, peers: &mut dyn Peers, out: &mut Vec<WorkerReply>) {
        for m in msgs {
            self.exec_now(m, peers, out);
        }
    }
}

/// Stops every stream from buffering `sig` (its plan failed or lost to eager).
fn disable_everywhere(tr: &mut Tracer, sig: u64) {
    for st in tr.streams.values_mut() {
        st.det.disable(sig);
    }
}
