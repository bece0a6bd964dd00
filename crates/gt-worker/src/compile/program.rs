//! A compiled trace: the plan made once per hot signature (shape inference of every node,
//! dead-code elimination, release points per split) and its execution on an [`Engine`].
//!
//! What a plan saves over replaying the trace: instructions whose result is freed inside the
//! trace without being read are not executed at all (DCE); internal values live in a slot
//! vector instead of the worker's tensor table (no hashing, no inserts or removals); each
//! internal buffer goes back to the engine's pool right after its last use, so the next
//! allocation of that size class reuses it while it is still in cache; constants (creation ops
//! and what only they feed) are computed on a stream's first run and reused; shape inference and
//! validation were done at compile time. Op order is unchanged, so results are bit-identical.

use super::epilogue::{self, Epilogue, Facts};
use super::fuse::{fuse, Group, Item};
use super::trace::{Arg, Bound};
use crate::engine::Engine;
use gt_core::{Error, Result};
use gt_ops::{infer, Meta, Op};
use gt_proto::WorkerMsg;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// One instruction of the trace as the compiler sees it (upload bytes and random seeds are
/// runtime parameters and stay in the instruction).
#[derive(Clone, Debug)]
pub enum PlanOp {
    /// An op with this many inputs.
    Exec(Op, u32),
    /// An upload of this meta.
    Upload(Meta),
    /// A free.
    Free,
}

impl PlanOp {
    /// The compiler's view of `msg` (`None` for instructions a trace cannot hold).
    pub fn of(msg: &WorkerMsg) -> Option<PlanOp> {
        Some(match msg {
            WorkerMsg::Exec { op, inputs, .. } => PlanOp::Exec(op.clone(), inputs.len() as u32),
            WorkerMsg::Upload { data, .. } => PlanOp::Upload(Meta {
                shape: data.shape.clone(),
                dtype: data.dtype,
            }),
            WorkerMsg::Free { .. } => PlanOp::Free,
            _ => return None,
        })
    }

    fn accepts(&self, msg: &WorkerMsg) -> bool {
        match (self, msg) {
            (PlanOp::Exec(op, n), WorkerMsg::Exec { op: o, inputs, .. }) => {
                *n as usize == inputs.len() && crate::hotpath::signature::same_program_op(op, o)
            }
            (PlanOp::Upload(m), WorkerMsg::Upload { data, .. }) => {
                m.dtype == data.dtype && m.shape == data.shape
            }
            (PlanOp::Free, WorkerMsg::Free { .. }) => true,
            _ => false,
        }
    }
}

/// Everything needed to compile one trace (taken from its first complete instance).
#[derive(Clone, Debug)]
pub struct CompileJob {
    /// The hot sequence's signature.
    pub sig: u64,
    /// The instructions.
    pub ops: Vec<PlanOp>,
    /// Their canonical form.
    pub bound: Bound,
    /// Metas of the external inputs.
    pub ext_metas: Vec<Meta>,
}

#[derive(Debug)]
enum Work {
    One { msg: u32, args: SmallVec<[Arg; 3]> },
    Loop(Box<Group>),
    Epilogue(Box<Epilogue>),
}

#[derive(Debug)]
struct PStep {
    work: Work,
    /// The last instruction the step executes: it can run once that one has arrived.
    trigger: u32,
}

