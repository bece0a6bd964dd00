//! What one client stream is doing inside a hot sequence ([`Mode`]): recording it while it runs
//! eagerly (no plan yet), or streaming it through a compiled plan.
//!
//! Streaming is what makes a compiled trace pay off: the worker does not wait for the whole
//! sequence to arrive before running it (that serializes the worker behind the client, which on
//! a training step costs more than compilation saves). Each arriving instruction is checked
//! against the plan — the same op, the same canonical dataflow, external inputs of the planned
//! metas — and every program step whose instructions have all arrived runs at once. Results
//! stay in the run's slots, outside the tensor table, until the sequence completes; then the
//! live-outs are installed and the trace's frees of external tensors applied.
//!
//! If the stream deviates, or something must observe the tensor table before the sequence ends
//! (a read, a transfer, a barrier), the run is discarded and its instructions are replayed
//! eagerly from the start: the table still holds every external input (the trace's frees were
//! deferred), so the replay produces exactly eager execution's state. Deviations are rare after
//! warm-up, so computing a prefix twice then is cheap insurance for bit-exact semantics.

use super::deferred::{Group, Promise};
use super::names::Names;
use super::Slot;
use crate::compile::program::{Plan, Split};
use crate::engine::Engine;
use gt_core::Key;
use gt_ops::Meta;
use gt_proto::{TensorData, WorkerMsg};
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::{Arc, Mutex};

/// A stream's state for the hot sequence being matched.
pub(super) enum Mode<T> {
    /// Not inside a hot sequence.
    Idle,
    /// No plan yet: instructions run eagerly as they arrive, and a copy is kept to compile.
    Record(Record),
    /// A plan is ready: instructions are streamed through it.
    Stream(Box<Run<T>>),
    /// Running eagerly (a compile is pending, the plan is off, or a streamed run was given
    /// up); `.0` is the time spent executing, for the regression guard.
    Eager(u64),
}

/// An instance recorded while it runs eagerly.
#[derive(Default)]
pub(super) struct Record {
    /// The instructions, without upload payloads.
    pub msgs: Vec<WorkerMsg>,
    /// Metas of the external inputs, taken at first use (the trace may free them).
    pub metas: FxHashMap<Key, Meta>,
    produced: FxHashSet<Key>,
    /// Nanoseconds spent executing the instance.
    pub ns: u64,
}

impl Record {
    /// Notes `msg` before it executes (`meta_of` reads the tensor table).
    pub fn note(&mut self, msg: &WorkerMsg, meta_of: impl Fn(Key) -> Option<Meta>) {
        let (inputs, out): (&[Key], Option<Key>) = match msg {
            WorkerMsg::Exec { out, inputs, .. } => (inputs, Some(*out)),
            WorkerMsg::Upload { out, .. } => (&[], Some(*out)),
            WorkerMsg::Free { key } => (std::slice::from_ref(key), None),
            _ => (&[], None),
        };
        for k in inputs {
            if !self.produced.contains(k) && !self.metas.contains_key(k) {
                if let Some(m) = meta_of(*k) {
                    self.metas.insert(*k, m);
                }
            }
        }
        if let Some(o) = out {
            self.produced.insert(o);
        }
        self.msgs.push(skeleton(msg));
    }
}

/// `msg` as the compiler needs it: an upload keeps its dtype and shape, not its bytes.
fn skeleton(msg: &WorkerMsg) -> WorkerMsg {
    match msg {
        WorkerMsg::Upload { out, data } => WorkerMsg::Upload {
            out: *out,
            data: TensorData {
                dtype: data.dtype,
                shape: data.shape.clone(),
                bytes: Vec::new(),
            },
        },
        m => m.clone(),
    }
}

