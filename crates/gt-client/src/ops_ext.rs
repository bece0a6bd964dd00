//! The extended op methods: comparisons and selection, more elementwise math, min/arg
//! reductions, combining and splitting, data-dependent indexing, functional slice assignment,
//! dtype shorthands, and integer/bool uploads. Everything here is a thin lowering onto the op
//! table, so gradients come from `gt_ops::grad` for free. The neural-network functions built on
//! top (softmax, layer_norm, dropout…) are in [`crate::ops_nnf`].
//!
//! As everywhere in the client, `try_x` returns `Result` and the plain `x` panics at the caller.

use crate::index::{resolve, Idx};
use crate::ops::ok;
use crate::session::Session;
use crate::tensor::Tensor;
use gt_core::shape::normalize_axis;
use gt_core::{DType, Error, Result, Shape};
use gt_ops::{ArgOp, BinaryOp, CompareOp, Op, ReduceOp, UnaryOp};
use gt_proto::TensorData;
use smallvec::SmallVec;
use std::borrow::Borrow;

/// `axis` of `t` resolved (negative counts from the end), or an axis error naming `op`.
pub(crate) fn norm_axis(op: &str, axis: isize, t: &Tensor) -> Result<usize> {
    normalize_axis(axis, t.rank()).ok_or_else(|| {
        Error::axis(
            op,
            format!("axis {axis} is out of range for shape {}", t.shape()),
        )
    })
}

/// `axes` of `t` resolved, sorted and checked for repeats (empty stays empty: all axes).
pub(crate) fn norm_axes(op: &str, axes: &[isize], t: &Tensor) -> Result<SmallVec<[usize; 4]>> {
    let mut out: SmallVec<[usize; 4]> = SmallVec::new();
    for &a in axes {
        let ax = norm_axis(op, a, t)?;
        if out.contains(&ax) {
            return Err(Error::axis(
                op,
                format!("axis {a} appears twice in {axes:?}"),
            ));
        }
        out.push(ax);
    }
    out.sort_unstable();
    Ok(out)
}

/// A reduction over already-resolved axes (empty: all).
pub(crate) fn reduce(
    t: &Tensor,
    op: ReduceOp,
    axes: SmallVec<[usize; 4]>,
    keepdim: bool,
) -> Result<Tensor> {
    t.op(Op::Reduce { op, axes, keepdim }, &[])
}

/// A 0-d constant of `like`'s dtype in its session (broadcasts against anything).
pub(crate) fn scalar_like(like: &Tensor, value: f64) -> Result<Tensor> {
    like.session()
        .try_full(Shape::scalar(), value, like.dtype())
}

/// A dtype error naming `op` unless `t` is floating point.
pub(crate) fn need_float(op: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::dtype(
            op,
            format!("expected a float tensor, got {} {}", t.dtype(), t.shape()),
        ))
    }
}

fn scalar_op(t: &Tensor, op: BinaryOp, scalar: f64) -> Result<Tensor> {
    t.op(
        Op::BinaryScalar {
            op,
            scalar,
            scalar_left: false,
        },
        &[],
    )
}

/// `cond ? a : b` elementwise with broadcasting (`cond` must be bool); `a` and `b` are promoted
/// to a common dtype first, like `torch.where`.
pub fn try_where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dt = DType::promote(a.dtype(), b.dtype());
    let (a, b) = (a.try_to_dtype(dt)?, b.try_to_dtype(dt)?);
    Tensor::apply(cond.session(), Op::Where, &[cond, &a, &b])
}

/// `cond ? a : b` (panics on a shape or dtype error).
#[track_caller]
pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    ok(try_where_(cond, a, b))
}