/// A compiled trace.
#[derive(Debug)]
pub struct Plan {
    /// The signature it was compiled for.
    pub sig: u64,
    ops: Vec<PlanOp>,
    bound: Bound,
    ext_metas: Vec<Meta>,
    steps: Vec<PStep>,
    /// Where each instruction's arguments start in `bound.args` (one more entry at the end).
    arg_start: Vec<u32>,
    /// The meta of each live-out (in `bound.live` order).
    live_metas: Vec<Meta>,
    /// The meta of each instruction's result, inferred at compile time (`None` for frees), so
    /// that steps skip shape inference: an instance's ops and external metas are checked
    /// against the plan's, and only random seeds vary, which no meta depends on.
    metas: Vec<Option<Meta>>,
    names: Vec<(&'static str, u64)>,
    /// Which instructions compute constants (see [`constants`]).
    constant: Vec<bool>,
    /// The instructions whose runtime parameters vary between instances: random draws (by
    /// index) and whether any upload is among them.
    random_at: Vec<u32>,
    uploads: bool,
    /// Per external input: whether the trace's first use of it is a free (it never reads it).
    ext_only_freed: Vec<bool>,
    /// The step that writes each node (`u32::MAX` for none).
    writers: Vec<u32>,
    /// The nodes whose released values a run keeps to reuse their storage ([`recycled`]).
    recycle: Vec<bool>,
    /// Instructions in the trace.
    pub instructions: usize,
    /// Instructions removed as dead.
    pub dead: usize,
    /// Needed instructions that compute constants: run once per stream, then reused.
    pub folded: usize,
    /// Fused loops, and the instructions they replace.
    pub loops: (usize, usize),
    /// Microseconds the compile took.
    pub compile_us: u64,
}

/// Shape inference of every instruction (`None` for frees), each instruction's arguments, and
/// where each one's arguments start in `bound.args` (one more entry at the end).
#[allow(clippy::type_complexity)]
fn infer_all(
    ops: &[PlanOp],
    bound: &Bound,
    ext_metas: &[Meta],
) -> Result<(Vec<Option<Meta>>, Vec<SmallVec<[Arg; 3]>>, Vec<u32>)> {
    let n = ops.len();
    // Shape inference of every node, and each instruction's arguments.
    let mut metas: Vec<Option<Meta>> = vec![None; n];
    let mut args: Vec<SmallVec<[Arg; 3]>> = Vec::with_capacity(n);
    let mut cursor = 0usize;
    let mut arg_start = Vec::with_capacity(n + 1);
    for (i, op) in ops.iter().enumerate() {
        arg_start.push(cursor as u32);
        let k = match op {
            PlanOp::Exec(_, k) => *k as usize,
            PlanOp::Upload(_) => 0,
            PlanOp::Free => 1,
        };
        let a: SmallVec<[Arg; 3]> = bound
            .args
            .get(cursor..cursor + k)
            .ok_or_else(|| Error::invalid("compile", "trace arguments do not match its ops"))?
            .into();
        cursor += k;
        match op {
            PlanOp::Exec(o, _) => {
                let m = {
                    let ins: SmallVec<[&Meta; 3]> = a
                        .iter()
                        .map(|x| match x {
                            Arg::Node(j) => metas[*j as usize].as_ref(),
                            Arg::Ext(j) => ext_metas.get(*j as usize),
                        })
                        .collect::<Option<_>>()
                        .ok_or_else(|| Error::invalid("compile", "input without a meta"))?;
                    infer(o, &ins)?
                };
                metas[i] = Some(m);
            }
            PlanOp::Upload(m) => metas[i] = Some(m.clone()),
            PlanOp::Free => {}
        }
        args.push(a);
    }
    arg_start.push(cursor as u32);
    Ok((metas, args, arg_start))
}

/// Compiles `job` unless its plan may JIT a fused loop (a millisecond of Cranelift per loop
/// rather than the microseconds of a plan without loops), in which case the job comes back
/// (`Err`) for a thread that can afford it. "May" means two instructions fusion could put in a
/// loop ([`super::fuse::fusable_count`]; liveness and adjacency are not checked, so it errs
/// towards yes). Shape inference runs once either way.
pub fn compile_unless_jit(job: CompileJob) -> std::result::Result<Result<Plan>, Box<CompileJob>> {
    let t0 = std::time::Instant::now();
    let inferred = match infer_all(&job.ops, &job.bound, &job.ext_metas) {
        Ok(i) => i,
        Err(e) => return Ok(Err(e)),
    };
    if super::fuse::fusable_count(&job.ops, &inferred.1, &inferred.0, &job.ext_metas) >= 2 {
        return Err(Box::new(job));
    }
    Ok(plan_of(job, inferred, t0))
}

/// Compiles a trace. Fails when any instruction would fail shape inference (the trace then
/// runs eagerly, which reports the error where it happens).
pub fn compile(job: CompileJob) -> Result<Plan> {
    let t0 = std::time::Instant::now();
    let inferred = infer_all(&job.ops, &job.bound, &job.ext_metas)?;
    plan_of(job, inferred, t0)
}

/// The plan of `job`, given its shape inference ([`infer_all`]); `t0` is when its compile
/// began.
#[allow(clippy::type_complexity)]
fn plan_of(
    job: CompileJob,
    (metas, args, arg_start): (Vec<Option<Meta>>, Vec<SmallVec<[Arg; 3]>>, Vec<u32>),
    t0: std::time::Instant,
) -> Result<Plan> {
    let CompileJob {
        sig,
        ops,
        bound,
        ext_metas,
    } = job;
    let n = ops.len();
    // Liveness: live-outs, then everything they need, walking backwards.
    let mut needed = vec![false; n];
    for &(node, _) in &bound.live {
        needed[node as usize] = true;
    }
    for i in (0..n).rev() {
        if needed[i] {
            for a in &args[i] {
                if let Arg::Node(j) = a {
                    needed[*j as usize] = true;
                }
            }
        }
    }
    let is_live: Vec<bool> = {
        let mut v = vec![false; n];
        for &(node, _) in &bound.live {
            v[node as usize] = true;
        }
        v
    };
    // Readers of every node, for fusion (which values escape a fused run).
    let mut users: Vec<SmallVec<[u32; 4]>> = vec![SmallVec::new(); n];
    for i in 0..n {
        if needed[i] && !matches!(ops[i], PlanOp::Free) {
            for a in &args[i] {
                if let Arg::Node(j) = a {
                    users[*j as usize].push(i as u32);
                }
            }
        }
    }
    let mut dead = 0;
    let mut names: FxHashMap<&'static str, u64> = FxHashMap::default();
    for (i, op) in ops.iter().enumerate() {
        match op {
            PlanOp::Free => {}
            _ if !needed[i] => dead += 1,
            PlanOp::Exec(o, _) => *names.entry(o.name()).or_insert(0) += 1,
            PlanOp::Upload(_) => *names.entry("upload").or_insert(0) += 1,
        }
    }
    let constant = constants(&ops, &args);
    let folded = (0..n).filter(|&i| constant[i] && needed[i]).count();
    let items = fuse(&ops, &args, &metas, &ext_metas, &needed, &users, &is_live);
    // Steps (release points depend on which live-outs are deferred: see `Plan::split`).
    let mut steps = Vec::with_capacity(items.len());
    let mut loops = (0, 0);
    let facts = Facts {
        ops: &ops,
        args: &args,
        metas: &metas,
        ext_metas: &ext_metas,
        users: &users,
        live: &is_live,
    };
    // The matmul epilogue starting at each item, if any (it spans the items after it too).
    let mut epilogues: Vec<Option<Epilogue>> = (0..items.len()).map(|_| None).collect();
    let mut at = 0;
    while at < items.len() {
        match epilogue::find(&items, at, &facts) {
            Some((e, span)) => {
                epilogues[at] = Some(e);
                at += span;
            }
            None => at += 1,
        }
    }
    let mut skip = 0;
    for (item, e) in items.into_iter().zip(epilogues) {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if let Some(e) = e {
            loops.0 += 1;
            loops.1 += e.members().len();
            skip = e.members().len() - 1;
            let trigger = e.last();
            steps.push(PStep {
                work: Work::Epilogue(Box::new(e)),
                trigger,
            });
            continue;
        }
        let (work, trigger) = match item {
            Item::One(i) => (
                Work::One {
                    msg: i,
                    args: args[i as usize].clone(),
                },
                i,
            ),
            Item::Loop(g) => {
                loops.0 += 1;
                loops.1 += g.members.len();
                let last = g.members.iter().map(|m| m.0).max().unwrap_or(0);
                (Work::Loop(g), last)
            }
        };
        steps.push(PStep { work, trigger });
    }
    let mut names: Vec<_> = names.into_iter().collect();
    names.sort();
    let random_at = (0..n as u32)
        .filter(|&i| matches!(ops[i as usize], PlanOp::Exec(Op::Random { .. }, _)))
        .collect();
    let uploads = ops.iter().any(|o| matches!(o, PlanOp::Upload(_)));
    let mut ext_only_freed = vec![None; ext_metas.len()];
    for (i, a) in args.iter().enumerate() {
        for x in a {
            if let Some(first) = match x {
                Arg::Ext(j) => ext_only_freed.get_mut(*j as usize),
                Arg::Node(_) => None,
            } {
                first.get_or_insert(matches!(ops[i], PlanOp::Free));
            }
        }
    }
    let ext_only_freed = ext_only_freed
        .into_iter()
        .map(|f| f == Some(true))
        .collect();
    let live_metas = bound
        .live
        .iter()
        .map(|(node, _)| metas[*node as usize].clone())
        .collect::<Option<Vec<Meta>>>()
        .ok_or_else(|| Error::invalid("compile", "a live-out without a meta"))?;
    let recycle = recycled(&steps, &ops, &metas, &constant, &is_live);
    let mut plan = Plan {
        sig,
        ops,
        bound,
        ext_metas,
        steps,
        arg_start,
        live_metas,
        metas,
        names,
        constant,
        random_at,
        uploads,
        ext_only_freed,
        writers: Vec::new(),
        recycle,
        instructions: n,
        dead,
        folded,
        loops,
        compile_us: 0,
    };
    plan.writers = plan.find_writers();
    plan.compile_us = t0.elapsed().as_micros() as u64;
    Ok(plan)
}

/// Largest value a run keeps for its storage ([`recycled`]), and the most bytes of them per plan.
const RECYCLE_MAX_BYTES: usize = 64 << 10;
const RECYCLE_PLAN_BYTES: usize = 4 << 20;

/// Which nodes' values a run keeps once released, so that the next instance computes that node
/// into the same storage ([`crate::Engine::execute_into`]) instead of a pool buffer: internal
/// results of single-instruction steps, small ones only. Why: for a value of tens to
/// thousands of elements, drawing a buffer from the pool, wrapping it for sharing and giving
/// it back costs about as much as the kernel (~50 of ~130 ns for a 10-float `mul` on the
/// 2-core VM), and a plan knows it will compute the same value with the same meta next time.
/// The bound keeps what runs hold between instances to a few MiB, next to the pool's cache.
fn recycled(
    steps: &[PStep],
    ops: &[PlanOp],
    metas: &[Option<Meta>],
    constant: &[bool],
    live: &[bool],
) -> Vec<bool> {
    let mut recycle = vec![false; ops.len()];
    let mut total = 0;
    for step in steps {
        let Work::One { msg, .. } = step.work else {
            continue;
        };
        let i = msg as usize;
        let bytes = match (&ops[i], &metas[i]) {
            (PlanOp::Exec(..), Some(m)) if !constant[i] && !live[i] => {
                m.shape.numel() * m.dtype.size()
            }
            _ => continue,
        };
        if bytes <= RECYCLE_MAX_BYTES && total + bytes <= RECYCLE_PLAN_BYTES {
            recycle[i] = true;
            total += bytes;
        }
    }
    recycle
}

/// Which instructions compute constants: deterministic ops (everything but `Random`) whose
/// inputs are all constants — creation ops such as `full` and `arange`, and the reshapes,
/// scalings and expansions applied to them (autograd's seed gradient `full([], 1)` →
/// `reshape` → `div(n)` → `expand`, the zeros of `relu`'s backward). A plan accepts an instance
/// only if every op equals its own (but for random seeds), so such a value is the same in every
/// run: a stream computes it on its first run of the plan and reuses the tensor after that.
fn constants(ops: &[PlanOp], args: &[SmallVec<[Arg; 3]>]) -> Vec<bool> {
    let mut constant = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        if let PlanOp::Exec(op, _) = op {
            constant[i] = !matches!(op, Op::Random { .. })
                && args[i]
                    .iter()
                    .all(|a| matches!(a, Arg::Node(j) if constant[*j as usize]));
        }
    }
    constant
}