/// One instance streamed through a plan.
pub(super) struct Run<T> {
    pub plan: Arc<Plan>,
    /// The instructions received so far (kept for the steps' runtime parameters and for a
    /// replay).
    pub msgs: Vec<WorkerMsg>,
    names: Names,
    /// Which steps run now and which live-outs are deferred.
    split: Arc<Split>,
    /// External inputs by canonical number (`None`: a deferred value the trace only frees),
    /// and their keys.
    ext: Vec<Option<T>>,
    ext_keys: Vec<Key>,
    slots: Vec<Option<T>>,
    next_step: usize,
    /// Nanoseconds the worker spent on this instance: matching, steps, installing results
    /// (measured by the tracer, only when `timed`).
    pub ns: u64,
    timed: bool,
    /// Constants of the plan `consts_of` ([`Plan::constant_step`]) computed by an earlier run
    /// of this stream, by node; kept across [`Run::reset`] while the plan stays the same.
    consts: Vec<Option<T>>,
    consts_of: Option<u64>,
    /// Bytes of `consts` (bounded by [`CONST_BYTES`]).
    consts_bytes: usize,
    /// Values an earlier instance released, by node, whose storage the next computation of
    /// that node reuses ([`Plan::recycles`]); kept like `consts`.
    recycled: Vec<Option<T>>,
    /// A finished run's live-outs: (node, key) while checking them, then the computed ones
    /// with their keys ([`Run::results`]); and the external keys its trace frees. Kept across
    /// runs, like the other buffers.
    live: Vec<(u32, Key)>,
    pub ready: Vec<(Key, T)>,
    pub freed: Vec<Key>,
    /// Running ahead (`state::ahead`): the instructions this instance is predicted to be, with
    /// which steps run before their own instructions arrive; empty otherwise. `ext` then holds
    /// the predicted external inputs past the `ext_keys.len()` bound so far. A finished run
    /// keeps its instructions here for the prediction of the next instance.
    pred: Vec<WorkerMsg>,
    /// Whether this run was predicted, and whether an arriving instruction proved the
    /// prediction wrong (the steps run ahead were dropped and ran again as usual).
    predicted: bool,
    missed: bool,
}

/// Most bytes of constants a stream keeps for its plan. Past it, further constants are computed
/// in every run as before; a constant that large costs far more to hold than to refill.
pub(super) const CONST_BYTES: usize = 16 << 20;

impl<T: Clone> Run<T> {
    pub fn new(plan: Arc<Plan>, split: Arc<Split>, timed: bool) -> Run<T> {
        let mut run = Run {
            plan: plan.clone(),
            msgs: Vec::new(),
            names: Names::default(),
            timed,
            split: split.clone(),
            ext: Vec::new(),
            ext_keys: Vec::new(),
            slots: Vec::new(),
            next_step: 0,
            ns: 0,
            consts: Vec::new(),
            consts_of: None,
            consts_bytes: 0,
            recycled: Vec::new(),
            live: Vec::new(),
            ready: Vec::new(),
            freed: Vec::new(),
            pred: Vec::new(),
            predicted: false,
            missed: false,
        };
        run.reset(plan, split, timed);
        run
    }

    /// Makes this (finished or abandoned) run a fresh one of `plan`, keeping its buffers'
    /// capacity: a stream reuses one run for every instance, because allocating a step's
    /// worth of messages (several KiB), names and slots per instance was a visible share of a
    /// small compiled step's time (`malloc` and `malloc_consolidate` in the worker's profile).
    pub fn reset(&mut self, plan: Arc<Plan>, split: Arc<Split>, timed: bool) {
        let (n, n_ext) = (plan.len(), plan.bound().ext.len());
        self.msgs.clear();
        self.msgs.reserve(n);
        self.names.reset(n);
        self.ext.clear();
        self.ext.reserve(n_ext);
        self.ext_keys.clear();
        self.ext_keys.reserve(n_ext);
        empty(&mut self.slots);
        self.slots.resize(n, None);
        if self.consts_of != Some(plan.sig) {
            self.consts.clear();
            self.consts.resize(n, None);
            self.consts_of = Some(plan.sig);
            self.consts_bytes = 0;
            self.recycled.clear();
            self.recycled.resize(n, None);
        }
        self.plan = plan;
        self.split = split;
        self.timed = timed;
        self.next_step = 0;
        self.ns = 0;
        self.pred.clear();
        self.predicted = false;
        self.missed = false;
    }

    /// Drops what the run holds (tensors, and messages but for a prediction of the next
    /// instance: the finished run's own instructions move to `pred`), keeping its buffers for
    /// [`Run::reset`].
    pub fn clear(&mut self) {
        self.pred.clear();
        if self.msgs.len() == self.plan.len() {
            std::mem::swap(&mut self.pred, &mut self.msgs);
        }
        self.msgs.clear();
        self.names.reset(0);
        self.ext.clear();
        self.ext_keys.clear();
        empty(&mut self.slots);
    }

