//! The worker's synchronous core: the tensor table (ready or poisoned), instruction handling and
//! statistics. Peer transfers go through the [`Peers`] trait, so this is testable without sockets.
//! With hot-path detection on, every instruction passes through the stream modifier in
//! [`trace`] first, which may buffer a hot sequence and run it as a compiled plan.

mod ahead;
mod deferred;
mod names;
mod stream;
mod trace;

use crate::engine::Engine;
use crate::hotpath::HotPathConfig;
use gt_core::{Error, Key, Result, SessionId, WorkerId};
use gt_proto::{PeerMsg, TensorData, WorkerMsg, WorkerReply, WorkerStats};
use rustc_hash::FxHashMap;

/// What the core needs for worker-to-worker transfers.
pub trait Peers {
    /// Records the other workers' addresses.
    fn set_peers(&mut self, me: WorkerId, peers: Vec<(WorkerId, String)>);
    /// Delivers `msg` to worker `to`.
    fn send(&mut self, to: WorkerId, msg: PeerMsg) -> Result<()>;
    /// Waits for transfer `xfer` from worker `from`.
    fn recv(&mut self, from: WorkerId, xfer: u64) -> Result<TensorData>;
    /// Worker `worker` is gone: transfers still expected from it fail with `error`.
    fn lost(&mut self, worker: WorkerId, error: Error);
}

/// A tensor slot: computed, or failed with the cause every dependent inherits.
enum Slot<T> {
    Ready(T),
    Poisoned(Error),
}

/// The worker core.
pub struct WorkerState<E: Engine> {
    id: WorkerId,
    engine: E,
    tensors: FxHashMap<Key, Slot<E::Tensor>>,
    ops_executed: u64,
    by_name: FxHashMap<&'static str, u64>,
    errors: u64,
    trace: Option<Box<trace::Tracer<E::Tensor>>>,
    /// Live-outs of compiled traces not computed yet (see [`deferred`]).
    deferred: FxHashMap<Key, deferred::Promise<E::Tensor>>,
    /// Deferred values made, forced and dropped unused.
    deferred_counts: (u64, u64, u64),
    /// Traces with deferred values, oldest first, and their keys (to bound what they retain).
    deferred_groups: std::collections::VecDeque<(deferred::GroupRef<E::Tensor>, Vec<Key>)>,
}

impl<E: Engine> WorkerState<E> {
    /// A worker with no tensors and hot-path detection off.
    pub fn new(id: WorkerId, engine: E) -> Self {
        Self::with_hotpath(id, engine, &HotPathConfig::default())
    }

    /// A worker with no tensors, detecting and compiling hot sequences as `cfg` says.
    pub fn with_hotpath(id: WorkerId, engine: E, cfg: &HotPathConfig) -> Self {
        WorkerState {
            id,
            engine,
            tensors: FxHashMap::default(),
            ops_executed: 0,
            by_name: FxHashMap::default(),
            errors: 0,
            trace: cfg
                .enabled()
                .then(|| Box::new(trace::Tracer::new(cfg.clone()))),
            deferred: FxHashMap::default(),
            deferred_counts: (0, 0, 0),
            deferred_groups: Default::default(),
        }
    }

    /// Whether a client stream is inside a streamed run of a compiled plan.
    pub fn streaming(&self) -> bool {
        self.trace.as_ref().is_some_and(|t| t.streaming())
    }

    /// Handles one instruction, pushing any reply to `out`.
    pub fn handle(&mut self, msg: WorkerMsg, peers: &mut dyn Peers, out: &mut Vec<WorkerReply>) {
        if !self.deferred.is_empty() {
            for &k in deferred::reads(&msg) {
                if !self.deferred.contains_key(&k) {
                    continue;
                }
                let t0 = std::time::Instant::now();
                if let (Some((sig, idx)), Some(tr)) = (self.force(k), &mut self.trace) {
                    tr.live_out_used(sig, idx);
                    tr.cache.record_forced(sig, t0.elapsed().as_nanos() as u64);
                }
            }
        }
        match self.trace.take() {
            None => self.exec_now(msg, peers, out),
            Some(mut tr) => {
                self.handle_traced(&mut tr, msg, peers, out);
                self.trace = Some(tr);
            }
        }
    }

