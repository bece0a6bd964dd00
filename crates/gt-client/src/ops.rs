//! The op methods. Each `try_x` checks its arguments and returns `Result`; the plain `x` form
//! panics at the caller's line with the same message (like an out-of-bounds index would).
//! Composite forms (transpose, unsqueeze, squeeze, integer indexing) are lowered here onto the
//! primitives of the op table.

use crate::session::Session;
use crate::tensor::Tensor;
use gt_core::shape::normalize_axis;
use gt_core::{DType, Error, Result, Shape};
use gt_ops::{BinaryOp, Dist, Op, ReduceOp, UnaryOp};
use gt_proto::TensorData;
use smallvec::SmallVec;

/// Unwraps with a panic located at the user's call.
#[track_caller]
pub(crate) fn ok<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Creation functions.
impl Session {
    /// A tensor holding `values` with `shape` (f32).
    pub fn try_tensor(&self, values: &[f32], shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        check_len("tensor", values.len(), &shape)?;
        Tensor::upload(self, TensorData::from_f32(shape, values))
    }
    /// A tensor holding `values` with `shape` (f64).
    pub fn try_tensor_f64(&self, values: &[f64], shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        check_len("tensor", values.len(), &shape)?;
        Tensor::upload(self, TensorData::from_f64(shape, values))
    }
    /// A tensor from raw bytes (any dtype).
    pub fn try_from_data(&self, data: TensorData) -> Result<Tensor> {
        Tensor::upload(self, data)
    }
    /// Filled with `value`.
    pub fn try_full(&self, shape: impl Into<Shape>, value: f64, dtype: DType) -> Result<Tensor> {
        Tensor::apply(
            self,
            Op::Full {
                shape: shape.into(),
                value,
                dtype,
            },
            &[],
        )
    }
    /// `start, start+step, …` below `end` (like `torch.arange`).
    pub fn try_arange(&self, start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() {
            return Err(Error::invalid("arange", "step must be finite and non-zero"));
        }
        let len = ((end - start) / step).ceil().max(0.0) as usize;
        Tensor::apply(
            self,
            Op::Arange {
                start,
                step,
                len,
                dtype,
            },
            &[],
        )
    }
    /// Zeros with the shape and dtype of `like`.
    pub fn try_zeros_like(&self, like: &Tensor) -> Result<Tensor> {
        self.try_full(like.shape().clone(), 0.0, like.dtype())
    }
    /// Uniform on `[0, 1)` from the session's counter-based generator.
    pub fn try_rand(&self, shape: impl Into<Shape>, dtype: DType) -> Result<Tensor> {
        self.random(Dist::Uniform, shape.into(), dtype)
    }
    /// Standard normal from the session's counter-based generator.
    pub fn try_randn(&self, shape: impl Into<Shape>, dtype: DType) -> Result<Tensor> {
        self.random(Dist::Normal, shape.into(), dtype)
    }
    fn random(&self, dist: Dist, shape: Shape, dtype: DType) -> Result<Tensor> {
        let (seed, stream) = self.next_random();
        Tensor::apply(
            self,
            Op::Random {
                dist,
                shape,
                dtype,
                seed,
                stream,
            },
            &[],
        )
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

macro_rules! unary_methods {
    ($($name:ident, $try_name:ident, $op:ident;)*) => {$(
        #[doc = concat!("Elementwise `", stringify!($name), "`.")]
        pub fn $try_name(&self) -> Result<Tensor> {
            self.op(Op::Unary(UnaryOp::$op), &[])
        }
        #[doc = concat!("Elementwise `", stringify!($name), "` (panics on a dtype error).")]
        #[track_caller]
        pub fn $name(&self) -> Tensor {
            ok(self.$try_name())
        }
    )*};
}

macro_rules! binary_methods {
    ($($name:ident, $try_name:ident, $scalar:ident, $op:ident;)*) => {$(
        #[doc = concat!("Elementwise `", stringify!($name), "` with NumPy broadcasting.")]
        pub fn $try_name(&self, other: &Tensor) -> Result<Tensor> {
            self.op(Op::Binary(BinaryOp::$op), &[other])
        }
        #[doc = concat!("Elementwise `", stringify!($name), "` (panics on a shape error).")]
        #[track_caller]
        pub fn $name(&self, other: &Tensor) -> Tensor {
            ok(self.$try_name(other))
        }
        #[doc = concat!("Elementwise `", stringify!($name), "` with a constant on the right.")]
        pub fn $scalar(&self, scalar: f64) -> Result<Tensor> {
            self.op(Op::BinaryScalar { op: BinaryOp::$op, scalar, scalar_left: false }, &[])
        }
    )*};
}

impl Tensor {
    unary_methods! {
        neg, try_neg, Neg;
        exp, try_exp, Exp;
        log, try_log, Log;
        sqrt, try_sqrt, Sqrt;
        relu, try_relu, Relu;
        sigmoid, try_sigmoid, Sigmoid;
        tanh, try_tanh, Tanh;
    }

    binary_methods! {
        add, try_add, try_add_scalar, Add;
        sub, try_sub, try_sub_scalar, Sub;
        mul, try_mul, try_mul_scalar, Mul;
        div, try_div, try_div_scalar, Div;
    }

    /// `scalar op self` (e.g. `2 - x`, `1 / x`).
    pub fn try_scalar_lhs(&self, op: BinaryOp, scalar: f64) -> Result<Tensor> {
        self.op(
            Op::BinaryScalar {
                op,
                scalar,
                scalar_left: true,
            },
            &[],
        )
    }

    /// Matrix product (2-d, batched with broadcast batch dims, 1-d promoted like NumPy).
    pub fn try_matmul(&self, other: &Tensor) -> Result<Tensor> {
        self.op(Op::MatMul, &[other])
    }
    /// Matrix product (panics on a shape error).
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        ok(self.try_matmul(other))
    }

    fn reduce(&self, op: ReduceOp, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let mut norm: SmallVec<[usize; 4]> = SmallVec::new();
        for &a in axes {
            let ax = normalize_axis(a, self.rank()).ok_or_else(|| {
                Error::axis(
                    op.name(),
                    format!("axis {a} is out of range for shape {}", self.shape()),
                )
            })?;
            if norm.contains(&ax) {
                return Err(Error::axis(
                    op.name(),
                    format!("axis {a} appears twice in {axes:?}"),
                ));
            }
            norm.push(ax);
        }
        norm.sort_unstable();
        self.op(
            Op::Reduce {
                op,
                axes: norm,
                keepdim,
            },
            &[],
        )
    }
    /// Sum over `axes` (negative axes count from the end).
    pub fn try_sum_dims(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        if axes.is_empty() {
            return Err(Error::axis(
                "sum",
                "no axes given; use sum() for a full reduction",
            ));
        }
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }
    /// Mean over `axes`.
    pub fn try_mean_dims(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        if axes.is_empty() {
            return Err(Error::axis(
                "mean",
                "no axes given; use mean() for a full reduction",
            ));
        }
        self.reduce(ReduceOp::Mean, axes, keepdim)
    }
    /// Max over `axes`.
    pub fn try_max_dims(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        if axes.is_empty() {
            return Err(Error::axis(
                "max",
                "no axes given; use max() for a full reduction",
            ));
        }
        self.reduce(ReduceOp::Max, axes, keepdim)
    }
    /// Sum over `axes` (panics on an axis error).
    #[track_caller]
    pub fn sum_dims(&self, axes: &[isize], keepdim: bool) -> Tensor {
        ok(self.try_sum_dims(axes, keepdim))
    }
    /// Mean over `axes` (panics on an axis error).
    #[track_caller]
    pub fn mean_dims(&self, axes: &[isize], keepdim: bool) -> Tensor {
        ok(self.try_mean_dims(axes, keepdim))
    }
    /// Max over `axes` (panics on an axis error).
    #[track_caller]
    pub fn max_dims(&self, axes: &[isize], keepdim: bool) -> Tensor {
        ok(self.try_max_dims(axes, keepdim))
    }
    /// Sum of all elements (0-d).
    #[track_caller]
    pub fn sum(&self) -> Tensor {
        ok(self.reduce(ReduceOp::Sum, &[], false))
    }
    /// Mean of all elements (0-d).
    #[track_caller]
    pub fn mean(&self) -> Tensor {
        ok(self.reduce(ReduceOp::Mean, &[], false))
    }
    /// Largest element (0-d).
    #[track_caller]
    pub fn max(&self) -> Tensor {
        ok(self.reduce(ReduceOp::Max, &[], false))
    }

    /// Same elements in a new shape; one entry may be -1 (inferred).
    pub fn try_reshape(&self, shape: &[isize]) -> Result<Tensor> {
        let n = self.numel();
        let mut infer_at = None;
        let mut known = 1usize;
        for (i, &d) in shape.iter().enumerate() {
            match d {
                -1 if infer_at.is_none() => infer_at = Some(i),
                -1 => {
                    return Err(Error::shape(
                        "reshape",
                        format!("only one -1 allowed in {shape:?}"),
                    ))
                }
                d if d < 0 => {
                    return Err(Error::shape(
                        "reshape",
                        format!("negative size {d} in {shape:?}"),
                    ))
                }
                d => known *= d as usize,
            }
        }
        let mut dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        if let Some(i) = infer_at {
            if known == 0 || !n.is_multiple_of(known) {
                return Err(Error::shape(
                    "reshape",
                    format!(
                        "cannot reshape {} ({n} elements) to {shape:?}",
                        self.shape()
                    ),
                ));
            }
            dims[i] = n / known;
        }
        self.op(
            Op::Reshape {
                shape: Shape::new(dims),
            },
            &[],
        )
    }
    /// Reshape (panics on a shape error).
    #[track_caller]
    pub fn reshape(&self, shape: &[isize]) -> Tensor {
        ok(self.try_reshape(shape))
    }

    fn axis(&self, op: &str, axis: isize, rank: usize) -> Result<usize> {
        normalize_axis(axis, rank).ok_or_else(|| {
            Error::axis(
                op,
                format!("axis {axis} is out of range for shape {}", self.shape()),
            )
        })
    }

    /// Reorders axes: `out.dim(i) = self.dim(perm[i])`.
    pub fn try_permute(&self, perm: &[isize]) -> Result<Tensor> {
        let mut p: SmallVec<[usize; 6]> = SmallVec::new();
        for &a in perm {
            p.push(self.axis("permute", a, self.rank())?);
        }
        self.op(Op::Permute { perm: p }, &[])
    }
    /// Permute (panics on an axis error).
    #[track_caller]
    pub fn permute(&self, perm: &[isize]) -> Tensor {
        ok(self.try_permute(perm))
    }
    /// Swaps two axes.
    pub fn try_transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (
            self.axis("transpose", a, self.rank())?,
            self.axis("transpose", b, self.rank())?,
        );
        let mut p: SmallVec<[usize; 6]> = (0..self.rank()).collect();
        p.swap(a, b);
        self.op(Op::Permute { perm: p }, &[])
    }
    /// Transpose (panics on an axis error).
    #[track_caller]
    pub fn transpose(&self, a: isize, b: isize) -> Tensor {
        ok(self.try_transpose(a, b))
    }
    /// The transpose of a 2-d tensor (swap of the last two axes for higher ranks).
    #[track_caller]
    pub fn t(&self) -> Tensor {
        if self.rank() < 2 {
            return self.clone();
        }
        self.transpose(-2, -1)
    }
    /// Inserts a size-1 axis at `axis` (in `0..=rank`, negative from the end).
    pub fn try_unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let ax = self.axis("unsqueeze", axis, self.rank() + 1)?;
        let mut dims = self.dims().to_vec();
        dims.insert(ax, 1);
        self.op(
            Op::Reshape {
                shape: Shape::new(dims),
            },
            &[],
        )
    }
    /// Unsqueeze (panics on an axis error).
    #[track_caller]
    pub fn unsqueeze(&self, axis: isize) -> Tensor {
        ok(self.try_unsqueeze(axis))
    }
    /// Removes axis `axis`, which must have size 1.
    pub fn try_squeeze(&self, axis: isize) -> Result<Tensor> {
        let ax = self.axis("squeeze", axis, self.rank())?;
        if self.dims()[ax] != 1 {
            return Err(Error::shape(
                "squeeze",
                format!("axis {axis} of shape {} is not of size 1", self.shape()),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims.remove(ax);
        self.op(
            Op::Reshape {
                shape: Shape::new(dims),
            },
            &[],
        )
    }
    /// Squeeze (panics on an axis error).
    #[track_caller]
    pub fn squeeze(&self, axis: isize) -> Tensor {
        ok(self.try_squeeze(axis))
    }
    /// Broadcasts to `shape` without copying on the worker.
    pub fn try_expand(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        self.op(
            Op::Expand {
                shape: shape.into(),
            },
            &[],
        )
    }
    /// Converts the element type.
    pub fn try_to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        self.op(Op::Cast { dtype }, &[])
    }
    /// Converts the element type (infallible for the supported dtypes).
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        ok(self.try_to_dtype(dtype))
    }
}