    /// Checks that `keys`, the arguments of instruction `i` (a free when `free`), name the
    /// values the plan has there, naming external inputs met for the first time (looked up in
    /// `tensors`, or for a free in `deferred`, and checked against the plan's metas).
    fn bind_args<E: Engine<Tensor = T>>(
        &mut self,
        i: usize,
        keys: &[Key],
        free: bool,
        tensors: &FxHashMap<Key, Slot<T>>,
        deferred: &FxHashMap<Key, Promise<T>>,
        engine: &E,
    ) -> bool {
        if keys.len() != self.plan.args_of(i).len() {
            return false;
        }
        for (at, k) in keys.iter().enumerate() {
            let w = self.plan.args_of(i)[at];
            match self.names.check(*k, w) {
                None => return false,
                Some(false) => {}
                Some(true) => {
                    let j = self.ext_keys.len();
                    let (t, meta) = match (tensors.get(k), deferred.get(k)) {
                        (Some(Slot::Ready(t)), _) => (Some(t.clone()), engine.meta(t)),
                        (None, Some(p)) if free => (None, p.meta.clone()),
                        _ => return false,
                    };
                    if self.plan.ext_meta(j) != Some(&meta) {
                        return false;
                    }
                    if j < self.ext.len() {
                        // Predicted: the steps run ahead read `ext[j]`, which must be this
                        // very tensor (an input the trace only frees is never read).
                        let same = match (&self.ext[j], &t) {
                            (Some(p), Some(t)) => engine.same(p, t),
                            _ => self.plan.ext_only_freed(j),
                        };
                        if !same {
                            self.miss();
                        }
                    }
                    // Checked again: a miss truncates `ext` to the inputs bound so far.
                    if j < self.ext.len() {
                        self.ext[j] = t;
                    } else {
                        self.ext.push(t);
                    }
                    self.ext_keys.push(*k);
                    self.names.add_ext(*k);
                }
            }
        }
        true
    }

    /// Takes the next instruction if it is the one the plan expects there (handing it back if
    /// not). External inputs are looked up in the worker's `tensors` (or, for one the trace
    /// only frees, its `deferred` values).
    fn accept<E: Engine<Tensor = T>>(
        &mut self,
        msg: WorkerMsg,
        tensors: &FxHashMap<Key, Slot<T>>,
        deferred: &FxHashMap<Key, Promise<T>>,
        engine: &E,
    ) -> Result<(), Box<WorkerMsg>> {
        let i = self.msgs.len();
        if !self.plan.op_accepts(i, &msg) {
            return Err(Box::new(msg));
        }
        if !self.pred.is_empty() {
            if let WorkerMsg::Exec {
                op: op @ gt_ops::Op::Random { .. },
                ..
            } = &msg
            {
                // The plan accepts any seed; the steps run ahead drew the predicted one.
                if !matches!(&self.pred[i], WorkerMsg::Exec { op: p, .. } if p == op) {
                    self.miss();
                }
            }
        }
        let (keys, free): (&[Key], bool) = match &msg {
            WorkerMsg::Exec { inputs, .. } => (inputs, false),
            WorkerMsg::Free { key } => (std::slice::from_ref(key), true),
            _ => (&[], false),
        };
        if !self.bind_args(i, keys, free, tensors, deferred, engine) {
            return Err(Box::new(msg));
        }
        match &msg {
            WorkerMsg::Exec { out, .. } | WorkerMsg::Upload { out, .. } => {
                self.names.define(i, *out)
            }
            WorkerMsg::Free { key } => self.names.free(i, *key, self.plan.args_of(i)[0]),
            _ => self.names.skip(i),
        }
        self.msgs.push(msg);
        Ok(())
    }

    /// Takes `msg` ([`Run::accept`]) and runs every step it completes ([`Run::advance`]),
    /// adding the time to the run's while the regression guard is timing it.
    pub fn feed<E: Engine<Tensor = T>>(
        &mut self,
        msg: WorkerMsg,
        tensors: &FxHashMap<Key, Slot<T>>,
        deferred: &FxHashMap<Key, Promise<T>>,
        engine: &mut E,
    ) -> Fed {
        let t0 = self.timed.then(std::time::Instant::now);
        let fed = match self.accept(msg, tensors, deferred, engine) {
            Ok(()) if self.advance(engine).is_err() => Fed::Failed,
            Ok(()) => Fed::Ran,
            Err(msg) => Fed::Rejected(msg),
        };
        if let Some(t0) = t0 {
            self.ns += t0.elapsed().as_nanos() as u64;
        }
        fed
    }

