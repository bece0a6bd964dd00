//! Running a compiled trace ahead of its instructions: once a streamed run completes, the
//! worker predicts the stream's next instance of the same plan and, while it has nothing else
//! to do, runs that instance's steps before the client has even sent them.
//!
//! Why: at small sizes a training step is two halves that barely overlap. The client builds
//! the step (autograd, shape inference, routing) while the worker waits, and after `item()`
//! the client waits while the worker runs the tail of the step. A compiled plan cannot make
//! the tail much cheaper when nothing fuses (the seed MLP's tensors hold 64 to 2,048 values),
//! but the worker already knows what the next step will compute: the same program, on inputs
//! that follow a pattern.
//!
//! **The prediction.** Two consecutive instances of a plan show where each external input of
//! the next one comes from: the same tensor as last time (the data, the targets), or one of
//! the last instance's live-outs (the parameters the optimizer just wrote). Random draws
//! advance their counter by the same stride each time (the client's generator is counter-based,
//! `gt_ops::random`). Plans that upload data are not predicted (no earlier instance knows the
//! bytes), nor are inputs that are neither, nor live-outs still deferred.
//!
//! **Checking it.** Nothing run ahead is visible until the instance completes: its results sit
//! in the run's slots like any streamed run's. Each arriving instruction is matched against the
//! plan as usual, and in addition every external input must be the very tensor the prediction
//! read ([`Engine::same`]) and every random draw must have the predicted seed. On the first
//! difference the steps run ahead are dropped and the run continues as an ordinary streamed
//! run from the instructions that arrived, so results are always exactly eager's. A stream
//! whose predictions miss waits 2, 4, … 64 instances before predicting again.
//!
//! **Cost.** The work runs only while the worker's queue is empty, one plan step at a time, so
//! other streams' instructions wait at most one step. A correct prediction moves the step's
//! work into time the worker would have spent idle; a wrong one wastes it. The regression guard
//! counts the steps run ahead like any others (conservative: where the worker would otherwise
//! idle they cost the client nothing). Even so the seed MLP step, whose compiled worker is
//! busier than eager's (22–24 vs 19–20 µs per step), runs its loop faster (23.3–24.7 vs
//! 26.4–26.9 µs): the extra work overlaps the client building the next step.

use super::deferred::Group;
use super::stream::{Mode, Run};
use super::trace::Tracer;
use super::{Slot, WorkerState};
use crate::compile::program::{Plan, Split};
use crate::engine::Engine;
use gt_core::{Key, SessionId};
use gt_ops::Op;
use gt_proto::{CompileStats, WorkerMsg};
use std::sync::{Arc, Mutex};

/// Most instances a stream skips predicting after consecutive misses.
const MAX_SKIP: u32 = 64;

/// One stream's predictions.
pub(super) struct Ahead<T> {
    /// The last instance completed through a plan.
    last: Option<Instance>,
    /// The next instance's prediction, to prepare once the worker is idle.
    todo: Option<Todo<T>>,
    /// The run prepared ahead, until its instance begins.
    pub run: Option<Box<Run<T>>>,
    /// Consecutive misses, and instances still to skip because of them.
    misses: u32,
    skip: u32,
}

impl<T> Default for Ahead<T> {
    fn default() -> Self {
        Ahead {
            last: None,
            todo: None,
            run: None,
            misses: 0,
            skip: 0,
        }
    }
}

/// What identifies an instance for the next one's prediction.
#[derive(Default)]
struct Instance {
    sig: u64,
    /// External inputs by canonical number.
    ext: Vec<Key>,
    /// Live-out keys, in the plan's order.
    live: Vec<Key>,
    /// `(seed, stream)` of each random draw (the plan's `random_at` order).
    random: Vec<(u64, u64)>,
}

/// A prediction waiting for idle time.
struct Todo<T> {
    plan: Arc<Plan>,
    split: Arc<Split>,
    /// The key of each external input (`None`: the trace only frees it).
    ext: Vec<Option<Key>>,
    random: Vec<(u64, u64)>,
    /// Where the last instance's instructions went when deferred values took them.
    group: Option<Arc<Mutex<Group<T>>>>,
}