    /// Executes one instruction right away.
    fn exec_now(&mut self, msg: WorkerMsg, peers: &mut dyn Peers, out: &mut Vec<WorkerReply>) {
        match msg {
            WorkerMsg::Exec {
                out: key,
                op,
                inputs,
            } => {
                let mut ins = smallvec::SmallVec::<[&E::Tensor; 2]>::new();
                let mut failed = None;
                for k in &inputs {
                    match self.tensors.get(k) {
                        Some(Slot::Ready(t)) => ins.push(t),
                        Some(Slot::Poisoned(e)) => {
                            failed = Some(e.clone());
                            break;
                        }
                        None => {
                            failed =
                                Some(Error::UnknownTensor(format!("{k} on worker {}", self.id.0)));
                            break;
                        }
                    }
                }
                let slot = match failed {
                    Some(e) => Slot::Poisoned(e),
                    None => match execute_guarded(&mut self.engine, self.id, &op, &ins) {
                        Ok(t) => Slot::Ready(t),
                        Err(e) => {
                            self.errors += 1;
                            Slot::Poisoned(exec_error(self.id, op.name(), e))
                        }
                    },
                };
                drop(ins);
                self.ops_executed += 1;
                *self.by_name.entry(op.name()).or_insert(0) += 1;
                self.tensors.insert(key, slot);
            }
            WorkerMsg::Upload { out: key, data } => {
                let slot = match data.validate().and_then(|_| self.engine.upload(&data)) {
                    Ok(t) => Slot::Ready(t),
                    Err(e) => Slot::Poisoned(e),
                };
                self.ops_executed += 1;
                *self.by_name.entry("upload").or_insert(0) += 1;
                self.tensors.insert(key, slot);
            }
            WorkerMsg::Free { key } => {
                self.tensors.remove(&key);
                if !self.deferred.is_empty() && self.deferred.remove(&key).is_some() {
                    self.deferred_counts.2 += 1;
                }
            }
            WorkerMsg::FreeSession { session } => self.free_session(session),
            WorkerMsg::Alias { out: key, src } => {
                let slot = match self.tensors.get(&src) {
                    Some(Slot::Ready(t)) => Slot::Ready(t.clone()),
                    Some(Slot::Poisoned(e)) => Slot::Poisoned(e.clone()),
                    None => Slot::Poisoned(Error::UnknownTensor(format!(
                        "{src} on worker {}",
                        self.id.0
                    ))),
                };
                self.tensors.insert(key, slot);
            }
            WorkerMsg::Poison { key, error } => {
                self.tensors.insert(key, Slot::Poisoned(error));
            }
            WorkerMsg::Read { req, key } => out.push(WorkerReply::Data {
                req,
                result: self.read(key),
            }),
            WorkerMsg::Stats { req } => out.push(WorkerReply::Stats {
                req,
                stats: Box::new(self.stats()),
            }),
            WorkerMsg::Barrier { req } => out.push(WorkerReply::BarrierDone { req }),
            WorkerMsg::Send { key, to, xfer } => {
                let result = self.read(key);
                self.ops_executed += 1;
                *self.by_name.entry("send").or_insert(0) += 1;
                if let Err(e) = peers.send(
                    to,
                    PeerMsg::Tensor {
                        xfer,
                        from: self.id,
                        result,
                    },
                ) {
                    tracing::warn!(target: "gt::worker", "transfer {xfer} to worker {} failed: {e}", to.0);
                }
            }
            WorkerMsg::Recv {
                out: key,
                from,
                xfer,
            } => {
                let slot = match peers.recv(from, xfer).and_then(|d| {
                    d.validate()?;
                    self.engine.upload(&d)
                }) {
                    Ok(t) => Slot::Ready(t),
                    Err(e) => Slot::Poisoned(e),
                };
                self.ops_executed += 1;
                *self.by_name.entry("recv").or_insert(0) += 1;
                self.tensors.insert(key, slot);
            }
            WorkerMsg::Peers { peers: list } => peers.set_peers(self.id, list),
            WorkerMsg::PeerLost { worker, error } => peers.lost(worker, error),
            WorkerMsg::Ping => out.push(WorkerReply::Pong),
            // The shell (server.rs) consumes timing switches before they are queued.
            WorkerMsg::Timing { .. } => {}
            // Only the tracer acts on regions (with compilation off there is nothing to do).
            WorkerMsg::CompileRegion { .. } => {}
        }
    }