impl Plan {
    /// The node step `s` computes when that is a constant (one instruction whose result is the
    /// same in every run, see [`constants`]).
    pub fn constant_step(&self, s: usize) -> Option<u32> {
        match &self.steps[s].work {
            Work::One { msg, .. } if self.constant[*msg as usize] => Some(*msg),
            _ => None,
        }
    }

    /// Whether a run keeps node `n`'s value once released, to compute that node into its
    /// storage next time (see `recycled` in this module).
    pub fn recycles(&self, n: usize) -> bool {
        self.recycle[n]
    }

    /// Whether an instance (`msgs`, bound as `bound`, with external inputs of `ext_metas`) is
    /// the program this plan was compiled for.
    pub fn accepts(&self, msgs: &[WorkerMsg], bound: &Bound, ext_metas: &[Meta]) -> bool {
        msgs.len() == self.ops.len()
            && bound.same_shape(&self.bound)
            && ext_metas == self.ext_metas.as_slice()
            && self.ops.iter().zip(msgs).all(|(p, m)| p.accepts(m))
    }

    /// Executed ops by name (for the worker's `ops_by_name`).
    pub fn names(&self) -> &[(&'static str, u64)] {
        &self.names
    }

    /// Instructions in the trace.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the trace is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Whether instruction `i` of an instance, `msg`, is the op the plan has there.
    pub fn op_accepts(&self, i: usize, msg: &WorkerMsg) -> bool {
        self.ops.get(i).is_some_and(|p| p.accepts(msg))
    }

    /// The canonical arguments of instruction `i`.
    pub fn args_of(&self, i: usize) -> &[Arg] {
        &self.bound.args[self.arg_start[i] as usize..self.arg_start[i + 1] as usize]
    }

    /// The instructions that draw random numbers (their seeds vary between instances).
    pub fn random_at(&self) -> &[u32] {
        &self.random_at
    }

    /// Whether the trace uploads data (a runtime parameter no earlier instance predicts).
    pub fn uploads(&self) -> bool {
        self.uploads
    }

    /// Whether the trace only frees external input `j`, never reading it.
    pub fn ext_only_freed(&self, j: usize) -> bool {
        self.ext_only_freed.get(j).copied().unwrap_or(false)
    }

    /// The meta external input `j` must have.
    pub fn ext_meta(&self, j: usize) -> Option<&Meta> {
        self.ext_metas.get(j)
    }

    /// The meta of live-out `idx`.
    pub fn live_meta(&self, idx: usize) -> &Meta {
        &self.live_metas[idx]
    }

    /// The canonical form the plan was compiled for.
    pub fn bound(&self) -> &Bound {
        &self.bound
    }

    /// Steps of the program.
    pub fn steps(&self) -> usize {
        self.steps.len()
    }

    /// The instruction after whose arrival step `s` can run.
    pub fn trigger(&self, s: usize) -> usize {
        self.steps[s].trigger as usize
    }

    /// Runs step `s` (the steps it reads from have run; its instructions are in `msgs`),
    /// computing into the storage of the values in `recycled` where it can
    /// ([`Plan::recycles`]). It releases nothing: the caller's [`Split`] says what to drop when.
    #[inline(always)]
    pub fn run_step<E: Engine>(
        &self,
        s: usize,
        engine: &mut E,
        msgs: &[WorkerMsg],
        (slots, recycled): (&mut Values<E::Tensor>, &mut Values<E::Tensor>),
        ext: &Values<E::Tensor>,
    ) -> Result<()> {
        let s = &self.steps[s];
        match &s.work {
            Work::One { msg, args } => {
                let kept = recycled.get_mut(*msg as usize).and_then(Option::take);
                let t = self.exec_one(engine, msgs, *msg, args, (&*slots, ext), kept)?;
                slots[*msg as usize] = Some(t);
            }
            Work::Loop(g) => {
                let ins: SmallVec<[&E::Tensor; 4]> =
                    g.loads.iter().map(|(a, _)| arg(a, slots, ext)).collect();
                let shapes: SmallVec<[&gt_core::Shape; 4]> =
                    g.loads.iter().map(|(_, s)| s).collect();
                let dtype = g
                    .spec
                    .dtype_of(*g.spec.outputs.first().expect("outputs") as usize);
                match engine.run_loop(
                    &*g.kernel,
                    &g.spec.shape,
                    dtype,
                    g.outputs.len(),
                    &ins,
                    &shapes,
                ) {
                    Some(Ok(outs)) => {
                        drop(ins);
                        for (node, t) in g.outputs.iter().zip(outs) {
                            slots[*node as usize] = Some(t);
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => {
                        drop(ins);
                        for (msg, args) in &g.members {
                            let t =
                                self.exec_one(engine, msgs, *msg, args, (&*slots, ext), None)?;
                            slots[*msg as usize] = Some(t);
                        }
                    }
                }
            }
            Work::Epilogue(e) => {
                let last = e.last() as usize;
                let meta = self.metas[last].as_ref().expect("inferred");
                let (a, b) = (arg(&e.a, slots, ext), arg(&e.b, slots, ext));
                let c = arg(&e.other, slots, ext);
                match engine.matmul_add(a, b, c, e.mm_left, e.relu.is_some(), e.keep_product, meta)
                {
                    Some(r) => {
                        let (t, product) = r?;
                        slots[last] = Some(t);
                        if let Some(p) = product {
                            slots[e.mm as usize] = Some(p);
                        }
                    }
                    None => {
                        // One by one; what the step does not store is dropped at once (no step
                        // reads it, so no release point would).
                        for m in e.members() {
                            let args = self.args_of(m as usize);
                            let t = self.exec_one(engine, msgs, m, args, (&*slots, ext), None)?;
                            slots[m as usize] = Some(t);
                        }
                        let writes = e.writes();
                        for m in e.members().into_iter().filter(|m| !writes.contains(m)) {
                            slots[m as usize] = None;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Plan {
    /// Instruction `i` of an instance (`msgs`) on its eager kernel, with its planned meta (and
    /// into the storage of `spare`, a value of an earlier instance, where the engine can).
    fn exec_one<E: Engine>(
        &self,
        engine: &mut E,
        msgs: &[WorkerMsg],
        i: u32,
        args: &[Arg],
        (slots, ext): (&Values<E::Tensor>, &Values<E::Tensor>),
        spare: Option<E::Tensor>,
    ) -> Result<E::Tensor> {
        match (&msgs[i as usize], &self.metas[i as usize]) {
            (WorkerMsg::Exec { op, .. }, Some(meta)) => {
                let ins: SmallVec<[&E::Tensor; 3]> =
                    args.iter().map(|a| arg(a, slots, ext)).collect();
                match spare {
                    Some(kept) => engine.execute_into(op, &ins, meta, kept),
                    None => engine.execute_as(op, &ins, meta),
                }
            }
            (WorkerMsg::Upload { data, .. }, _) => engine.upload(data),
            _ => Err(Error::invalid("compiled trace", "unexpected instruction")),
        }
    }
}

/// Values by node or by external input (`None`: not computed yet, released, or never read).
pub type Values<T> = [Option<T>];

fn arg<'a, T>(a: &Arg, slots: &'a [Option<T>], ext: &'a [Option<T>]) -> &'a T {
    match a {
        Arg::Node(j) => slots[*j as usize].as_ref().expect("planned order"),
        // `None` only for an external input the trace frees without reading.
        Arg::Ext(j) => ext[*j as usize].as_ref().expect("a read external input"),
    }
}

/// A plan's steps split for lazy live-outs: the steps a run executes as the trace streams in
/// (`now`), and, for each deferred live-out, nothing until something uses it.
///
/// Why: a training step often computes values nobody reads — gradients of fresh inputs, or of
/// leaves dropped right after `item()` — and the trace ends at that sync point, so only the
/// next segment shows they die unread. A deferred live-out enters the tensor table as a promise
/// (`state::deferred`); the first use computes it (with exactly the kernels and inputs eager
/// execution used, so values are bit-identical); a free before any use means it is never
/// computed. Which live-outs to defer is learned per plan: a live-out starts deferred unless the
/// recording the plan was compiled from showed it used (the recorded instance read that result
/// of the instance before it, or the read that ended it did: a training step's updated
/// parameters and its loss), and is computed eagerly from the first run in which something
/// used it.
#[derive(Debug)]
pub struct Split {
    /// Steps executed while the trace streams in.
    pub now: Vec<bool>,
    /// Internal values to release after each step (those no deferred step needs).
    pub release: Vec<SmallVec<[u32; 2]>>,
    /// Which live-outs (indices into `Bound::live`) are deferred.
    pub deferred: Vec<bool>,
}

impl Plan {
    /// The trace nodes step `s` writes and the trace nodes it reads.
    fn step_nodes(&self, s: usize) -> (SmallVec<[u32; 2]>, SmallVec<[u32; 4]>) {
        let node = |a: &Arg| match a {
            Arg::Node(j) => Some(*j),
            Arg::Ext(_) => None,
        };
        match &self.steps[s].work {
            Work::One { msg, args } => (
                [*msg].into_iter().collect(),
                args.iter().filter_map(node).collect(),
            ),
            Work::Loop(g) => (
                g.outputs.iter().copied().collect(),
                g.loads.iter().filter_map(|l| node(&l.0)).collect(),
            ),
            Work::Epilogue(e) => (
                e.writes(),
                [e.a, e.b, e.other].iter().filter_map(node).collect(),
            ),
        }
    }

    /// The step that writes each node (`u32::MAX` for none), made once at compile time.
    fn writers(&self) -> &[u32] {
        &self.writers
    }

    fn find_writers(&self) -> Vec<u32> {
        let mut w = vec![u32::MAX; self.ops.len()];
        for s in 0..self.steps.len() {
            for o in self.step_nodes(s).0 {
                w[o as usize] = s as u32;
            }
        }
        // Members of a fused loop that the loop does not store are written by no step.
        w
    }

    /// Marks in `mark` every step needed (transitively) to produce `nodes`.
    fn mark_needed(&self, writers: &[u32], nodes: impl Iterator<Item = u32>, mark: &mut [bool]) {
        let mut stack: Vec<u32> = nodes.collect();
        while let Some(n) = stack.pop() {
            let s = writers[n as usize];
            if s == u32::MAX || mark[s as usize] {
                continue;
            }
            mark[s as usize] = true;
            stack.extend(self.step_nodes(s as usize).1);
        }
    }

    /// The split deferring the live-outs flagged in `deferred` (indices into `Bound::live`).
    pub fn split(&self, deferred: &[bool]) -> Split {
        let writers = self.writers();
        let live = &self.bound.live;
        let mut now = vec![false; self.steps.len()];
        let kept = live
            .iter()
            .zip(deferred)
            .filter(|(_, d)| !**d)
            .map(|(l, _)| l.0);
        self.mark_needed(writers, kept, &mut now);
        let mut later = vec![false; self.steps.len()];
        let lazy = live
            .iter()
            .zip(deferred)
            .filter(|(_, d)| **d)
            .map(|(l, _)| l.0);
        self.mark_needed(writers, lazy, &mut later);
        // A value stays in the slots if a deferred step (that does not also run now) reads it.
        let mut keep = vec![false; self.ops.len()];
        for (l, _) in live {
            keep[*l as usize] = true;
        }
        for s in (0..self.steps.len()).filter(|&s| later[s] && !now[s]) {
            for i in self.step_nodes(s).1 {
                keep[i as usize] = true;
            }
        }
        let mut last = vec![None; self.ops.len()];
        for s in (0..self.steps.len()).filter(|&s| now[s]) {
            for i in self.step_nodes(s).1 {
                last[i as usize] = Some(s);
            }
        }
        let mut release = vec![SmallVec::new(); self.steps.len()];
        for (node, l) in last.iter().enumerate() {
            if let (Some(s), false) = (l, keep[node]) {
                release[*s].push(node as u32);
            }
        }
        Split {
            now,
            release,
            deferred: deferred.to_vec(),
        }
    }

    /// The steps (in order) still to run to produce live-out `idx`, given those already `done`.
    pub fn steps_for_live(&self, idx: usize, done: &[bool]) -> Vec<usize> {
        let writers = self.writers();
        let mut mark = done.to_vec();
        let before = mark.clone();
        self.mark_needed(writers, [self.bound.live[idx].0].into_iter(), &mut mark);
        (0..mark.len()).filter(|&s| mark[s] && !before[s]).collect()
    }
}