impl<T: Clone> Ahead<T> {
    /// A streamed run of `run.plan` just completed with results (`group` holds its
    /// instructions when deferred values took them): learn from it and predict the next one.
    /// Returns whether a prediction waits for idle time. Runs at idle time itself (a completed
    /// run's bookkeeping, [`WorkerState::settle`]), after the read that ended the instance.
    pub fn completed(
        &mut self,
        run: &Run<T>,
        group: Option<Arc<Mutex<Group<T>>>>,
        stats: &mut CompileStats,
    ) -> bool {
        match run.prediction() {
            (true, true) => {
                stats.ahead_hits += 1;
                self.misses = 0;
            }
            (true, false) => {
                stats.ahead_misses += 1;
                self.missed();
            }
            _ => {}
        }
        let plan = &run.plan;
        let mut cur = self.last.take().unwrap_or_default();
        let prev = Instance {
            sig: std::mem::replace(&mut cur.sig, plan.sig),
            ext: std::mem::take(&mut cur.ext),
            live: std::mem::take(&mut cur.live),
            random: std::mem::take(&mut cur.random),
        };
        cur.ext.extend_from_slice(run.ext_keys());
        cur.live.extend(run.live_keys());
        let mut read_random = |msgs: &[WorkerMsg]| {
            for &i in plan.random_at() {
                if let Some(WorkerMsg::Exec {
                    op: Op::Random { seed, stream, .. },
                    ..
                }) = msgs.get(i as usize)
                {
                    cur.random.push((*seed, *stream));
                }
            }
        };
        match &group {
            Some(g) => read_random(&g.lock().unwrap_or_else(|p| p.into_inner()).msgs),
            None => read_random(&run.msgs),
        }
        self.todo = None;
        if prev.sig == cur.sig && !plan.uploads() {
            if self.skip > 0 {
                self.skip -= 1;
            } else if let Some((ext, random)) = predict(plan, &prev, &cur) {
                self.todo = Some(Todo {
                    plan: plan.clone(),
                    split: run.split().clone(),
                    ext,
                    random,
                    group,
                });
            }
        }
        self.last = Some(cur);
        self.todo.is_some()
    }

    /// A streamed run was given up or replayed eagerly: if it was predicted, so was the
    /// prediction.
    pub fn abandoned(&mut self, run: &Run<T>, stats: &mut CompileStats) {
        if run.prediction().0 {
            stats.ahead_misses += 1;
            self.missed();
        }
    }

    /// The stream's prediction missed: wait 2, 4, … [`MAX_SKIP`] instances before the next.
    fn missed(&mut self) {
        self.misses += 1;
        self.skip = (1u32 << self.misses.min(6)).min(MAX_SKIP);
    }

    /// Drops the prediction and any run prepared ahead (the stream moved on), returning the
    /// run's buffers for reuse.
    pub fn drop_run(&mut self) -> Option<Box<Run<T>>> {
        self.todo = None;
        let mut run = self.run.take()?;
        run.clear();
        Some(run)
    }

    /// The run prepared ahead, if it is one of `plan` with `split` (else it stays, for
    /// [`Ahead::drop_run`]). A prediction not prepared yet is dropped: its instance began.
    pub fn take_for(&mut self, plan: &Arc<Plan>, split: &Arc<Split>) -> Option<Box<Run<T>>> {
        self.todo = None;
        let fits = |r: &Run<T>| Arc::ptr_eq(&r.plan, plan) && r.splits_as(split);
        if self.run.as_deref().is_some_and(fits) {
            self.run.take()
        } else {
            None
        }
    }
}