    /// Runs every step whose instructions have all arrived.
    fn advance<E: Engine<Tensor = T>>(&mut self, engine: &mut E) -> gt_core::Result<()> {
        let arrived = self.msgs.len();
        if self.next_step >= self.plan.steps() || self.plan.trigger(self.next_step) >= arrived {
            return Ok(());
        }
        while self.next_step < self.plan.steps() && self.plan.trigger(self.next_step) < arrived {
            self.next(engine, false)?;
        }
        Ok(())
    }

    /// Runs step `next_step` (if this split runs it now) with the instructions received, or
    /// with the predicted ones when `ahead`, and moves on to the next.
    fn next<E: Engine<Tensor = T>>(&mut self, engine: &mut E, ahead: bool) -> gt_core::Result<()> {
        let s = self.next_step;
        if self.split.now[s] {
            let constant = self.plan.constant_step(s).map(|n| n as usize);
            match constant.and_then(|n| self.consts[n].as_ref().map(|t| (n, t))) {
                Some((n, t)) => self.slots[n] = Some(t.clone()),
                None => {
                    let msgs = if ahead { &self.pred } else { &self.msgs };
                    let slots = (&mut self.slots[..], &mut self.recycled[..]);
                    self.plan.run_step(s, engine, msgs, slots, &self.ext)?;
                    if let Some(n) = constant {
                        self.keep_constant(n, engine);
                    }
                }
            }
            for &n in &self.split.release[s] {
                let n = n as usize;
                match self.slots[n].take() {
                    Some(t) if self.plan.recycles(n) && engine.sole_owner(&t) => {
                        self.recycled[n] = Some(t)
                    }
                    _ => {}
                }
            }
        }
        self.next_step += 1;
        Ok(())
    }

    /// Makes this fresh run ([`Run::reset`]) a prediction: the instance will be `pred`, reading
    /// the external inputs `ext` (by canonical number; `None` for one the trace only frees).
    /// [`Run::step_ahead`] then runs its steps before their instructions arrive.
    pub fn predict(&mut self, pred: Vec<WorkerMsg>, ext: impl Iterator<Item = Option<T>>) {
        debug_assert!(self.msgs.is_empty() && self.ext.is_empty());
        self.pred = pred;
        self.ext.extend(ext);
        self.predicted = true;
    }

    /// Runs the next step of a predicted run ahead of its instructions. Returns whether one ran
    /// (`false`: nothing left to run ahead). A step that fails drops the prediction; the step
    /// runs again when its instructions arrive and reports the error as eager execution would.
    pub fn step_ahead<E: Engine<Tensor = T>>(&mut self, engine: &mut E) -> bool {
        if self.pred.is_empty() || self.next_step >= self.plan.steps() {
            return false;
        }
        let t0 = self.timed.then(std::time::Instant::now);
        if self.next(engine, true).is_err() {
            self.miss();
        }
        if let Some(t0) = t0 {
            self.ns += t0.elapsed().as_nanos() as u64;
        }
        true
    }

    /// The prediction was wrong: drops what ran ahead (the steps whose instructions arrived run
    /// again, from the inputs actually bound).
    fn miss(&mut self) {
        if self.pred.is_empty() {
            return;
        }
        self.pred.clear();
        self.missed = true;
        self.ext.truncate(self.ext_keys.len());
        empty(&mut self.slots);
        self.next_step = 0;
    }

    /// Whether this run was predicted, and whether it arrived as predicted so far.
    pub fn prediction(&self) -> (bool, bool) {
        (self.predicted, self.predicted && !self.missed)
    }

    /// Takes the instructions kept for a prediction: a finished run's own ([`Run::results`]
    /// leaves them unless deferred values took them), or what is left of a prediction.
    pub fn take_pred(&mut self) -> Vec<WorkerMsg> {
        std::mem::take(&mut self.pred)
    }

