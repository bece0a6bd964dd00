//! Data movement between layouts, as worker instructions: scatter (one worker → shards or
//! replicas), gather (anything → one worker), all-gather (shards → a full copy on each),
//! all-reduce (partial sums → the sum on each), reduce-scatter (partial sums → the sum's shards)
//! and local re-slicing. Every byte moves worker to worker (`Send`/`Recv` pairs, pushed sender
//! first so no worker can wait on one that waits on it); every instruction here is logged as
//! `MODIFIER_INJECT`.
//!
//! Sums are always taken in part order on every worker, so replicas of a reduced value are
//! bit-identical.

use super::placement::{offsets, slice_specs, Dist, Layout};
use crate::core::{Core, Session};
use gt_core::{Key, WorkerId};
use gt_ops::{BinaryOp, Meta, Op};
use gt_proto::WorkerMsg;
use smallvec::smallvec;

/// Where a tensor's value is, for a conversion.
#[derive(Clone, Copy, Debug)]
pub enum Src<'a> {
    /// In full on one worker under `key`.
    On(WorkerId, Key),
    /// Distributed, part `j` on `d.workers[j]` under `key`.
    Dist(&'a Dist, Key),
}

/// Per-part keys after a conversion, and the temporaries to free once they are used.
pub struct Parts {
    /// Key of part `j` on worker `j` of the target.
    pub keys: Vec<Key>,
    /// Temporaries created on the way, as (worker, key).
    pub temps: Vec<(WorkerId, Key)>,
}

impl Core {
    /// Queues an instruction the modifier injected (logged as `MODIFIER_INJECT`).
    pub(crate) fn inject(&mut self, w: WorkerId, msg: WorkerMsg) {
        let logging = self.log.is_some();
        let slot = &mut self.workers[w.0 as usize];
        if logging {
            slot.injected.push(slot.outbox.len());
        }
        slot.outbox.push(msg);
    }

    fn inject_exec(&mut self, w: WorkerId, out: Key, op: Op, inputs: &[Key]) {
        let inputs = inputs.iter().copied().collect();
        self.inject(w, WorkerMsg::Exec { out, op, inputs });
    }

    /// Frees temporaries.
    pub(crate) fn free_temps(&mut self, temps: Vec<(WorkerId, Key)>) {
        for (w, key) in temps {
            self.inject(w, WorkerMsg::Free { key });
        }
    }

    /// A counted worker-to-worker move of `bytes` bytes; returns the key on `to`.
    fn moved(
        &mut self,
        s: &mut Session,
        key: Key,
        from: WorkerId,
        to: WorkerId,
        bytes: usize,
    ) -> Key {
        let out = self.temp_key();
        self.transfer(key, from, out, to);
        self.count(s, |st| {
            st.transfers += 1;
            st.bytes_moved += bytes as u64;
        });
        out
    }

    /// The full value of `src` on worker `t`; temporaries are appended to `temps`.
    pub(crate) fn gather_to(
        &mut self,
        s: &mut Session,
        src: Src,
        meta: &Meta,
        t: WorkerId,
        temps: &mut Vec<(WorkerId, Key)>,
    ) -> Key {
        let bytes = meta.shape.numel() * meta.dtype.size();
        let (d, key) = match src {
            Src::On(w, key) if w == t => return key,
            Src::On(w, key) => {
                let k = self.moved(s, key, w, t, bytes);
                temps.push((t, k));
                return k;
            }
            Src::Dist(d, key) => (d, key),
        };
        let local = d.workers.iter().position(|w| *w == t);
        match &d.layout {
            Layout::Replicate => match local {
                Some(_) => key,
                None => {
                    let k = self.moved(s, key, d.workers[0], t, bytes);
                    temps.push((t, k));
                    k
                }
            },
            Layout::Shard { .. } | Layout::Partial if d.workers.len() == 1 && local.is_some() => {
                key
            }
            Layout::Shard { axis, .. } => {
                self.count(s, |st| st.gathers += 1);
                let parts = self.bring_parts(s, d, key, meta, t);
                let out = self.temp_key();
                self.inject_exec(t, out, Op::Cat { axis: *axis }, &parts);
                self.free_received(t, key, parts);
                temps.push((t, out));
                out
            }
            Layout::Partial => {
                self.count(s, |st| st.gathers += 1);
                let parts = self.bring_parts(s, d, key, meta, t);
                let out = self.sum_in_order(t, &parts, BinaryOp::Add);
                self.free_received(t, key, parts);
                temps.push((t, out));
                out
            }
        }
    }

    /// Every part of `d` on worker `t`, in part order (moved unless already there).
    fn bring_parts(
        &mut self,
        s: &mut Session,
        d: &Dist,
        key: Key,
        meta: &Meta,
        t: WorkerId,
    ) -> Vec<Key> {
        (0..d.workers.len())
            .map(|j| {
                let w = d.workers[j];
                if w == t {
                    key
                } else {
                    let pm = d.layout.part_meta(meta, j);
                    self.moved(s, key, w, t, pm.shape.numel() * pm.dtype.size())
                }
            })
            .collect()
    }

