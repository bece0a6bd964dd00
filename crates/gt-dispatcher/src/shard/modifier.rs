//! The sharding modifier: what the router calls for tensors that are (or are to be)
//! distributed. New tensors inside a configured signal scope — or large ones with
//! `GT_AUTO_SHARD=1` — are created directly as shards or replicas; an op with a distributed
//! input runs per [`rules::decide`]: on every part at once, with the movement it needs injected
//! first, or on one worker after a gather. Reads gather in shard order; frees free every part.

use super::collective::{exec_msg, Src};
use super::config::ShardSpec;
use super::placement::{even_extents, offsets, slice_specs, Dist, Layout};
use super::rules::{self, Decision, Input};
use crate::core::{Core, Pending, Place, Session};
use gt_core::{Error, Key, ReqId, Shape, TensorId, WorkerId};
use gt_ops::{Meta, Op};
use gt_proto::{ShardStats, TensorData, WorkerMsg};
use smallvec::SmallVec;
use std::sync::Arc;

impl Core {
    /// Adds to the session's and the dispatcher's sharding counters.
    pub(crate) fn count(&mut self, s: &mut Session, f: impl Fn(&mut ShardStats)) {
        f(&mut s.shard_stats);
        f(&mut self.shard_total);
    }

    fn live_workers(&self) -> Vec<WorkerId> {
        (0..self.workers.len())
            .filter(|&i| self.workers[i].alive)
            .map(|i| WorkerId(i as u32))
            .collect()
    }

    /// Where a new tensor of `meta` goes: distributed by the innermost open signal scope that
    /// shards, or along axis 0 over every worker when auto-sharding and it is large enough;
    /// `None` means the usual single worker.
    pub(crate) fn creation_dist(&self, s: &Session, meta: &Meta) -> Result<Option<Dist>, Error> {
        let scoped = scope_spec(s);
        let dims = meta.shape.dims();
        let (name, spec) = match scoped {
            Some(x) => x,
            None => {
                let auto = self.cfg.auto_shard.filter(|&t| meta.shape.numel() >= t);
                let live = self.live_workers();
                return Ok(match (auto, dims.first()) {
                    (Some(_), Some(&d0)) if d0 >= 2 && live.len() >= 2 => {
                        let extents = even_extents(d0, live.len());
                        Some(Dist {
                            workers: live[..extents.len()].to_vec(),
                            layout: Layout::Shard { axis: 0, extents },
                        })
                    }
                    _ => None,
                });
            }
        };
        let workers = match &spec.workers {
            None => self.live_workers(),
            Some(list) => {
                let mut ws = Vec::with_capacity(list.len());
                for &w in list {
                    match self.workers.get(w as usize) {
                        Some(slot) if slot.alive => ws.push(WorkerId(w)),
                        Some(_) => {
                            return Err(Error::Config(format!(
                                "signal '{name}' places tensors on worker {w}, which is lost"
                            )))
                        }
                        None => {
                            return Err(Error::Config(format!(
                                "signal '{name}': worker index {w} is out of range ({} workers)",
                                self.workers.len()
                            )))
                        }
                    }
                }
                ws
            }
        };
        if workers.is_empty() {
            return Ok(None);
        }
        // A scalar cannot be split: it is replicated, so that using it with shards (a loss
        // gradient's seed, a constant) moves nothing.
        if spec.replicated || dims.is_empty() {
            return Ok(Some(Dist {
                layout: Layout::Replicate,
                workers,
            }));
        }
        let Some(&dim) = dims.get(spec.axis) else {
            return Err(Error::axis(
                "shard",
                format!(
                    "signal '{name}' shards axis {} but the tensor created in it has shape {} \
                     (rank {})",
                    spec.axis,
                    meta.shape,
                    dims.len()
                ),
            ));
        };
        if dim == 0 {
            return Ok(None);
        }
        let extents = even_extents(dim, workers.len());
        Ok(Some(Dist {
            workers: workers[..extents.len()].to_vec(),
            layout: Layout::Shard {
                axis: spec.axis,
                extents,
            },
        }))
    }

    /// Creates `out = op()` (a creation op) directly as the parts of `d`.
    pub(crate) fn create_dist(
        &mut self,
        s: &mut Session,
        out: TensorId,
        op: Op,
        meta: Meta,
        d: Dist,
    ) {
        let key = Key::new(s.id, out.0);
        let offs = match &d.layout {
            Layout::Shard { extents, .. } => offsets(extents),
            Layout::Replicate | Layout::Partial => vec![0; d.workers.len()],
        };
        for (j, &w) in d.workers.iter().enumerate() {
            let part = d.layout.part_shape(&meta.shape, j);
            let msg = match (&op, &d.layout) {
                (Op::Full { value, dtype, .. }, _) => Op::Full {
                    shape: part,
                    value: *value,
                    dtype: *dtype,
                },
                (
                    Op::Arange {
                        start, step, dtype, ..
                    },
                    Layout::Shard { .. },
                ) => Op::Arange {
                    start: start + offs[j] as f64 * step,
                    step: *step,
                    len: part.dims()[0],
                    dtype: *dtype,
                },
                (Op::Random { .. }, Layout::Shard { axis, extents }) => {
                    // Element i of a random tensor depends on its index in the full tensor:
                    // each worker draws the whole tensor and keeps its slice (no transfer).
                    let full = self.temp_key();
                    self.inject(w, exec_msg(full, op.clone()));
                    let specs = slice_specs(&meta.shape, *axis, offs[j], extents[j]);
                    self.workers[w.0 as usize].outbox.push(WorkerMsg::Exec {
                        out: key,
                        op: Op::Slice { specs },
                        inputs: smallvec::smallvec![full],
                    });
                    self.inject(w, WorkerMsg::Free { key: full });
                    continue;
                }
                (other, _) => other.clone(),
            };
            self.workers[w.0 as usize].outbox.push(exec_msg(key, msg));
        }
        self.count(s, |st| st.placed_creations += 1);
        self.track(s, out, Place::Dist(Arc::new(d)), Some(meta));
    }