    /// The keys of a finished run's live-outs, in the plan's order ([`Run::results`]).
    pub fn live_keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.live.iter().map(|l| l.1)
    }

    /// Sets whether the regression guard times this run.
    pub fn set_timed(&mut self, timed: bool) {
        self.timed = timed;
    }

    /// The split this run uses.
    pub fn split(&self) -> &Arc<Split> {
        &self.split
    }

    /// Whether this run uses `split`.
    pub fn splits_as(&self, split: &Arc<Split>) -> bool {
        Arc::ptr_eq(&self.split, split)
    }

    /// Keeps constant node `n`, just computed, for the stream's later runs (within
    /// [`CONST_BYTES`]).
    fn keep_constant<E: Engine<Tensor = T>>(&mut self, n: usize, engine: &E) {
        let Some(t) = &self.slots[n] else { return };
        let meta = engine.meta(t);
        let bytes = meta.shape.numel() * meta.dtype.size();
        if self.consts_bytes + bytes <= CONST_BYTES {
            self.consts_bytes += bytes;
            self.consts[n] = Some(t.clone());
        }
    }

    /// Keys of the external inputs met so far, in first-use order.
    pub fn ext_keys(&self) -> &[Key] {
        &self.ext_keys
    }

    /// The instructions accepted so far.
    pub fn accepted(&self) -> usize {
        self.msgs.len()
    }

    /// Whether the regression guard is still timing this plan's runs.
    pub fn timed(&self) -> bool {
        self.timed
    }

    /// Whether the whole sequence arrived and every step ran.
    pub fn finished(&self) -> bool {
        self.msgs.len() == self.plan.len() && self.next_step == self.plan.steps()
    }

    /// The finished run's results: its live-outs computed go to [`Run::ready`] (with their
    /// keys), the external keys the trace frees to [`Run::freed`], and the deferred live-outs
    /// are returned as promises. `None` when this instance's live-outs are not the plan's.
    ///
    /// They are looked up from the plan's live-outs (each one's key is its instruction's
    /// output), not found by scanning every name: as many names are live as the plan has
    /// live-outs, and each of those is still this run's result.
    pub fn results(&mut self) -> Option<Vec<(Key, Promise<T>)>> {
        let planned = &self.plan.bound().live;
        if self.names.live != planned.len() {
            return None;
        }
        self.live.clear();
        for &(node, _) in planned {
            let key = match self.msgs.get(node as usize)? {
                WorkerMsg::Exec { out, .. } | WorkerMsg::Upload { out, .. } => *out,
                _ => return None,
            };
            if !self.names.is_result(key, node) {
                return None;
            }
            self.live.push((node, key));
        }
        // A deferred live-out that a step run now computed anyway (another value needed it) is
        // installed as it is: a promise would only hold the run's messages and slots alive to
        // return the same tensor.
        let lazy =
            |idx: usize, node: u32| self.split.deferred[idx] && self.slots[node as usize].is_none();
        let any_lazy = self.live.iter().enumerate().any(|(idx, l)| lazy(idx, l.0));
        self.ready.clear();
        let mut promised = Vec::new();
        for (idx, &(node, key)) in self.live.iter().enumerate() {
            let slot = &mut self.slots[node as usize];
            match slot {
                None if self.split.deferred[idx] => promised.push((key, idx)),
                None => return None,
                // Taken when nothing is deferred; else cloned, as a deferred step may read it.
                Some(_) if !any_lazy => self.ready.push((key, slot.take().expect("some"))),
                Some(t) => self.ready.push((key, t.clone())),
            }
        }
        self.freed.clear();
        let ext_keys = &self.ext_keys;
        self.freed.extend(
            self.plan
                .bound()
                .free_ext
                .iter()
                .map(|&j| ext_keys[j as usize]),
        );
        if promised.is_empty() {
            return Some(Vec::new());
        }
        let group = Arc::new(Mutex::new(Group {
            sig: self.plan.sig,
            plan: self.plan.clone(),
            msgs: std::mem::take(&mut self.msgs),
            slots: std::mem::take(&mut self.slots),
            ext: std::mem::take(&mut self.ext),
            done: self.split.now.clone(),
        }));
        Some(
            promised
                .into_iter()
                .map(|(key, idx)| {
                    let meta = self.plan.live_meta(idx).clone();
                    (
                        key,
                        Promise {
                            group: group.clone(),
                            idx,
                            meta,
                        },
                    )
                })
                .collect(),
        )
    }
}

impl<T> Run<T> {
    /// Whether every step already ran ahead of its instructions (a correct prediction so far).
    pub fn ran_ahead(&self) -> bool {
        !self.pred.is_empty() && self.next_step == self.plan.steps()
    }
}

/// Drops what `slots` holds, keeping its length: most slots are already empty at the end of a
/// run (released or taken), and rewriting every one of them cost more than the check.
fn empty<T>(slots: &mut [Option<T>]) {
    for s in slots.iter_mut().filter(|s| s.is_some()) {
        *s = None;
    }
}

/// What [`Run::feed`] did with an instruction.
pub(super) enum Fed {
    /// Accepted; the steps it completed ran.
    Ran,
    /// Not the instruction the plan has there (handed back; the run must be given up).
    Rejected(Box<WorkerMsg>),
    /// Accepted, but a step failed (the run must be given up and replayed eagerly).
    Failed,
}