    fn read(&mut self, key: Key) -> Result<TensorData> {
        match self.tensors.get(&key) {
            Some(Slot::Ready(t)) => Ok(self.engine.download(t)),
            Some(Slot::Poisoned(e)) => Err(e.clone()),
            None => Err(Error::UnknownTensor(format!(
                "{key} on worker {}",
                self.id.0
            ))),
        }
    }

    /// Computes deferred value `key` (if it is one) into the tensor table. Returns the trace
    /// signature and live-out index it was, for the tracer to learn from.
    fn force(&mut self, key: Key) -> Option<(u64, usize)> {
        let p = self.deferred.remove(&key)?;
        let (v, ran) = p.force(&mut self.engine);
        self.ops_executed += ran;
        self.deferred_counts.1 += 1;
        let slot = match v {
            Ok(t) => Slot::Ready(t),
            Err(e) => {
                self.errors += 1;
                Slot::Poisoned(e)
            }
        };
        self.tensors.insert(key, slot);
        let sig = p.group.lock().unwrap_or_else(|e| e.into_inner()).sig;
        Some((sig, p.idx))
    }

    fn free_session(&mut self, session: SessionId) {
        let before = self.deferred.len();
        self.deferred.retain(|k, _| k.session() != session);
        self.deferred_counts.2 += (before - self.deferred.len()) as u64;
        let before = self.tensors.len();
        self.tensors.retain(|k, _| k.session() != session);
        tracing::debug!(target: "gt::worker", "freed {} tensors of {session}", before - self.tensors.len());
    }

    /// The current statistics.
    pub fn stats(&self) -> WorkerStats {
        let mut ops_by_name: Vec<(String, u64)> = self
            .by_name
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        ops_by_name.sort();
        let pool = self.engine.pool_stats();
        let mut live = 0u64;
        let mut sessions = rustc_hash::FxHashSet::default();
        for (k, slot) in &self.tensors {
            if let Slot::Ready(_) = slot {
                live += 1;
                sessions.insert(k.session());
            }
        }
        WorkerStats {
            worker: self.id.0,
            ops_executed: self.ops_executed,
            ops_by_name,
            live_tensors: live,
            bytes_in_use: pool.in_use_bytes,
            pool_hits: pool.hits,
            pool_misses: pool.misses,
            pool_cached_bytes: pool.cached_bytes,
            errors: self.errors,
            sessions: sessions.len() as u64,
            alive: true,
            busy_ns: 0,
            hotpath: self
                .trace
                .as_ref()
                .map(|t| t.hotpath_stats())
                .unwrap_or_default(),
            compile: self.compile_stats(
                self.trace
                    .as_ref()
                    .map(|t| t.cache.stats.clone())
                    .unwrap_or_default(),
            ),
        }
    }

    /// The compiler's counters with the worker's deferred-value counts added.
    fn compile_stats(&self, mut c: gt_proto::CompileStats) -> gt_proto::CompileStats {
        (c.deferred_values, c.deferred_forced, c.deferred_dropped) = self.deferred_counts;
        c
    }
}