/// Concatenation along `axis` (like `torch.cat`); dtypes are promoted to a common one.
pub fn try_cat<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Result<Tensor> {
    let first = tensors
        .first()
        .ok_or_else(|| Error::invalid("cat", "needs at least one tensor"))?
        .borrow();
    if let Some(i) = tensors.iter().position(|t| t.borrow().rank() == 0) {
        return Err(Error::shape(
            "cat",
            format!("input {i} is 0-d and cannot be concatenated"),
        ));
    }
    let ax = norm_axis("cat", axis, first)?;
    let dt = tensors
        .iter()
        .fold(first.dtype(), |d, t| DType::promote(d, t.borrow().dtype()));
    let mut all: Vec<Tensor> = tensors
        .iter()
        .map(|t| t.borrow().try_to_dtype(dt))
        .collect::<Result<_>>()?;
    if all.len() == 1 {
        return Ok(all.pop().expect("one tensor"));
    }
    let refs: Vec<&Tensor> = all.iter().collect();
    Tensor::apply(first.session(), Op::Cat { axis: ax }, &refs)
}

/// Concatenation along `axis` (panics on a shape error).
#[track_caller]
pub fn cat<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Tensor {
    ok(try_cat(tensors, axis))
}

/// Joins equally shaped tensors along a new axis `axis` (in `0..=rank`, like `torch.stack`).
pub fn try_stack<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Result<Tensor> {
    let first = tensors
        .first()
        .ok_or_else(|| Error::invalid("stack", "needs at least one tensor"))?
        .borrow();
    for (i, t) in tensors.iter().enumerate() {
        let t = t.borrow();
        if t.shape() != first.shape() {
            return Err(Error::shape(
                "stack",
                format!(
                    "input {i} has shape {}, but input 0 has {} (all must be equal)",
                    t.shape(),
                    first.shape()
                ),
            ));
        }
    }
    let ax = normalize_axis(axis, first.rank() + 1).ok_or_else(|| {
        Error::axis(
            "stack",
            format!(
                "axis {axis} is out of range for stacking tensors of shape {}",
                first.shape()
            ),
        )
    })?;
    let parts: Vec<Tensor> = tensors
        .iter()
        .map(|t| t.borrow().try_unsqueeze(ax as isize))
        .collect::<Result<_>>()?;
    try_cat(&parts, ax as isize)
}

/// Joins along a new axis (panics on a shape error).
#[track_caller]
pub fn stack<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Tensor {
    ok(try_stack(tensors, axis))
}

macro_rules! compare_methods {
    ($($name:ident, $try_name:ident, $scalar:ident, $try_scalar:ident, $op:ident;)*) => {$(
        #[doc = concat!("Elementwise `", stringify!($name), "` with broadcasting (bool result).")]
        pub fn $try_name(&self, other: &Tensor) -> Result<Tensor> {
            self.op(Op::Compare(CompareOp::$op), &[other])
        }
        #[doc = concat!("Elementwise `", stringify!($name), "` (panics on a shape error).")]
        #[track_caller]
        pub fn $name(&self, other: &Tensor) -> Tensor {
            ok(self.$try_name(other))
        }
        #[doc = concat!("Elementwise `", stringify!($name), "` against a constant (bool result).")]
        pub fn $try_scalar(&self, scalar: f64) -> Result<Tensor> {
            self.op(Op::CompareScalar { op: CompareOp::$op, scalar }, &[])
        }
        #[doc = concat!("Elementwise `", stringify!($name), "` against a constant.")]
        #[track_caller]
        pub fn $scalar(&self, scalar: f64) -> Tensor {
            ok(self.$try_scalar(scalar))
        }
    )*};
}

