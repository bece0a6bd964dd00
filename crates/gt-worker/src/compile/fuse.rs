//! Elementwise fusion: runs of consecutive float elementwise instructions over one output shape
//! (unary, broadcast binary, tensor-scalar) become one [`LoopSpec`] — one pass over memory
//! instead of one per op, and no buffer at all for values used only inside the run. A value
//! that is live after the trace, or read by anything outside the run, is a loop output
//! (multi-output loops). Every node computes in the op's own dtype with the eager kernels'
//! scalar functions, so the results are bit-identical.
//!
//! Kernels come from the Cranelift JIT, or the blocked interpreter where the JIT declines.
//!
//! Inputs are loaded with the strides of a contiguous tensor of their (broadcast) shape; at run
//! time an input that is not contiguous (a transposed or expanded view) makes the engine decline
//! the loop, and the run's members execute one by one instead.

use super::loop_interp::interpret;
use super::loop_ir::{LoopInput, LoopKernel, LoopNode, LoopSpec};
use super::loop_jit::jit;
use super::program::PlanOp;
use super::trace::Arg;
use gt_core::{DType, Shape};
use gt_ops::{Meta, Op};
use smallvec::SmallVec;
use std::sync::Arc;

/// A fused run.
pub struct Group {
    /// The loop.
    pub spec: LoopSpec,
    /// Its compiled kernel.
    pub kernel: Arc<dyn LoopKernel>,
    /// Where each loop input comes from, and the shape it must have.
    pub loads: Vec<(Arg, Shape)>,
    /// The trace nodes stored by the loop, in output order.
    pub outputs: Vec<u32>,
    /// The instructions fused, with their arguments (to run them one by one if the engine
    /// declines the loop).
    pub members: Vec<(u32, SmallVec<[Arg; 3]>)>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Group({} ops, {} outputs)",
            self.members.len(),
            self.outputs.len()
        )
    }
}

/// Smallest iteration space fused. Below it the data sits in L1 either way, so fusing saves
/// little memory traffic; `gt bench compile` showed no gain (0.6–0.9x, within its noise on the
/// shared test machines) for the seed-size MLP step with its 64–2048-element chains fused.
pub const MIN_FUSE_NUMEL: usize = 1 << 14;

/// Whether `op` on inputs of `ins` dtypes, giving `out`, can join a loop of dtype `out.dtype`.
fn fusable(op: &PlanOp, ins: &[DType], out: &Meta) -> bool {
    let float = matches!(out.dtype, DType::F32 | DType::F64);
    float
        && out.shape.numel() >= MIN_FUSE_NUMEL
        && ins.iter().all(|d| *d == out.dtype)
        && match op {
            PlanOp::Exec(Op::Unary(_) | Op::Binary(_) | Op::BinaryScalar { .. }, _) => true,
            PlanOp::Exec(..) | PlanOp::Upload(_) | PlanOp::Free => false,
        }
}

/// How many instructions of a trace fusion could put in a loop (see [`fusable`]), given each
/// instruction's inferred meta (`None` for frees) and arguments.
pub fn fusable_count(
    ops: &[PlanOp],
    args: &[SmallVec<[Arg; 3]>],
    metas: &[Option<Meta>],
    ext_metas: &[Meta],
) -> usize {
    let dtype = |a: &Arg| match a {
        Arg::Node(j) => metas[*j as usize].as_ref().map(|m| m.dtype),
        Arg::Ext(j) => ext_metas.get(*j as usize).map(|m| m.dtype),
    };
    ops.iter()
        .zip(args)
        .zip(metas)
        .filter(|((op, a), out)| {
            let ins: Option<SmallVec<[DType; 3]>> = a.iter().map(dtype).collect();
            match (out, ins) {
                (Some(out), Some(ins)) => fusable(op, &ins, out),
                _ => false,
            }
        })
        .count()
}

/// Strides of a contiguous tensor of `shape` read over the iteration space `space`
/// (right-aligned, size-1 axes broadcast with stride 0).
fn broadcast_strides(shape: &Shape, space: &Shape) -> SmallVec<[isize; 6]> {
    let (sd, od) = (shape.dims(), space.dims());
    let mut strides: SmallVec<[isize; 6]> = SmallVec::from_elem(0, od.len());
    let mut step = 1isize;
    for i in 0..sd.len() {
        let (a, o) = (sd.len() - 1 - i, od.len() - 1 - i);
        strides[o] = if sd[a] == 1 && od[o] != 1 { 0 } else { step };
        step *= sd[a] as isize;
    }
    strides
}

/// One fusion candidate run being built.
struct Run {
    shape: Shape,
    dtype: DType,
    members: Vec<(u32, SmallVec<[Arg; 3]>)>,
}

/// What the planner executes, in order.
pub enum Item {
    /// One instruction on its eager kernel.
    One(u32),
    /// A fused loop.
    Loop(Box<Group>),
}