/// Runs a kernel so that a panic inside it (a bug) poisons this one result instead of killing
/// the worker and everything it holds.
fn execute_guarded<E: Engine>(
    engine: &mut E,
    worker: WorkerId,
    op: &gt_ops::Op,
    ins: &[&E::Tensor],
) -> Result<E::Tensor> {
    let run = std::panic::AssertUnwindSafe(|| engine.execute(op, ins));
    std::panic::catch_unwind(run).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::Exec {
            worker: worker.0,
            op: op.name().into(),
            msg: format!("kernel panicked: {msg}"),
        })
    })
}

fn exec_error(worker: WorkerId, op: &str, e: Error) -> Error {
    match e {
        // Already a user-facing error with the op named; keep it as is.
        Error::Shape { .. }
        | Error::Axis { .. }
        | Error::DType { .. }
        | Error::Invalid { .. }
        | Error::Exec { .. } => e,
        other => Error::Exec {
            worker: worker.0,
            op: op.into(),
            msg: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PoolStats;
    use gt_core::{DType, ReqId};
    use gt_ops::{Op, UnaryOp};

    /// A scalar engine whose `exp` kernel panics, to test the guard; it counts the `full`s it
    /// runs.
    #[derive(Default)]
    struct Scalars {
        fulls: usize,
    }
    impl Engine for Scalars {
        type Tensor = f64;
        fn execute(&mut self, op: &Op, inputs: &[&f64]) -> Result<f64> {
            match op {
                Op::Full { value, .. } => {
                    self.fulls += 1;
                    Ok(*value)
                }
                Op::Unary(UnaryOp::Neg) => Ok(-inputs[0]),
                Op::Unary(UnaryOp::Exp) => panic!("boom"),
                other => Err(Error::invalid(other.name(), "not in this test engine")),
            }
        }
        fn upload(&mut self, d: &TensorData) -> Result<f64> {
            Ok(d.to_f64_vec()[0])
        }
        fn download(&mut self, t: &f64) -> TensorData {
            TensorData::from_f64([1], &[*t])
        }
        fn meta(&self, _: &f64) -> gt_ops::Meta {
            gt_ops::Meta {
                shape: [1].into(),
                dtype: DType::F64,
            }
        }
        fn storage_bytes(&self, _: &f64) -> usize {
            8
        }
        fn pool_stats(&self) -> PoolStats {
            PoolStats::default()
        }
    }

    pub(super) struct NoPeers;
    impl Peers for NoPeers {
        fn set_peers(&mut self, _: WorkerId, _: Vec<(WorkerId, String)>) {}
        fn send(&mut self, _: WorkerId, _: PeerMsg) -> Result<()> {
            Ok(())
        }
        fn recv(&mut self, from: WorkerId, _: u64) -> Result<TensorData> {
            Err(Error::WorkerLost {
                worker: from.0,
                reason: "test".into(),
            })
        }
        fn lost(&mut self, _: WorkerId, _: Error) {}
    }

    fn key(n: u64) -> Key {
        Key::new(SessionId(1), n)
    }

    fn read(w: &mut WorkerState<Scalars>, k: Key) -> Result<TensorData> {
        let mut out = Vec::new();
        w.handle(
            WorkerMsg::Read {
                req: ReqId(1),
                key: k,
            },
            &mut NoPeers,
            &mut out,
        );
        match out.pop() {
            Some(WorkerReply::Data { result, .. }) => result,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn exec(w: &mut WorkerState<Scalars>, out: u64, op: Op, ins: &[u64]) {
        let inputs = ins.iter().map(|&i| key(i)).collect();
        w.handle(
            WorkerMsg::Exec {
                out: key(out),
                op,
                inputs,
            },
            &mut NoPeers,
            &mut Vec::new(),
        );
    }

    #[test]
    fn failures_poison_dependents_and_a_panicking_kernel_spares_the_worker() {
        let mut w = WorkerState::new(WorkerId(3), Scalars::default());
        exec(
            &mut w,
            1,
            Op::Full {
                shape: [1].into(),
                value: 2.0,
                dtype: DType::F64,
            },
            &[],
        );
        exec(&mut w, 2, Op::Unary(UnaryOp::Exp), &[1]);
        exec(&mut w, 3, Op::Unary(UnaryOp::Neg), &[2]);
        let e = read(&mut w, key(3)).unwrap_err().to_string();
        assert!(
            e.contains("worker 3") && e.contains("exp") && e.contains("boom"),
            "{e}"
        );
        exec(&mut w, 4, Op::Unary(UnaryOp::Neg), &[99]);
        assert!(matches!(read(&mut w, key(4)), Err(Error::UnknownTensor(_))));
        exec(&mut w, 5, Op::Unary(UnaryOp::Neg), &[1]);
        assert_eq!(read(&mut w, key(5)).unwrap().to_f64_vec(), vec![-2.0]);
        let mut out = Vec::new();
        let lost = WorkerMsg::Recv {
            out: key(6),
            from: WorkerId(0),
            xfer: 1,
        };
        w.handle(lost, &mut NoPeers, &mut out);
        assert!(matches!(
            read(&mut w, key(6)),
            Err(Error::WorkerLost { worker: 0, .. })
        ));
        w.handle(
            WorkerMsg::FreeSession {
                session: SessionId(1),
            },
            &mut NoPeers,
            &mut out,
        );
        assert_eq!(w.stats().live_tensors, 0);
        assert_eq!(w.stats().errors, 1);
    }

    #[test]
    fn hot_sequences_emit_one_start_and_end_per_run_and_flush_on_reads() {
        let cfg = HotPathConfig {
            auto_compile: true,
            threshold: 2,
            min_seq: 2,
            compile_inline: true,
            keep_slower: true,
            ..Default::default()
        };
        let mut w = WorkerState::with_hotpath(WorkerId(0), Scalars::default(), &cfg);
        let full = Op::Full {
            shape: [1].into(),
            value: 3.0,
            dtype: DType::F64,
        };
        let mut events = Vec::new();
        for i in 0..6u64 {
            let base = 10 * (i + 1);
            let mut out = Vec::new();
            for m in [
                WorkerMsg::Exec {
                    out: key(base),
                    op: full.clone(),
                    inputs: Default::default(),
                },
                WorkerMsg::Exec {
                    out: key(base + 1),
                    op: Op::Unary(UnaryOp::Neg),
                    inputs: [key(base)].into_iter().collect(),
                },
                WorkerMsg::Free { key: key(base) },
            ] {
                w.handle(m, &mut NoPeers, &mut out);
            }
            events.push(out.len());
            assert_eq!(
                read(&mut w, key(base + 1)).unwrap().to_f64_vec(),
                vec![-3.0]
            );
        }
        // Iterations 1-2 make it hot; from 3 on, each run is one Start and one End. Iteration 2
        // was recorded as it ran (speculatively) and compiled when it ended hot, so every run
        // from 3 on is compiled.
        assert_eq!(events, vec![0, 0, 2, 2, 2, 2]);
        let st = w.stats();
        assert_eq!(st.compile.traces_compiled, 1);
        assert_eq!(st.compile.compiled_runs, 4);
        assert_eq!(st.hotpath.hot_sequences, 1);
        assert_eq!(st.hotpath.total_instructions, 18);
        assert_eq!(st.live_tensors, 6);
        // `full` and the `neg` of it are constants. The read after the recorded iteration 2
        // used its live-out, so run 3 computes it as the trace streams in rather than deferring
        // it, and keeps the constants: runs 4-6 reuse them.
        assert_eq!(w.engine.fulls, 3, "two eager iterations, then one kept");
        assert_eq!(
            st.compile.deferred_values, 0,
            "a used live-out is never deferred"
        );
        assert_eq!(st.compile.folded_instructions, 2);
    }
}