/// The next instance's external keys and random draws, from the last two (`prev`, `cur`).
#[allow(clippy::type_complexity)]
fn predict(
    plan: &Plan,
    prev: &Instance,
    cur: &Instance,
) -> Option<(Vec<Option<Key>>, Vec<(u64, u64)>)> {
    if prev.ext.len() != cur.ext.len() || prev.random.len() != cur.random.len() {
        return None;
    }
    let ext = cur
        .ext
        .iter()
        .zip(&prev.ext)
        .enumerate()
        .map(|(j, (&now, &before))| {
            if plan.ext_only_freed(j) {
                Some(None)
            } else if now == before {
                Some(Some(now))
            } else {
                let l = prev.live.iter().position(|&k| k == now)?;
                cur.live.get(l).map(|&k| Some(k))
            }
        })
        .collect::<Option<Vec<_>>>()?;
    let random = cur
        .random
        .iter()
        .zip(&prev.random)
        .map(|(&(seed, stream), &(seed0, stream0))| {
            (seed == seed0).then(|| (seed, stream.wrapping_add(stream.wrapping_sub(stream0))))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((ext, random))
}

impl<E: Engine> WorkerState<E> {
    /// Does one piece of work ahead (a compile waiting for idle time, preparing a prediction,
    /// or running one step of a predicted run) for some stream; the executor calls it while
    /// its queue is empty. Returns whether more such work remains.
    pub fn work_ahead(&mut self) -> bool {
        let Some(mut tr) = self.trace.take() else {
            return false;
        };
        // Compiles first: the plan serves the next instance as a whole.
        let more = if tr.cache.run_idle() {
            tr.cache.has_idle_work() || !tr.idle.is_empty()
        } else {
            self.ahead_step(&mut tr)
        };
        self.trace = Some(tr);
        more
    }

    /// Whether [`WorkerState::work_ahead`] has something to do.
    pub fn has_work_ahead(&self) -> bool {
        self.trace
            .as_ref()
            .is_some_and(|t| !t.idle.is_empty() || t.cache.has_idle_work())
    }

    fn ahead_step(&mut self, tr: &mut Tracer<E::Tensor>) -> bool {
        let Some(&s) = tr.idle.last() else {
            return false;
        };
        if tr.streams.get(&s).is_some_and(|st| st.settle.is_some()) {
            self.settle(tr, s);
            return true;
        }
        if let Some(st) = tr.streams.get_mut(&s) {
            if let Some(todo) = st.ahead.todo.take() {
                if matches!(st.mode, Mode::Idle) {
                    let spare = st.spare.take();
                    let timed = tr.cache.timing(todo.plan.sig);
                    let mut run = prepare(todo, spare, &self.tensors);
                    if let Some(run) = &mut run {
                        run.set_timed(timed);
                        tr.cache.stats.ahead_runs += 1;
                    }
                    let st = tr.streams.get_mut(&s).expect("stream");
                    st.ahead.run = run;
                    return true;
                }
            }
            let run = match &mut st.mode {
                Mode::Stream(run) => Some(run),
                _ => st.ahead.run.as_mut(),
            };
            if run.is_some_and(|r| r.step_ahead(&mut self.engine)) {
                return true;
            }
        }
        tr.idle.pop();
        !tr.idle.is_empty()
    }
}

/// A run of `todo`'s prediction (`None` when an input it reads is not in `tensors`), made
/// from a stream's `spare` run when it has one.
fn prepare<T: Clone>(
    todo: Todo<T>,
    spare: Option<Box<Run<T>>>,
    tensors: &rustc_hash::FxHashMap<Key, Slot<T>>,
) -> Option<Box<Run<T>>> {
    let Todo {
        plan,
        split,
        ext,
        random,
        group,
    } = todo;
    let ext = ext
        .iter()
        .map(|k| match k {
            None => Some(None),
            Some(k) => match tensors.get(k) {
                Some(Slot::Ready(t)) => Some(Some(t.clone())),
                _ => None,
            },
        })
        .collect::<Option<Vec<_>>>()?;
    let mut run = spare.unwrap_or_else(|| Box::new(Run::new(plan.clone(), split.clone(), false)));
    let mut msgs = run.take_pred();
    if msgs.len() != plan.len() {
        msgs = group?
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .msgs
            .clone();
    }
    if msgs.len() != plan.len() {
        return None;
    }
    for (&i, &(seed, stream)) in plan.random_at().iter().zip(&random) {
        if let Some(WorkerMsg::Exec {
            op: Op::Random {
                seed: s, stream: n, ..
            },
            ..
        }) = msgs.get_mut(i as usize)
        {
            (*s, *n) = (seed, stream);
        }
    }
    run.reset(plan, split, false);
    run.predict(msgs, ext.into_iter());
    Some(run)
}

/// Tells `tr` that stream `s` has work ahead.
pub(super) fn schedule<T>(tr: &mut Tracer<T>, s: SessionId) {
    if !tr.idle.contains(&s) {
        tr.idle.push(s);
    }
}

#[cfg(test)]
mod tests;