    /// Uploads `data` as the parts of `d` (the dispatcher splits the bytes it carries anyway).
    pub(crate) fn upload_dist(
        &mut self,
        s: &mut Session,
        out: TensorId,
        data: TensorData,
        d: Dist,
    ) {
        let key = Key::new(s.id, out.0);
        let meta = Meta::new(data.shape.clone(), data.dtype);
        for (j, &w) in d.workers.iter().enumerate() {
            let part = match &d.layout {
                Layout::Shard { axis, extents } => {
                    split_bytes(&data, *axis, offsets(extents)[j], extents[j])
                }
                Layout::Replicate | Layout::Partial => data.clone(),
            };
            self.workers[w.0 as usize].outbox.push(WorkerMsg::Upload {
                out: key,
                data: part,
            });
        }
        self.count(s, |st| st.placed_creations += 1);
        self.track(s, out, Place::Dist(Arc::new(d)), Some(meta));
    }

    /// Runs `out = op(inputs)` where at least one input is distributed.
    pub(crate) fn exec_dist(
        &mut self,
        s: &mut Session,
        out: TensorId,
        op: Op,
        inputs: &[TensorId],
        places: &[Place],
        out_meta: Meta,
    ) {
        let metas: Vec<Meta> = inputs
            .iter()
            .map(|id| s.tensors[id].meta.clone().expect("checked by the router"))
            .collect();
        let meta_refs: Vec<&Meta> = metas.iter().collect();
        let ins: Vec<Input> = places
            .iter()
            .map(|p| match p {
                Place::On(w) => Input::On(*w),
                Place::Dist(d) => Input::Dist(d),
                Place::Poisoned(_) => unreachable!("poisoned inputs are handled by the router"),
            })
            .collect();
        let decision = rules::decide(&op, &meta_refs, &ins, &out_meta);
        let srcs: Vec<Src> = inputs
            .iter()
            .zip(places)
            .map(|(id, p)| {
                let key = Key::new(s.id, id.0);
                match p {
                    Place::On(w) => Src::On(*w, key),
                    Place::Dist(d) => Src::Dist(d, key),
                    Place::Poisoned(_) => unreachable!("handled by the router"),
                }
            })
            .collect();
        let out_key = Key::new(s.id, out.0);
        match decision {
            Decision::One { worker, gathered } => {
                let mut temps = Vec::new();
                let keys: SmallVec<[Key; 2]> = srcs
                    .iter()
                    .zip(&metas)
                    .map(|(src, m)| self.gather_to(s, *src, m, worker, &mut temps))
                    .collect();
                self.workers[worker.0 as usize]
                    .outbox
                    .push(WorkerMsg::Exec {
                        out: out_key,
                        op,
                        inputs: keys,
                    });
                self.free_temps(temps);
                if gathered {
                    self.count(s, |st| st.gathered_ops += 1);
                }
                self.track(s, out, Place::On(worker), Some(out_meta));
            }
            Decision::Parts(plan) => {
                let mut temps = Vec::new();
                let mut keys: Vec<Vec<Key>> = Vec::with_capacity(srcs.len());
                for ((src, m), want) in srcs.iter().zip(&metas).zip(&plan.inputs) {
                    let parts = self.convert(s, *src, m, want, &plan.workers);
                    temps.extend(parts.temps);
                    keys.push(parts.keys);
                }
                let n = plan.workers.len();
                let direct = plan.post.is_none() && plan.combine.is_none();
                let mut results = Vec::with_capacity(n);
                for (j, &w) in plan.workers.iter().enumerate() {
                    let ins: SmallVec<[Key; 2]> = keys.iter().map(|k| k[j]).collect();
                    let dst = if direct { out_key } else { self.temp_key() };
                    self.workers[w.0 as usize].outbox.push(WorkerMsg::Exec {
                        out: dst,
                        op: plan.ops[j].clone(),
                        inputs: ins,
                    });
                    if let Some(post) = &plan.post {
                        let msg = WorkerMsg::Exec {
                            out: out_key,
                            op: post.clone(),
                            inputs: smallvec::smallvec![dst],
                        };
                        self.inject(w, msg);
                        self.inject(w, WorkerMsg::Free { key: dst });
                    }
                    results.push(dst);
                }
                if let Some(c) = plan.combine {
                    self.count(s, |st| st.all_reduces += 1);
                    let d = Dist {
                        layout: Layout::Partial,
                        workers: plan.workers.clone(),
                    };
                    let part_meta = Meta::new(out_meta.shape.clone(), out_meta.dtype);
                    let combined = self.all_reduce(s, &d, &results, &part_meta, c);
                    for (j, &w) in plan.workers.iter().enumerate() {
                        self.inject(
                            w,
                            WorkerMsg::Alias {
                                out: out_key,
                                src: combined[j],
                            },
                        );
                        self.inject(w, WorkerMsg::Free { key: combined[j] });
                        self.inject(w, WorkerMsg::Free { key: results[j] });
                    }
                }
                self.free_temps(temps);
                self.count(s, |st| {
                    st.sharded_ops += 1;
                    st.shard_instructions += n as u64;
                });
                let d = Dist {
                    layout: plan.out,
                    workers: plan.workers,
                };
                self.track(s, out, Place::Dist(Arc::new(d)), Some(out_meta));
            }
        }
    }

