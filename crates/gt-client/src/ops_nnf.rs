//! Neural-network functions written as composites of table ops (so their gradients come from
//! `gt_ops::grad` op by op): variance, the softmax family, activations, layer norm, dropout and
//! embedding lookups. PyTorch names and semantics.

use crate::autograd::no_grad;
use crate::ops::ok;
use crate::ops_ext::{need_float, norm_axes, norm_axis, reduce, scalar_like, try_where_};
use crate::tensor::Tensor;
use gt_core::{DType, Error, Result, Shape};
use gt_ops::{Op, ReduceOp};
use smallvec::{smallvec, SmallVec};

/// `sqrt(2 / pi)`, the scale inside the tanh approximation of GELU.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

impl Tensor {
    /// Variance over `axes` (empty: all axes) with Bessel-style `correction` (`None`: 1, the
    /// unbiased estimate, like PyTorch; `Some(0.0)`: the population variance). Divides by
    /// `max(0, n - correction)`.
    pub fn try_var(
        &self,
        axes: &[isize],
        keepdim: bool,
        correction: Option<f64>,
    ) -> Result<Tensor> {
        need_float("var", self)?;
        let axes = norm_axes("var", axes, self)?;
        let n: usize = if axes.is_empty() {
            self.numel()
        } else {
            axes.iter().map(|&a| self.dims()[a]).product()
        };
        let mean = reduce(self, ReduceOp::Mean, axes.clone(), true)?;
        let d = self.try_sub(&mean)?;
        let ss = reduce(&d.try_mul(&d)?, ReduceOp::Sum, axes, keepdim)?;
        ss.try_div_scalar((n as f64 - correction.unwrap_or(1.0)).max(0.0))
    }
    /// Variance (panics on an axis or dtype error).
    #[track_caller]
    pub fn var(&self, axes: &[isize], keepdim: bool, correction: Option<f64>) -> Tensor {
        ok(self.try_var(axes, keepdim, correction))
    }
    /// Standard deviation: the square root of [`Tensor::try_var`].
    pub fn try_std(
        &self,
        axes: &[isize],
        keepdim: bool,
        correction: Option<f64>,
    ) -> Result<Tensor> {
        need_float("std", self)?;
        self.try_var(axes, keepdim, correction)?.try_sqrt()
    }
    /// Standard deviation (panics on an axis or dtype error).
    #[track_caller]
    pub fn std(&self, axes: &[isize], keepdim: bool, correction: Option<f64>) -> Tensor {
        ok(self.try_std(axes, keepdim, correction))
    }

    /// The max over `axis` (kept), computed outside autograd: a constant shift for the stable
    /// softmax family (the result does not depend on it, so neither does its gradient).
    fn shift(&self, axis: usize) -> Result<Tensor> {
        let _g = no_grad();
        reduce(self, ReduceOp::Max, smallvec![axis], true)
    }

    /// `log(sum(exp(self), axis))`, computed stably (slices that are all `-inf` give `-inf`).
    pub fn try_logsumexp(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        need_float("logsumexp", self)?;
        let ax = norm_axis("logsumexp", axis, self)?;
        let m = {
            let m = self.shift(ax)?;
            let _g = no_grad();
            // An infinite max would turn `x - m` into NaN: shift those slices by 0 instead.
            let inf = m.try_abs()?.try_eq_scalar(f64::INFINITY)?;
            try_where_(&inf, &scalar_like(&m, 0.0)?, &m)?
        };
        let e = self.try_sub(&m)?.try_exp()?;
        let r = reduce(&e, ReduceOp::Sum, smallvec![ax], true)?
            .try_log()?
            .try_add(&m)?;
        if keepdim {
            Ok(r)
        } else {
            r.try_squeeze(ax as isize)
        }
    }
    /// Logsumexp (panics on an axis or dtype error).
    #[track_caller]
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Tensor {
        ok(self.try_logsumexp(axis, keepdim))
    }

    /// `exp(x) / sum(exp(x))` along `axis`, computed stably.
    pub fn try_softmax(&self, axis: isize) -> Result<Tensor> {
        need_float("softmax", self)?;
        let ax = norm_axis("softmax", axis, self)?;
        let e = self.try_sub(&self.shift(ax)?)?.try_exp()?;
        let s = reduce(&e, ReduceOp::Sum, smallvec![ax], true)?;
        e.try_div(&s)
    }
    /// Softmax (panics on an axis or dtype error).
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Tensor {
        ok(self.try_softmax(axis))
    }

    /// `x - logsumexp(x)` along `axis`, computed stably (as `(x - m) - log(sum(exp(x - m)))`).
    pub fn try_log_softmax(&self, axis: isize) -> Result<Tensor> {
        need_float("log_softmax", self)?;
        let ax = norm_axis("log_softmax", axis, self)?;
        let z = self.try_sub(&self.shift(ax)?)?;
        let lse = reduce(&z.try_exp()?, ReduceOp::Sum, smallvec![ax], true)?.try_log()?;
        z.try_sub(&lse)
    }
    /// Log-softmax (panics on an axis or dtype error).
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Tensor {
        ok(self.try_log_softmax(axis))
    }