    fn free_received(&mut self, t: WorkerId, own: Key, parts: Vec<Key>) {
        for k in parts.into_iter().filter(|k| *k != own) {
            self.inject(t, WorkerMsg::Free { key: k });
        }
    }

    /// `((p0 op p1) op p2) …` on `t` into a new temporary (intermediates freed).
    fn sum_in_order(&mut self, t: WorkerId, parts: &[Key], op: BinaryOp) -> Key {
        let mut acc = parts[0];
        let mut acc_temp = false;
        for p in &parts[1..] {
            let next = self.temp_key();
            self.inject_exec(t, next, Op::Binary(op), &[acc, *p]);
            if acc_temp {
                self.inject(t, WorkerMsg::Free { key: acc });
            }
            acc = next;
            acc_temp = true;
        }
        if !acc_temp {
            // A single part: give the caller a key it may free.
            let out = self.temp_key();
            self.inject(t, WorkerMsg::Alias { out, src: acc });
            acc = out;
        }
        acc
    }

    /// Brings `src` to layout `want` over `workers`.
    pub(crate) fn convert(
        &mut self,
        s: &mut Session,
        src: Src,
        meta: &Meta,
        want: &Layout,
        workers: &[WorkerId],
    ) -> Parts {
        let n = workers.len();
        let mut temps = Vec::new();
        if let Src::Dist(d, key) = src {
            if d.workers == workers {
                let keys = match (&d.layout, want) {
                    (Layout::Replicate, Layout::Replicate) | (Layout::Partial, Layout::Partial) => {
                        vec![key; n]
                    }
                    (a, b) if a == b => vec![key; n],
                    (Layout::Replicate, Layout::Shard { axis, extents }) => {
                        self.slice_locally(workers, &vec![key; n], meta, *axis, extents, &mut temps)
                    }
                    (Layout::Shard { axis, .. }, _) => {
                        self.count(s, |st| st.all_gathers += 1);
                        let full = self.all_gather(s, d, key, meta, *axis);
                        temps.extend(workers.iter().copied().zip(full.iter().copied()));
                        self.replicas_to(workers, &full, meta, want, &mut temps)
                    }
                    (Layout::Partial, Layout::Replicate) => {
                        self.count(s, |st| st.all_reduces += 1);
                        let keys = self.all_reduce(s, d, &vec![key; n], meta, BinaryOp::Add);
                        temps.extend(workers.iter().copied().zip(keys.iter().copied()));
                        keys
                    }
                    (Layout::Partial, Layout::Shard { axis, extents }) => {
                        self.count(s, |st| st.reduce_scatters += 1);
                        let keys = self.reduce_scatter(s, d, key, meta, *axis, extents);
                        temps.extend(workers.iter().copied().zip(keys.iter().copied()));
                        keys
                    }
                    (Layout::Replicate, Layout::Partial) => {
                        self.replicas_to(workers, &vec![key; n], meta, want, &mut temps)
                    }
                };
                return Parts { keys, temps };
            }
        }
        // A single worker's copy (gathered first if distributed elsewhere) is scattered.
        let (w, key) = match src {
            Src::On(w, key) => (w, key),
            Src::Dist(..) => {
                let t = workers[0];
                (t, self.gather_to(s, src, meta, t, &mut temps))
            }
        };
        self.count(s, |st| st.scatters += 1);
        let keys = match want {
            Layout::Replicate => {
                let bytes = meta.shape.numel() * meta.dtype.size();
                let mut keys = Vec::with_capacity(n);
                for &wj in workers {
                    keys.push(match wj == w {
                        true => key,
                        false => {
                            let k = self.moved(s, key, w, wj, bytes);
                            temps.push((wj, k));
                            k
                        }
                    });
                }
                keys
            }
            Layout::Partial => {
                // Exactly one part holds the value (where it already is, if possible); the
                // others are zeros.
                let bytes = meta.shape.numel() * meta.dtype.size();
                let holder = workers.iter().position(|x| *x == w).unwrap_or(0);
                let mut keys = Vec::with_capacity(n);
                for (j, &wj) in workers.iter().enumerate() {
                    keys.push(if j != holder {
                        self.zeros(wj, meta, &mut temps)
                    } else if wj == w {
                        key
                    } else {
                        let k = self.moved(s, key, w, wj, bytes);
                        temps.push((wj, k));
                        k
                    });
                }
                keys
            }
            Layout::Shard { axis, extents } => {
                let offs = offsets(extents);
                let mut keys = Vec::with_capacity(n);
                for (j, &wj) in workers.iter().enumerate() {
                    let piece = self.temp_key();
                    let specs = slice_specs(&meta.shape, *axis, offs[j], extents[j]);
                    self.inject_exec(w, piece, Op::Slice { specs }, &[key]);
                    if wj == w {
                        temps.push((w, piece));
                        keys.push(piece);
                    } else {
                        let pm = want.part_meta(meta, j);
                        let bytes = pm.shape.numel() * pm.dtype.size();
                        let k = self.moved(s, piece, w, wj, bytes);
                        self.inject(w, WorkerMsg::Free { key: piece });
                        temps.push((wj, k));
                        keys.push(k);
                    }
                }
                keys
            }
        };
        Parts { keys, temps }
    }

