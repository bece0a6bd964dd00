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
    /// `|x|`
    Abs,
    /// `-1`, `0` or `1` (NaN stays NaN)
    Sign,
    /// the error function (for exact GELU)
    Erf,
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
    /// `a ^ b`
    Pow,
    /// larger of the two (NaN propagates)
    Maximum,
    /// smaller of the two (NaN propagates)
    Minimum,
}

/// Elementwise comparisons; the result is `bool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareOp {
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
}

/// Index-of-extreme reductions over one axis; the result is `int64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArgOp {
    /// Index of the largest element (first one on ties).
    ArgMax,
    /// Index of the smallest element (first one on ties).
    ArgMin,
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
    /// Smallest element (NaN propagates).
    Min,
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
    Slice { specs: SliceSpecs },
    /// Broadcast to a larger shape (NumPy rules, no copy on the worker).
    Expand { shape: Shape },
    /// Element type conversion.
    Cast { dtype: DType },
    /// Elementwise comparison of two broadcast inputs (any dtypes) → bool.
    Compare(CompareOp),
    /// Elementwise comparison with a constant → bool.
    CompareScalar { op: CompareOp, scalar: f64 },
    /// `cond ? a : b` elementwise, all three broadcast (`cond` is bool).
    Where,
    /// Index of the extreme along `axis` → int64.
    ArgReduce {
        op: ArgOp,
        axis: usize,
        keepdim: bool,
    },
    /// Concatenation of any number of inputs along `axis`.
    Cat { axis: usize },
    /// `x` indexed along `axis` by a 1-d int64 tensor (embedding lookups).
    IndexSelect { axis: usize },
    /// `out[..i..] = x[..index[..i..]..]` along `axis` (PyTorch's `gather`).
    Gather { axis: usize },
    /// `base` plus `src` rows added at the 1-d int64 `index` along `axis` (index_select's VJP).
    IndexAdd { axis: usize },
    /// `base` plus `src` scattered-added at `index` along `axis` (gather's VJP).
    ScatterAdd { axis: usize },
    /// `x` with the slice `specs` replaced by `value` (which has the slice's shape).
    SliceAssign { specs: SliceSpecs },
}

/// One [`SliceSpec`] per axis. Boxed: slicing is rare in hot loops, and inline specs made
/// every `Op` (and so every instruction message, in every batch) 160 bytes.
pub type SliceSpecs = Box<[SliceSpec]>;

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
    /// Data-dependent indexing, concatenation and scatter.
    Index,
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
            Op::Compare(c) | Op::CompareScalar { op: c, .. } => c.name(),
            Op::Where => "where",
            Op::ArgReduce { op, .. } => op.name(),
            Op::Cat { .. } => "cat",
            Op::IndexSelect { .. } => "index_select",
            Op::Gather { .. } => "gather",
            Op::IndexAdd { .. } => "index_add",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::SliceAssign { .. } => "slice_assign",
        }
    }

    /// How many tensor inputs the op takes (`None`: any number ≥ 1).
    pub fn arity(&self) -> Option<usize> {
        Some(match self {
            Op::Full { .. } | Op::Arange { .. } | Op::Random { .. } => 0,
            Op::Unary(_)
            | Op::BinaryScalar { .. }
            | Op::Cast { .. }
            | Op::CompareScalar { .. }
            | Op::Reduce { .. }
            | Op::ArgReduce { .. }
            | Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::Slice { .. }
            | Op::Expand { .. } => 1,
            Op::Binary(_)
            | Op::Compare(_)
            | Op::MatMul
            | Op::IndexSelect { .. }
            | Op::Gather { .. }
            | Op::SliceAssign { .. } => 2,
            Op::Where | Op::IndexAdd { .. } | Op::ScatterAdd { .. } => 3,
            Op::Cat { .. } => return None,
        })
    }

    /// The op's family.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Full { .. } | Op::Arange { .. } | Op::Random { .. } => OpKind::Creation,
            Op::Unary(_)
            | Op::Binary(_)
            | Op::BinaryScalar { .. }
            | Op::Cast { .. }
            | Op::Compare(_)
            | Op::CompareScalar { .. }
            | Op::Where => OpKind::Elementwise,
            Op::MatMul => OpKind::MatMul,
            Op::Reduce { .. } | Op::ArgReduce { .. } => OpKind::Reduce,
            Op::Reshape { .. } | Op::Permute { .. } | Op::Slice { .. } | Op::Expand { .. } => {
                OpKind::View
            }
            Op::Cat { .. }
            | Op::IndexSelect { .. }
            | Op::Gather { .. }
            | Op::IndexAdd { .. }
            | Op::ScatterAdd { .. }
            | Op::SliceAssign { .. } => OpKind::Index,
        }
    }
}

impl UnaryOp {
    /// Every unary op, for table-driven tests.
    pub const ALL: [UnaryOp; 10] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Erf,
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
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Erf => "erf",
        }
    }
}

impl BinaryOp {
    /// Every binary op, for table-driven tests.
    pub const ALL: [BinaryOp; 7] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
    ];
    /// The op's name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }
}

impl CompareOp {
    /// Every comparison, for table-driven tests.
    pub const ALL: [CompareOp; 6] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ];
    /// The op's name.
    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
        }
    }
}

impl ArgOp {
    /// The op's name.
    pub fn name(self) -> &'static str {
        match self {
            ArgOp::ArgMax => "argmax",
            ArgOp::ArgMin => "argmin",
        }
    }
}

impl ReduceOp {
    /// Every reduction, for table-driven tests.
    pub const ALL: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min];
    /// The op's name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
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
            Op::CompareScalar { op, scalar } => write!(f, "{}(x, scalar={scalar})", op.name()),
            Op::ArgReduce { op, axis, keepdim } => {
                write!(f, "{}(axis={axis}, keepdim={keepdim})", op.name())
            }
            Op::Cat { axis }
            | Op::IndexSelect { axis }
            | Op::Gather { axis }
            | Op::IndexAdd { axis }
            | Op::ScatterAdd { axis } => write!(f, "{}(axis={axis})", self.name()),
            Op::SliceAssign { specs } => write!(f, "slice_assign({} axes)", specs.len()),
            Op::Unary(_) | Op::Binary(_) | Op::MatMul | Op::Compare(_) | Op::Where => {
                f.write_str(self.name())
            }
        }
    }
}