    /// GELU, exact form: `0.5 x (1 + erf(x / sqrt 2))`.
    pub fn try_gelu(&self) -> Result<Tensor> {
        let e = self
            .try_mul_scalar(std::f64::consts::FRAC_1_SQRT_2)?
            .try_erf()?
            .try_add_scalar(1.0)?;
        self.try_mul(&e)?.try_mul_scalar(0.5)
    }
    /// GELU, exact form (panics on a dtype error).
    #[track_caller]
    pub fn gelu(&self) -> Tensor {
        ok(self.try_gelu())
    }
    /// GELU, tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (PyTorch's
    /// `approximate="tanh"`).
    pub fn try_gelu_tanh(&self) -> Result<Tensor> {
        let cube = self.try_mul(&self.try_mul(self)?)?;
        let inner = self
            .try_add(&cube.try_mul_scalar(0.044_715)?)?
            .try_mul_scalar(SQRT_2_OVER_PI)?;
        let t = inner.try_tanh()?.try_add_scalar(1.0)?;
        self.try_mul(&t)?.try_mul_scalar(0.5)
    }
    /// GELU, tanh approximation (panics on a dtype error).
    #[track_caller]
    pub fn gelu_tanh(&self) -> Tensor {
        ok(self.try_gelu_tanh())
    }
    /// SiLU (swish): `x * sigmoid(x)`.
    pub fn try_silu(&self) -> Result<Tensor> {
        self.try_mul(&self.try_sigmoid()?)
    }
    /// SiLU (panics on a dtype error).
    #[track_caller]
    pub fn silu(&self) -> Tensor {
        ok(self.try_silu())
    }

    /// Layer normalization over the last `normalized_ndim` axes (biased variance, like PyTorch),
    /// then `* weight + bias` when given (both shaped like those axes).
    pub fn try_layer_norm(
        &self,
        normalized_ndim: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        need_float("layer_norm", self)?;
        let r = self.rank();
        if normalized_ndim == 0 || normalized_ndim > r {
            return Err(Error::shape(
                "layer_norm",
                format!(
                    "cannot normalize over the last {normalized_ndim} axes of shape {}",
                    self.shape()
                ),
            ));
        }
        let norm_dims = &self.dims()[r - normalized_ndim..];
        for (what, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                if p.dims() != norm_dims {
                    return Err(Error::shape(
                        "layer_norm",
                        format!(
                            "{what} has shape {}, but the normalized axes of {} are {}",
                            p.shape(),
                            self.shape(),
                            Shape::new(norm_dims)
                        ),
                    ));
                }
            }
        }
        let axes: SmallVec<[usize; 4]> = (r - normalized_ndim..r).collect();
        let mean = reduce(self, ReduceOp::Mean, axes.clone(), true)?;
        let d = self.try_sub(&mean)?;
        let var = reduce(&d.try_mul(&d)?, ReduceOp::Mean, axes, true)?;
        let mut y = d.try_div(&var.try_add_scalar(eps)?.try_sqrt()?)?;
        if let Some(w) = weight {
            y = y.try_mul(w)?;
        }
        if let Some(b) = bias {
            y = y.try_add(b)?;
        }
        Ok(y)
    }
    /// Layer norm (panics on a shape or dtype error).
    #[track_caller]
    pub fn layer_norm(
        &self,
        normalized_ndim: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Tensor {
        ok(self.try_layer_norm(normalized_ndim, weight, bias, eps))
    }

    /// Dropout: when `train` and `p > 0`, each element is zeroed with probability `p` and the
    /// survivors are scaled by `1 / (1 - p)`; otherwise the identity. The mask comes from the
    /// session's seeded generator (`manual_seed` makes it reproducible). `p` must be in `[0, 1)`.
    pub fn try_dropout(&self, p: f64, train: bool) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::invalid(
                "dropout",
                format!("probability must be in [0, 1), got {p}"),
            ));
        }
        if !train || p == 0.0 {
            return Ok(self.clone());
        }
        need_float("dropout", self)?;
        let keep = self
            .session()
            .try_rand(self.shape().clone(), self.dtype())?
            .try_ge_scalar(p)?;
        try_where_(
            &keep,
            &self.try_div_scalar(1.0 - p)?,
            &scalar_like(self, 0.0)?,
        )
    }
    /// Dropout (panics when `p` is outside `[0, 1)`).
    #[track_caller]
    pub fn dropout(&self, p: f64, train: bool) -> Tensor {
        ok(self.try_dropout(p, train))
    }
}

/// Rows of `weight` (`[num_embeddings, dim]`) at the int64 `ids` (any shape): the result has
/// shape `ids.shape + [dim]`. Gradients flow into `weight`.
pub fn try_embedding(weight: &Tensor, ids: &Tensor) -> Result<Tensor> {
    if weight.rank() != 2 {
        return Err(Error::shape(
            "embedding",
            format!(
                "weight must be 2-d [num_embeddings, dim], got shape {}",
                weight.shape()
            ),
        ));
    }
    if ids.dtype() != DType::I64 {
        return Err(Error::dtype(
            "embedding",
            format!("ids must be int64, got {}", ids.dtype()),
        ));
    }
    let rows = weight.try_index_select(0, &ids.try_flatten()?)?;
    let mut dims = ids.dims().to_vec();
    dims.push(weight.dims()[1]);
    let shape = Shape::new(dims);
    if rows.shape() == &shape {
        return Ok(rows);
    }
    rows.op(Op::Reshape { shape }, &[])
}

/// Embedding lookup (panics on a shape or dtype error).
#[track_caller]
pub fn embedding(weight: &Tensor, ids: &Tensor) -> Tensor {
    ok(try_embedding(weight, ids))
}