macro_rules! simple_methods {
    ($($(#[$doc:meta])* $name:ident, $try_name:ident, $op:expr;)*) => {$(
        $(#[$doc])*
        pub fn $try_name(&self) -> Result<Tensor> {
            self.op($op, &[])
        }
        $(#[$doc])*
        #[track_caller]
        pub fn $name(&self) -> Tensor {
            ok(self.$try_name())
        }
    )*};
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident, $try_name:ident, $op:ident;)*) => {$(
        $(#[$doc])*
        pub fn $try_name(&self, other: &Tensor) -> Result<Tensor> {
            self.op(Op::Binary(BinaryOp::$op), &[other])
        }
        $(#[$doc])*
        #[track_caller]
        pub fn $name(&self, other: &Tensor) -> Tensor {
            ok(self.$try_name(other))
        }
    )*};
}

/// Comparisons, selection and elementwise math.
impl Tensor {
    compare_methods! {
        eq, try_eq, eq_scalar, try_eq_scalar, Eq;
        ne, try_ne, ne_scalar, try_ne_scalar, Ne;
        lt, try_lt, lt_scalar, try_lt_scalar, Lt;
        le, try_le, le_scalar, try_le_scalar, Le;
        gt, try_gt, gt_scalar, try_gt_scalar, Gt;
        ge, try_ge, ge_scalar, try_ge_scalar, Ge;
    }

    simple_methods! {
        /// Elementwise `|x|`.
        abs, try_abs, Op::Unary(UnaryOp::Abs);
        /// Elementwise sign: -1, 0 or 1.
        sign, try_sign, Op::Unary(UnaryOp::Sign);
        /// Elementwise error function.
        erf, try_erf, Op::Unary(UnaryOp::Erf);
    }

    binary_methods! {
        /// Elementwise `self ^ other` with broadcasting.
        pow, try_pow, Pow;
        /// Elementwise larger of two tensors with broadcasting (NaN propagates).
        maximum, try_maximum, Maximum;
        /// Elementwise smaller of two tensors with broadcasting (NaN propagates).
        minimum, try_minimum, Minimum;
    }

    /// Elementwise `self ^ exponent`.
    pub fn try_pow_scalar(&self, exponent: f64) -> Result<Tensor> {
        scalar_op(self, BinaryOp::Pow, exponent)
    }
    /// Elementwise `self ^ exponent` (panics on a dtype error).
    #[track_caller]
    pub fn pow_scalar(&self, exponent: f64) -> Tensor {
        ok(self.try_pow_scalar(exponent))
    }

    /// Limits values to `[min, max]` (either bound may be absent, not both; like `torch.clamp`,
    /// `min > max` gives `max` everywhere).
    pub fn try_clamp(&self, min: Option<f64>, max: Option<f64>) -> Result<Tensor> {
        if min.is_none() && max.is_none() {
            return Err(Error::invalid(
                "clamp",
                "at least one of min and max must be given",
            ));
        }
        let mut y = self.clone();
        if let Some(lo) = min {
            y = scalar_op(&y, BinaryOp::Maximum, lo)?;
        }
        if let Some(hi) = max {
            y = scalar_op(&y, BinaryOp::Minimum, hi)?;
        }
        Ok(y)
    }
    /// Clamp (panics when both bounds are absent or on a dtype error).
    #[track_caller]
    pub fn clamp(&self, min: Option<f64>, max: Option<f64>) -> Tensor {
        ok(self.try_clamp(min, max))
    }

    /// `value` where `mask` is true, `self` elsewhere (`mask` is bool and broadcasts).
    pub fn try_masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        try_where_(mask, &scalar_like(self, value)?, self)
    }
    /// Masked fill (panics on a shape or dtype error).
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Tensor {
        ok(self.try_masked_fill(mask, value))
    }
}

/// Reductions: min and the index of the extreme.
impl Tensor {
    /// Smallest element (0-d).
    #[track_caller]
    pub fn min(&self) -> Tensor {
        ok(reduce(self, ReduceOp::Min, SmallVec::new(), false))
    }
    /// Min over `axes` (negative axes count from the end).
    pub fn try_min_dims(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        if axes.is_empty() {
            return Err(Error::axis(
                "min",
                "no axes given; use min() for a full reduction",
            ));
        }
        reduce(self, ReduceOp::Min, norm_axes("min", axes, self)?, keepdim)
    }
    /// Min over `axes` (panics on an axis error).
    #[track_caller]
    pub fn min_dims(&self, axes: &[isize], keepdim: bool) -> Tensor {
        ok(self.try_min_dims(axes, keepdim))
    }

    fn arg_reduce(&self, op: ArgOp, axis: isize, keepdim: bool) -> Result<Tensor> {
        let axis = norm_axis(op.name(), axis, self)?;
        self.op(Op::ArgReduce { op, axis, keepdim }, &[])
    }
    /// Index of the largest element along `axis` (first on ties; int64).
    pub fn try_argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(ArgOp::ArgMax, axis, keepdim)
    }
    /// Argmax (panics on an axis error).
    #[track_caller]
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Tensor {
        ok(self.try_argmax(axis, keepdim))
    }
    /// Index of the smallest element along `axis` (first on ties; int64).
    pub fn try_argmin(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(ArgOp::ArgMin, axis, keepdim)
    }
    /// Argmin (panics on an axis error).
    #[track_caller]
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Tensor {
        ok(self.try_argmin(axis, keepdim))
    }
}

/// Shapes, splitting and indexing.
impl Tensor {
    /// Broadcasts to `shape` (panics when `shape` is not a broadcast of this shape).
    #[track_caller]
    pub fn expand(&self, shape: impl Into<Shape>) -> Tensor {
        ok(self.try_expand(shape))
    }
    /// Broadcasts to `shape` (NumPy rules; a no-op when the shape already matches).
    pub fn try_broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if self.shape() == &shape {
            return Ok(self.clone());
        }
        self.try_expand(shape)
    }
    /// Broadcast to `shape` (panics on a shape error).
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        ok(self.try_broadcast_to(shape))
    }

    /// The elements as a 1-d tensor.
    pub fn try_flatten(&self) -> Result<Tensor> {
        if self.rank() == 1 {
            return Ok(self.clone());
        }
        self.op(
            Op::Reshape {
                shape: Shape::new([self.numel()]),
            },
            &[],
        )
    }
    /// The elements as a 1-d tensor.
    #[track_caller]
    pub fn flatten(&self) -> Tensor {
        ok(self.try_flatten())
    }

    /// Pieces of `size` along `axis`, the last one smaller when `size` does not divide the axis
    /// (like `torch.split` with an int).
    pub fn try_split(&self, size: usize, axis: isize) -> Result<Vec<Tensor>> {
        if size == 0 {
            return Err(Error::invalid("split", "piece size must be at least 1"));
        }
        let ax = norm_axis("split", axis, self)?;
        let d = self.dims()[ax];
        if d == 0 {
            return Ok(vec![self.clone()]);
        }
        (0..d)
            .step_by(size)
            .map(|s| self.try_slice(ax as isize, s as isize, (s + size).min(d) as isize, 1))
            .collect()
    }
    /// Split (panics on an axis error or a zero size).
    #[track_caller]
    pub fn split(&self, size: usize, axis: isize) -> Vec<Tensor> {
        ok(self.try_split(size, axis))
    }
    /// At most `n` pieces of `ceil(len / n)` along `axis` (PyTorch's `chunk`: there may be fewer
    /// than `n`, e.g. 6 elements in 4 chunks give 3 pieces of 2).
    pub fn try_chunk(&self, n: usize, axis: isize) -> Result<Vec<Tensor>> {
        if n == 0 {
            return Err(Error::invalid(
                "chunk",
                "number of chunks must be at least 1",
            ));
        }
        let ax = norm_axis("chunk", axis, self)?;
        self.try_split(self.dims()[ax].div_ceil(n).max(1), axis)
    }
    /// Chunk (panics on an axis error or `n == 0`).
    #[track_caller]
    pub fn chunk(&self, n: usize, axis: isize) -> Vec<Tensor> {
        ok(self.try_chunk(n, axis))
    }

    /// The entries at the int64 positions `index` (1-d, or 0-d taken as one position) along
    /// `axis`.
    pub fn try_index_select(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        let ax = norm_axis("index_select", axis, self)?;
        if index.rank() == 0 {
            let one = index.op(
                Op::Reshape {
                    shape: Shape::new([1]),
                },
                &[],
            )?;
            return self.op(Op::IndexSelect { axis: ax }, &[&one]);
        }
        self.op(Op::IndexSelect { axis: ax }, &[index])
    }
    /// Index select (panics on a shape, axis or dtype error).
    #[track_caller]
    pub fn index_select(&self, axis: isize, index: &Tensor) -> Tensor {
        ok(self.try_index_select(axis, index))
    }
    /// `out[i][j][k] = self[i][index[i][j][k]][k]` for `axis` 1 (PyTorch's `gather`; `index` is
    /// int64 with this tensor's rank).
    pub fn try_gather(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        let ax = norm_axis("gather", axis, self)?;
        self.op(Op::Gather { axis: ax }, &[index])
    }
    /// Gather (panics on a shape, axis or dtype error).
    #[track_caller]
    pub fn gather(&self, axis: isize, index: &Tensor) -> Tensor {
        ok(self.try_gather(axis, index))
    }

    /// A new tensor equal to this one except that `self[idx]` is `value` (broadcast to the
    /// indexed shape and converted to this dtype) — the functional form of `x[idx] = value`.
    /// This tensor is unchanged; gradients flow to both.
    pub fn try_index_put(&self, idx: &[Idx], value: &Tensor) -> Result<Tensor> {
        let (specs, out_dims) = resolve("index_put", self.shape(), idx)?;
        let target = Shape::new(&out_dims);
        let mut v = value.try_to_dtype(self.dtype())?;
        if v.shape() != &target {
            v = v
                .op(
                    Op::Expand {
                        shape: target.clone(),
                    },
                    &[],
                )
                .map_err(|e| match e {
                    Error::Shape { .. } => Error::shape(
                        "index_put",
                        format!(
                            "value of shape {} cannot be broadcast to the indexed shape {target} of a tensor of shape {}",
                            value.shape(),
                            self.shape()
                        ),
                    ),
                    other => other,
                })?;
        }
        let slice_shape = Shape::new(
            specs
                .iter()
                .map(|s| s.len)
                .collect::<SmallVec<[usize; 6]>>(),
        );
        if v.shape() != &slice_shape {
            v = v.op(Op::Reshape { shape: slice_shape }, &[])?;
        }
        self.op(
            Op::SliceAssign {
                specs: specs.into_vec().into(),
            },
            &[&v],
        )
    }
    /// Index put (panics on an out-of-bounds index or a shape error).
    #[track_caller]
    pub fn index_put(&self, idx: &[Idx], value: &Tensor) -> Tensor {
        ok(self.try_index_put(idx, value))
    }
    /// A new tensor equal to this one except that `self[idx]` is `value`.
    pub fn try_index_fill(&self, idx: &[Idx], value: f64) -> Result<Tensor> {
        self.try_index_put(idx, &scalar_like(self, value)?)
    }
    /// Index fill (panics on an out-of-bounds index).
    #[track_caller]
    pub fn index_fill(&self, idx: &[Idx], value: f64) -> Tensor {
        ok(self.try_index_fill(idx, value))
    }

    /// Converted to float32.
    #[track_caller]
    pub fn float(&self) -> Tensor {
        self.to_dtype(DType::F32)
    }
    /// Converted to float64.
    #[track_caller]
    pub fn double(&self) -> Tensor {
        self.to_dtype(DType::F64)
    }
    /// Converted to int64 (floats truncate toward zero).
    #[track_caller]
    pub fn long(&self) -> Tensor {
        self.to_dtype(DType::I64)
    }
    /// Converted to bool (non-zero is true).
    #[track_caller]
    pub fn bool(&self) -> Tensor {
        self.to_dtype(DType::Bool)
    }
}

fn check_len(op: &str, len: usize, shape: &Shape) -> Result<()> {
    if len != shape.numel() {
        return Err(Error::shape(
            op,
            format!(
                "{len} values do not fill shape {shape} ({} elements)",
                shape.numel()
            ),
        ));
    }
    Ok(())
}

/// Integer and boolean uploads.
impl Session {
    /// An int64 tensor holding `values` with `shape` (ids, indices).
    pub fn try_tensor_i64(&self, values: &[i64], shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        check_len("tensor", values.len(), &shape)?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::upload(
            self,
            TensorData {
                dtype: DType::I64,
                shape,
                bytes,
            },
        )
    }
    /// A bool tensor holding `values` with `shape` (masks).
    pub fn try_tensor_bool(&self, values: &[bool], shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        check_len("tensor", values.len(), &shape)?;
        let bytes = values.iter().map(|&b| u8::from(b)).collect();
        Tensor::upload(
            self,
            TensorData {
                dtype: DType::Bool,
                shape,
                bytes,
            },
        )
    }
}