/// Splits the needed instructions into single steps and fused loops. `users[i]` lists the
/// needed instructions reading node `i`; `live[i]` says whether it outlives the trace.
pub fn fuse(
    ops: &[PlanOp],
    args: &[SmallVec<[Arg; 3]>],
    metas: &[Option<Meta>],
    ext_metas: &[Meta],
    needed: &[bool],
    users: &[SmallVec<[u32; 4]>],
    live: &[bool],
) -> Vec<Item> {
    let meta_of = |a: &Arg| -> &Meta {
        match a {
            Arg::Node(j) => metas[*j as usize].as_ref().expect("inferred"),
            Arg::Ext(j) => &ext_metas[*j as usize],
        }
    };
    let mut items = Vec::new();
    let mut run: Option<Run> = None;
    let close = |run: Option<Run>, items: &mut Vec<Item>| {
        let Some(r) = run else { return };
        if r.members.len() < 2 {
            items.extend(r.members.iter().map(|m| Item::One(m.0)));
            return;
        }
        match lower(r, ops, metas, ext_metas, users, live) {
            Ok(g) => items.push(Item::Loop(Box::new(g))),
            Err(members) => items.extend(members.into_iter().map(Item::One)),
        }
    };
    for (i, op) in ops.iter().enumerate() {
        if !needed[i] || matches!(op, PlanOp::Free) {
            continue;
        }
        let out = metas[i].as_ref().expect("needed nodes are inferred");
        let ins: SmallVec<[DType; 3]> = args[i].iter().map(|a| meta_of(a).dtype).collect();
        if !fusable(op, &ins, out) {
            close(run.take(), &mut items);
            items.push(Item::One(i as u32));
            continue;
        }
        let joins = run
            .as_ref()
            .is_some_and(|r| r.shape == out.shape && r.dtype == out.dtype);
        if !joins {
            close(run.take(), &mut items);
            run = Some(Run {
                shape: out.shape.clone(),
                dtype: out.dtype,
                members: Vec::new(),
            });
        }
        run.as_mut()
            .expect("a run is open")
            .members
            .push((i as u32, args[i].clone()));
    }
    close(run.take(), &mut items);
    items
}

/// Lowers a run to a loop (or gives its members back when the code generators refuse it).
fn lower(
    r: Run,
    ops: &[PlanOp],
    metas: &[Option<Meta>],
    ext_metas: &[Meta],
    users: &[SmallVec<[u32; 4]>],
    live: &[bool],
) -> Result<Group, Vec<u32>> {
    let members_idx: Vec<u32> = r.members.iter().map(|m| m.0).collect();
    let inside = |n: u32| members_idx.binary_search(&n).is_ok();
    let mut nodes: Vec<LoopNode> = Vec::new();
    let mut inputs: Vec<LoopInput> = Vec::new();
    let mut loads: Vec<(Arg, Shape)> = Vec::new();
    let mut node_of: Vec<(u32, u32)> = Vec::new(); // (trace node, loop node)
    let mut outputs_spec = Vec::new();
    let mut outputs = Vec::new();
    for (i, a) in &r.members {
        let mut operand = |arg: &Arg, nodes: &mut Vec<LoopNode>| -> u32 {
            if let Arg::Node(j) = arg {
                if let Some(&(_, l)) = node_of.iter().find(|(t, _)| t == j) {
                    return l;
                }
            }
            let k = match loads.iter().position(|(x, _)| x == arg) {
                Some(k) => k,
                None => {
                    let m = match arg {
                        Arg::Node(j) => metas[*j as usize].as_ref().expect("inferred"),
                        Arg::Ext(j) => &ext_metas[*j as usize],
                    };
                    inputs.push(LoopInput {
                        dtype: m.dtype,
                        offset: 0,
                        strides: broadcast_strides(&m.shape, &r.shape),
                    });
                    loads.push((*arg, m.shape.clone()));
                    loads.len() - 1
                }
            };
            nodes.push(LoopNode::Load(k as u32));
            (nodes.len() - 1) as u32
        };
        let node = match &ops[*i as usize] {
            PlanOp::Exec(Op::Unary(u), _) => {
                let x = operand(&a[0], &mut nodes);
                LoopNode::Unary(*u, x)
            }
            PlanOp::Exec(Op::Binary(b), _) => {
                let x = operand(&a[0], &mut nodes);
                let y = operand(&a[1], &mut nodes);
                LoopNode::Binary(*b, x, y)
            }
            PlanOp::Exec(
                Op::BinaryScalar {
                    op,
                    scalar,
                    scalar_left,
                },
                _,
            ) => {
                let x = operand(&a[0], &mut nodes);
                nodes.push(LoopNode::Const {
                    value: *scalar,
                    dtype: r.dtype,
                });
                let c = (nodes.len() - 1) as u32;
                if *scalar_left {
                    LoopNode::Binary(*op, c, x)
                } else {
                    LoopNode::Binary(*op, x, c)
                }
            }
            _ => return Err(members_idx),
        };
        nodes.push(node);
        let l = (nodes.len() - 1) as u32;
        node_of.push((*i, l));
        let escapes = live[*i as usize] || users[*i as usize].iter().any(|u| !inside(*u));
        if escapes {
            outputs_spec.push(l);
            outputs.push(*i);
        }
    }
    let spec = LoopSpec {
        shape: r.shape,
        inputs,
        nodes,
        outputs: outputs_spec,
    };
    if spec.outputs.is_empty() {
        return Err(members_idx);
    }
    let kernel = jit(&spec).or_else(|_| interpret(&spec)).map_err(|e| {
        tracing::debug!(target: "gt::compile", "loop not generated: {e}");
        members_idx.clone()
    })?;
    Ok(Group {
        spec,
        kernel,
        loads,
        outputs,
        members: r.members,
    })
}
