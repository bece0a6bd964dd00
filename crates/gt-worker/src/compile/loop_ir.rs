//! The fused elementwise loop IR: one pass over an output shape computing any number of outputs
//! from strided inputs through a small SSA program. The trace compiler lowers fused chains of
//! elementwise/broadcast ops to a [`LoopSpec`]; a code generator (Cranelift JIT, or the blocked
//! interpreter as fallback) turns it into a [`LoopKernel`].
//!
//! Semantics are exactly the eager CPU kernels': each node computes in its own dtype with the
//! per-element functions of `gt_ops::scalar`, so a fused loop gives bit-identical results to the
//! ops it replaces.

use gt_core::{DType, Shape};
use gt_ops::{BinaryOp, CompareOp, UnaryOp};
use smallvec::SmallVec;

/// One fused loop. Shapes and strides are fixed when the loop is compiled (a trace's signature
/// fixes every shape).
#[derive(Clone, Debug, PartialEq)]
pub struct LoopSpec {
    /// The iteration space: every output has this shape and is written contiguously (row-major).
    pub shape: Shape,
    /// The tensors read.
    pub inputs: Vec<LoopInput>,
    /// The program, evaluated per element in order; operands name earlier nodes by index.
    pub nodes: Vec<LoopNode>,
    /// The nodes stored, one contiguous output buffer each, in this order.
    pub outputs: Vec<u32>,
}

/// How one input is read: element `idx` (a multi-index over [`LoopSpec::shape`]) is at
/// `offset + Σ idx[d] · strides[d]` elements from the start of its storage. Broadcast axes have
/// stride 0.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopInput {
    /// The stored element type.
    pub dtype: DType,
    /// Offset of element `[0, 0, …]`, in elements.
    pub offset: usize,
    /// Stride per axis of the iteration space, in elements.
    pub strides: SmallVec<[isize; 6]>,
}

/// One SSA value per element. Every node has a dtype (see [`LoopSpec::dtype_of`]).
#[derive(Clone, Debug, PartialEq)]
pub enum LoopNode {
    /// The element of input `k`, in the input's dtype.
    Load(u32),
    /// A constant of the given dtype (`value` converted like the eager kernels do).
    Const { value: f64, dtype: DType },
    /// A unary function of a float node (result: same dtype).
    Unary(UnaryOp, u32),
    /// A binary function of two float nodes of the same dtype (result: that dtype).
    Binary(BinaryOp, u32, u32),
    /// A comparison of two nodes of the same dtype (result: bool).
    Compare(CompareOp, u32, u32),
    /// `cond ? a : b` with a bool `cond` and `a`, `b` of the same dtype.
    Where(u32, u32, u32),
    /// Conversion to `dtype`, like the eager `Cast` kernel.
    Cast(DType, u32),
}

impl LoopSpec {
    /// The dtype of node `i` (operands must come before `i`).
    pub fn dtype_of(&self, i: usize) -> DType {
        match &self.nodes[i] {
            LoopNode::Load(k) => self.inputs[*k as usize].dtype,
            LoopNode::Const { dtype, .. } | LoopNode::Cast(dtype, _) => *dtype,
            LoopNode::Unary(_, a) | LoopNode::Binary(_, a, _) => self.dtype_of(*a as usize),
            LoopNode::Compare(..) => DType::Bool,
            LoopNode::Where(_, a, _) => self.dtype_of(*a as usize),
        }
    }
}

/// A compiled loop. `run` computes the elements `range` (linear, row-major indices into the
/// iteration space) of every output, so callers may split a large loop across threads.
pub trait LoopKernel: Send + Sync {
    /// # Safety
    /// `inputs[k]` must point at the start of input `k`'s storage, valid for every element the
    /// spec's offset and strides reach; `outputs[j]` must point at a buffer of `shape.numel()`
    /// elements of output `j`'s dtype, not aliasing any input, and no two concurrent calls may
    /// write overlapping ranges.
    unsafe fn run(&self, inputs: &[*const u8], outputs: &[*mut u8], range: std::ops::Range<usize>);
}
