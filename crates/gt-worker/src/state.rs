//! The worker's synchronous core: the tensor table (ready or poisoned), instruction handling and
//! statistics. Peer transfers go through the [`Peers`] trait, so this is testable without sockets.

use crate::engine::Engine;
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
}

impl<E: Engine> WorkerState<E> {
    /// A worker with no tensors.
    pub fn new(id: WorkerId, engine: E) -> Self {
        WorkerState {
            id,
            engine,
            tensors: FxHashMap::default(),
            ops_executed: 0,
            by_name: FxHashMap::default(),
            errors: 0,
        }
    }

    /// Handles one instruction, pushing any reply to `out`.
    pub fn handle(&mut self, msg: WorkerMsg, peers: &mut dyn Peers, out: &mut Vec<WorkerReply>) {
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
                    None => match self.engine.execute(&op, &ins) {
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
                stats: self.stats(),
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

    fn free_session(&mut self, session: SessionId) {
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
        }
    }
}

fn exec_error(worker: WorkerId, op: &str, e: Error) -> Error {
    match e {
        // Already a user-facing error with the op named; keep it as is.
        Error::Shape { .. } | Error::Axis { .. } | Error::DType { .. } | Error::Invalid { .. } => e,
        other => Error::Exec {
            worker: worker.0,
            op: op.into(),
            msg: other.to_string(),
        },
    }
}