    /// Reads a distributed tensor: its parts are gathered (in shard order) onto its first worker.
    pub(crate) fn read_dist(&mut self, s: &mut Session, req: ReqId, id: TensorId, d: &Dist) {
        let Some(meta) = s.tensors.get(&id).and_then(|t| t.meta.clone()) else {
            return s.outbox.push(gt_proto::ClientReply::Data {
                req,
                result: Err(Error::Protocol(format!("{id} has no known shape"))),
            });
        };
        let t = d.workers[0];
        let mut temps = Vec::new();
        let key = self.gather_to(s, Src::Dist(d, Key::new(s.id, id.0)), &meta, t, &mut temps);
        let r = self.new_req(t, Pending::Read { session: s.id, req });
        self.workers[t.0 as usize]
            .outbox
            .push(WorkerMsg::Read { req: r, key });
        self.free_temps(temps);
    }

    /// `out` on worker `to` holding the full value of the distributed `src`.
    pub(crate) fn move_dist(
        &mut self,
        s: &mut Session,
        out: TensorId,
        src: TensorId,
        d: &Dist,
        meta: Meta,
        to: WorkerId,
    ) {
        let mut temps = Vec::new();
        let key = self.gather_to(
            s,
            Src::Dist(d, Key::new(s.id, src.0)),
            &meta,
            to,
            &mut temps,
        );
        self.workers[to.0 as usize].outbox.push(WorkerMsg::Alias {
            out: Key::new(s.id, out.0),
            src: key,
        });
        self.free_temps(temps);
        self.track(s, out, Place::On(to), Some(meta));
    }
}

/// The innermost open signal that places tensors, with its spec. Inside the backward scope
/// (`backward()`'s gradient ops) a region's `backward:` signal stands for it; a backward pass
/// opened outside every region uses the region the session entered last.
fn scope_spec(s: &Session) -> Option<(&String, &ShardSpec)> {
    let cfg = &s.config;
    let marker = s.scopes.iter().rposition(|n| n == gt_proto::BACKWARD_SCOPE);
    let Some(m) = marker else {
        return s
            .scopes
            .iter()
            .rev()
            .find_map(|name| cfg.spec(name).map(|spec| (name, spec)));
    };
    // Signals opened inside the backward pass (by the user) count as usual.
    if let Some(inner) = s.scopes[m + 1..]
        .iter()
        .rev()
        .find_map(|name| cfg.spec(name).map(|spec| (name, spec)))
    {
        return Some(inner);
    }
    let region = s.scopes[..m]
        .iter()
        .rev()
        .find(|n| cfg.signals.get(*n).is_some_and(|c| c.backward.is_some()))
        .or(s.last_region.as_ref())?;
    let target = cfg.signals.get(region)?.backward.as_ref()?;
    cfg.signals
        .get_key_value(target)
        .and_then(|(k, c)| c.shard.as_ref().map(|spec| (k, spec)))
}

/// The bytes of `[start, start + len)` along `axis` of `data`.
fn split_bytes(data: &TensorData, axis: usize, start: usize, len: usize) -> TensorData {
    let dims = data.shape.dims();
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product::<usize>() * data.dtype.size();
    let row = dims[axis] * inner;
    let mut bytes = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let base = o * row + start * inner;
        bytes.extend_from_slice(&data.bytes[base..base + len * inner]);
    }
    let mut shape = dims.to_vec();
    shape[axis] = len;
    TensorData {
        dtype: data.dtype,
        shape: Shape::new(shape),
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_bytes_takes_the_right_rows_and_columns() {
        let d = TensorData::from_f32([2, 3], &[0., 1., 2., 3., 4., 5.]);
        assert_eq!(split_bytes(&d, 1, 1, 2).to_f32_vec(), vec![1., 2., 4., 5.]);
        assert_eq!(split_bytes(&d, 0, 1, 1).to_f32_vec(), vec![3., 4., 5.]);
    }
}