    fn zeros(&mut self, w: WorkerId, meta: &Meta, temps: &mut Vec<(WorkerId, Key)>) -> Key {
        let k = self.temp_key();
        let op = Op::Full {
            shape: meta.shape.clone(),
            value: 0.0,
            dtype: meta.dtype,
        };
        self.inject_exec(w, k, op, &[]);
        temps.push((w, k));
        k
    }

    /// Full copies on every worker → `want` (shards are local slices; partial keeps part 0).
    fn replicas_to(
        &mut self,
        workers: &[WorkerId],
        full: &[Key],
        meta: &Meta,
        want: &Layout,
        temps: &mut Vec<(WorkerId, Key)>,
    ) -> Vec<Key> {
        match want {
            Layout::Replicate => full.to_vec(),
            Layout::Shard { axis, extents } => {
                self.slice_locally(workers, full, meta, *axis, extents, temps)
            }
            Layout::Partial => (0..workers.len())
                .map(|j| match j {
                    0 => full[0],
                    _ => self.zeros(workers[j], meta, temps),
                })
                .collect(),
        }
    }

    fn slice_locally(
        &mut self,
        workers: &[WorkerId],
        full: &[Key],
        meta: &Meta,
        axis: usize,
        extents: &[usize],
        temps: &mut Vec<(WorkerId, Key)>,
    ) -> Vec<Key> {
        let offs = offsets(extents);
        (0..workers.len())
            .map(|j| {
                let k = self.temp_key();
                let specs = slice_specs(&meta.shape, axis, offs[j], extents[j]);
                self.inject_exec(workers[j], k, Op::Slice { specs }, &[full[j]]);
                temps.push((workers[j], k));
                k
            })
            .collect()
    }

    /// Shards → the full tensor on every worker (new temporaries, one per worker).
    fn all_gather(
        &mut self,
        s: &mut Session,
        d: &Dist,
        key: Key,
        meta: &Meta,
        axis: usize,
    ) -> Vec<Key> {
        let workers = d.workers.clone();
        workers
            .iter()
            .map(|&t| {
                let parts = self.bring_parts(s, d, key, meta, t);
                let out = self.temp_key();
                self.inject_exec(t, out, Op::Cat { axis }, &parts);
                self.free_received(t, key, parts);
                out
            })
            .collect()
    }

    /// Parts combined with `op` (in part order) on every worker (new temporaries).
    pub(crate) fn all_reduce(
        &mut self,
        s: &mut Session,
        d: &Dist,
        keys: &[Key],
        meta: &Meta,
        op: BinaryOp,
    ) -> Vec<Key> {
        let workers = d.workers.clone();
        let bytes = meta.shape.numel() * meta.dtype.size();
        workers
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                let parts: Vec<Key> = (0..workers.len())
                    .map(|j| match j == k {
                        true => keys[j],
                        false => self.moved(s, keys[j], workers[j], t, bytes),
                    })
                    .collect();
                let out = self.sum_in_order(t, &parts, op);
                self.free_received(t, keys[k], parts);
                out
            })
            .collect()
    }

    /// Partial sums → shards of the sum (new temporaries, one per worker).
    fn reduce_scatter(
        &mut self,
        s: &mut Session,
        d: &Dist,
        key: Key,
        meta: &Meta,
        axis: usize,
        extents: &[usize],
    ) -> Vec<Key> {
        let workers = d.workers.clone();
        let offs = offsets(extents);
        let want = Layout::Shard {
            axis,
            extents: extents.to_vec(),
        };
        let mut pieces: Vec<Vec<Key>> = vec![Vec::new(); workers.len()];
        for (j, &wj) in workers.iter().enumerate() {
            for (k, &wk) in workers.iter().enumerate() {
                let piece = self.temp_key();
                let specs = slice_specs(&meta.shape, axis, offs[k], extents[k]);
                self.inject_exec(wj, piece, Op::Slice { specs }, &[key]);
                if j == k {
                    pieces[k].push(piece);
                } else {
                    let pm = want.part_meta(meta, k);
                    let moved = self.moved(s, piece, wj, wk, pm.shape.numel() * pm.dtype.size());
                    self.inject(wj, WorkerMsg::Free { key: piece });
                    pieces[k].push(moved);
                }
            }
        }
        workers
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                let out = self.sum_in_order(t, &pieces[k], BinaryOp::Add);
                for p in std::mem::take(&mut pieces[k]) {
                    self.inject(t, WorkerMsg::Free { key: p });
                }
                out
            })
            .collect()
    }
}

/// An exec message with no inputs (creations on parts).
pub(crate) fn exec_msg(out: Key, op: Op) -> WorkerMsg {
    WorkerMsg::Exec {
        out,
        op,
        inputs: smallvec![],
    }
}
