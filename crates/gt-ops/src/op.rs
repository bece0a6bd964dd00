//! The op enum family. Ops are pure: inputs are never modified, every op produces one new tensor.
//! Composite user-level operations (transpose, unsqueeze, integer indexing, scalar-left division…)
//! are lowered by the client onto these primitives.

use gt_core::{DType, Shape};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Elementwise functions of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `e^x`
    Exp,
    /// natural logarithm
    Log,
    /// square root
    Sqrt,
    /// `max(x, 0)` (NaN stays NaN)
    Relu,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// hyperbolic tangent
    Tanh,
}

/// Elementwise functions of two tensors (NumPy broadcasting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReduceOp {
    /// Sum of the elements.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Largest element (NaN propagates).
    Max,
}

/// Distributions of random creation ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dist {
    /// Uniform on `[0, 1)`.
    Uniform,
    /// Standard normal.
    Normal,
}

/// One axis of a basic slice, already normalized by the client: `len` elements starting at
/// `start`, every `step`-th (`step ≥ 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SliceSpec {
    /// First index taken.
    pub start: usize,
    /// Number of elements taken.
    pub len: usize,
    /// Distance between taken indices.
    pub step: usize,
}

/// Every op GT can execute. Attribute values are part of the op (and of a hot-path signature).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A tensor filled with one value (zeros, ones, full).
    Full {
        shape: Shape,
        value: f64,
        dtype: DType,
    },
    /// `start, start+step, …` with `len` elements (1-d).
    Arange {
        start: f64,
        step: f64,
        len: usize,
        dtype: DType,
    },
    /// Counter-based random values: element `i` depends only on `(seed, stream, i)`.
    Random {
        dist: Dist,
        shape: Shape,
        dtype: DType,
        seed: u64,
        stream: u64,
    },
    /// Elementwise function of one input.
    Unary(UnaryOp),
    /// Elementwise function of two broadcast inputs.
    Binary(BinaryOp),
    /// Elementwise function of one input and a constant; `scalar_left` means `scalar op x`.
    BinaryScalar {
        op: BinaryOp,
        scalar: f64,
        scalar_left: bool,
    },
    /// Matrix product: 2-d, or batched with broadcast batch dims (1-d operands are promoted
    /// like NumPy's `matmul`).
    MatMul,
    /// Reduction over `axes` (sorted, unique; empty means all axes).
    Reduce {
        op: ReduceOp,
        axes: SmallVec<[usize; 4]>,
        keepdim: bool,
    },
    /// Same elements, new shape (fully resolved: no -1).
    Reshape { shape: Shape },
    /// Axis permutation (`out.dim(i) = in.dim(perm[i])`).
    Permute { perm: SmallVec<[usize; 6]> },
    /// Basic slicing, one spec per input axis.
    Slice { specs: SmallVec<[SliceSpec; 6]> },
    /// Broadcast to a larger shape (NumPy rules, no copy on the worker).
    Expand { shape: Shape },
    /// Element type conversion.
    Cast { dtype: DType },
}

/// The coarse family of an op: what a kernel, a fusion pass or a sharding rule cares about first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Makes a tensor from attributes only.
    Creation,
    /// One output element from the same-position input elements.
    Elementwise,
    /// Matrix multiplication.
    MatMul,
    /// Reduction over axes.
    Reduce,
    /// Re-indexing without arithmetic.
    View,
}

impl Op {
    /// The user-facing name used in errors, logs and stats (`add`, `matmul`, `sum`…).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Full { .. } => "full",
            Op::Arange { .. } => "arange",
            Op::Random {
                dist: Dist::Uniform,
                ..
            } => "rand",
            Op::Random {
                dist: Dist::Normal, ..
            } => "randn",
            Op::Unary(u) => u.name(),
            Op::Binary(b) | Op::BinaryScalar { op: b, .. } => b.name(),
            Op::MatMul => "matmul",
            Op::Reduce { op, .. } => op.name(),
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Slice { .. } => "slice",
            Op::Expand { .. } => "expand",
            Op::Cast { .. } => "cast",
        }
    }

    /// How many tensor inputs the op takes.
    pub fn arity(&self) -> usize {
        match self.kind() {
            OpKind::Creation => 0,
            OpKind::MatMul => 2,
            OpKind::Elementwise => match self {
                Op::Binary(_) => 2,
                _ => 1,
            },
            OpKind::Reduce | OpKind::View => 1,
        }
    }

    /// The op's family.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Full { .. } | Op::Arange { .. } | Op::Random { .. } => OpKind::Creation,
            Op::Unary(_) | Op::Binary(_) | Op::BinaryScalar { .. } | Op::Cast { .. } => {
                OpKind::Elementwise
            }
            Op::MatMul => OpKind::MatMul,
            Op::Reduce { .. } => OpKind::Reduce,
            Op::Reshape { .. } | Op::Permute { .. } | Op::Slice { .. } | Op::Expand { .. } => {
                OpKind::View
            }
        }
    }
}

impl UnaryOp {
    /// Every unary op, for table-driven tests.
    pub const ALL: [UnaryOp; 7] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
    ];
    /// The op's name.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Relu => "relu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
        }
    }
}

impl BinaryOp {
    /// Every binary op, for table-driven tests.
    pub const ALL: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];
    /// The op's name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }
}

impl ReduceOp {
    /// Every reduction, for table-driven tests.
    pub const ALL: [ReduceOp; 3] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max];
    /// The op's name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Full {
                shape,
                value,
                dtype,
            } => write!(f, "full({shape}, {value}, {dtype})"),
            Op::Arange {
                start,
                step,
                len,
                dtype,
            } => {
                write!(f, "arange(start={start}, step={step}, len={len}, {dtype})")
            }
            Op::Random {
                shape,
                dtype,
                seed,
                stream,
                ..
            } => {
                write!(
                    f,
                    "{}({shape}, {dtype}, seed={seed}, stream={stream})",
                    self.name()
                )
            }
            Op::BinaryScalar {
                op,
                scalar,
                scalar_left: true,
            } => {
                write!(f, "{}(scalar={scalar}, x)", op.name())
            }
            Op::BinaryScalar {
                op,
                scalar,
                scalar_left: false,
            } => {
                write!(f, "{}(x, scalar={scalar})", op.name())
            }
            Op::Reduce { op, axes, keepdim } => {
                write!(
                    f,
                    "{}(axes={:?}, keepdim={keepdim})",
                    op.name(),
                    axes.as_slice()
                )
            }
            Op::Reshape { shape } | Op::Expand { shape } => write!(f, "{}({shape})", self.name()),
            Op::Permute { perm } => write!(f, "permute({:?})", perm.as_slice()),
            Op::Slice { specs } => {
                write!(f, "slice(")?;
                for (i, s) in specs.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(
                        f,
                        "{sep}{}:{}:{}",
                        s.start,
                        s.start + s.len * s.step,
                        s.step
                    )?;
                }
                write!(f, ")")
            }
            Op::Cast { dtype } => write!(f, "cast({dtype})"),
            Op::Unary(_) | Op::Binary(_) | Op::MatMul => f.write_str(self.name()),
        }
    }
}
