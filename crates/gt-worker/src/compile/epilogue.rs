//! Matmul epilogues: `y = a @ b` followed by `z = y + c` (on either side) and optionally
//! `relu(z)`, where no other instruction of the trace reads `y` (or `z`) — a linear layer's
//! forward pass, and the gradient sums of a backward pass. The plan runs them as one step: the
//! engine adds `c` (and applies relu) to the product's rows right after computing them, while
//! they are in cache, instead of two more kernel launches (the eager add goes through the
//! general broadcasting loop). When nothing after the trace can read `y`, the sum overwrites the
//! product in place; when `y` outlives the trace (autograd keeps a layer's activations until the
//! step's tensors are dropped, which is after the loss is read), the product keeps its buffer
//! and the sum gets its own. The add and the relu use the eager kernels' scalar functions on the
//! same operands in the same order, so results are bit-identical to eager execution.

use super::fuse::Item;
use super::program::PlanOp;
use super::trace::Arg;
use gt_core::DType;
use gt_ops::{BinaryOp, Meta, Op, UnaryOp};
use smallvec::SmallVec;

/// A matmul with the add (and relu) that only it feeds.
#[derive(Debug)]
pub struct Epilogue {
    /// The matmul instruction and its operands.
    pub mm: u32,
    pub a: Arg,
    pub b: Arg,
    /// The add instruction, its other operand, and whether the product is its left operand.
    pub add: u32,
    pub other: Arg,
    pub mm_left: bool,
    /// The relu applied to the sum, if any.
    pub relu: Option<u32>,
    /// Whether the product outlives the trace (it is stored as well as the result).
    pub keep_product: bool,
}

impl Epilogue {
    /// The instruction whose result the step produces.
    pub fn last(&self) -> u32 {
        self.relu.unwrap_or(self.add)
    }

    /// The nodes the step stores.
    pub fn writes(&self) -> SmallVec<[u32; 2]> {
        let mut w: SmallVec<[u32; 2]> = [self.last()].into_iter().collect();
        if self.keep_product {
            w.push(self.mm);
        }
        w
    }

    /// The instructions the step runs, in order.
    pub fn members(&self) -> SmallVec<[u32; 3]> {
        let mut m: SmallVec<[u32; 3]> = [self.mm, self.add].into_iter().collect();
        m.extend(self.relu);
        m
    }
}

/// What the planner knows about every instruction (see `program::compile`).
pub struct Facts<'a> {
    pub ops: &'a [PlanOp],
    pub args: &'a [SmallVec<[Arg; 3]>],
    pub metas: &'a [Option<Meta>],
    pub ext_metas: &'a [Meta],
    pub users: &'a [SmallVec<[u32; 4]>],
    pub live: &'a [bool],
}

impl Facts<'_> {
    fn meta(&self, a: &Arg) -> &Meta {
        match a {
            Arg::Node(j) => self.metas[*j as usize].as_ref().expect("inferred"),
            Arg::Ext(j) => &self.ext_metas[*j as usize],
        }
    }

    /// Whether node `i` is read by no instruction of the trace but `by`.
    fn only_read_by(&self, i: u32, by: u32) -> bool {
        self.users[i as usize].as_slice() == [by]
    }

    /// Whether node `i` is read only by `by` and does not outlive the trace.
    fn only_feeds(&self, i: u32, by: u32) -> bool {
        !self.live[i as usize] && self.only_read_by(i, by)
    }
}

fn one(items: &[Item], at: usize) -> Option<u32> {
    match items.get(at) {
        Some(Item::One(i)) => Some(*i),
        _ => None,
    }
}

/// The epilogue starting at `items[at]` (a matmul), if the next steps are an add of its product
/// that no other instruction reads (and a relu of the sum, if nothing else reads the sum and it
/// does not outlive the trace). Returns it and how many items it spans.
pub fn find(items: &[Item], at: usize, f: &Facts) -> Option<(Epilogue, usize)> {
    let mm = one(items, at)?;
    let (PlanOp::Exec(Op::MatMul, 2), Some(out)) = (&f.ops[mm as usize], &f.metas[mm as usize])
    else {
        return None;
    };
    if !matches!(out.dtype, DType::F32 | DType::F64) {
        return None;
    }
    let add = one(items, at + 1)?;
    let args = &f.args[add as usize];
    if !matches!(
        f.ops[add as usize],
        PlanOp::Exec(Op::Binary(BinaryOp::Add), 2)
    ) || !f.only_read_by(mm, add)
        || f.metas[add as usize].as_ref() != Some(out)
    {
        return None;
    }
    let (other, mm_left) = match (args[0], args[1]) {
        (Arg::Node(x), y) if x == mm && y != Arg::Node(mm) => (y, true),
        (x, Arg::Node(y)) if y == mm && x != Arg::Node(mm) => (x, false),
        _ => return None,
    };
    if f.meta(&other).dtype != out.dtype {
        return None;
    }
    let relu = one(items, at + 2).filter(|&r| {
        matches!(f.ops[r as usize], PlanOp::Exec(Op::Unary(UnaryOp::Relu), 1))
            && f.only_feeds(add, r)
    });
    let [a, b] = [f.args[mm as usize][0], f.args[mm as usize][1]];
    let e = Epilogue {
        mm,
        a,
        b,
        add,
        other,
        mm_left,
        relu,
        keep_product: f.live[mm as usize],
    };
    let span = 2 + usize::from(relu.is_some());
    Some((e, span))
}
