//! The rest of `gt.Tensor`'s methods: elementwise math and activations, views (reshape,
//! transpose, permute, squeeze…), splitting, selection and dtype conversions. Every method
//! accepts PyTorch's argument names (`dim`, `keepdim`) and the prototype's (`axis`, `keepdims`).

use crate::errors::{value_err, IntoPy};
use crate::tensor::{axes_arg, parse_dtype, sizes_arg, tensor_arg, PyTensor};
use gt::Tensor;
use gt_core::DType;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

fn wrap(r: gt::Result<Tensor>) -> PyResult<PyTensor> {
    r.py().map(PyTensor::new)
}

/// One axis from `axis=`/`dim=` (or `default`).
fn one_axis(
    axis: Option<&Bound<'_, PyAny>>,
    dim: Option<&Bound<'_, PyAny>>,
    default: Option<isize>,
    op: &str,
) -> PyResult<isize> {
    match axes_arg(axis, dim)? {
        Some(v) if v.len() == 1 => Ok(v[0]),
        Some(_) => Err(value_err(op, "takes a single axis")),
        None => default.ok_or_else(|| value_err(op, "needs an axis")),
    }
}

fn wrap_all(py: Python<'_>, r: gt::Result<Vec<Tensor>>) -> PyResult<Bound<'_, PyTuple>> {
    let parts = r.py()?;
    let objs: Vec<Py<PyTensor>> = parts
        .into_iter()
        .map(|t| Py::new(py, PyTensor::new(t)))
        .collect::<PyResult<_>>()?;
    PyTuple::new(py, objs)
}

#[pymethods]
impl PyTensor {
    // ---- elementwise ----

    fn exp(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_exp())
    }
    fn log(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_log())
    }
    fn sqrt(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_sqrt())
    }
    fn abs(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_abs())
    }
    fn neg(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_neg())
    }
    fn sign(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_sign())
    }
    fn erf(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_erf())
    }
    fn relu(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_relu())
    }
    fn sigmoid(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_sigmoid())
    }
    fn tanh(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_tanh())
    }
    /// GELU (`approximate='none'` or `'tanh'`).
    #[pyo3(signature = (approximate="none"))]
    fn gelu(&self, approximate: &str) -> PyResult<PyTensor> {
        match approximate {
            "none" => wrap(self.t.try_gelu()),
            "tanh" => wrap(self.t.try_gelu_tanh()),
            a => Err(value_err(
                "gelu",
                format!("approximate must be 'none' or 'tanh', got {a:?}"),
            )),
        }
    }
    fn silu(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_silu())
    }
    /// Softmax along `dim` (default: the last axis).
    #[pyo3(signature = (dim=None, *, axis=None))]
    fn softmax(
        &self,
        dim: Option<&Bound<'_, PyAny>>,
        axis: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        wrap(
            self.t
                .try_softmax(one_axis(axis, dim, Some(-1), "softmax")?),
        )
    }
    /// Log-softmax along `dim` (default: the last axis).
    #[pyo3(signature = (dim=None, *, axis=None))]
    fn log_softmax(
        &self,
        dim: Option<&Bound<'_, PyAny>>,
        axis: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        wrap(
            self.t
                .try_log_softmax(one_axis(axis, dim, Some(-1), "log_softmax")?),
        )
    }
    /// `log(sum(exp(x)))` along `dim`, computed stably.
    #[pyo3(signature = (dim=None, keepdim=false, *, axis=None))]
    fn logsumexp(
        &self,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        axis: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        wrap(
            self.t
                .try_logsumexp(one_axis(axis, dim, Some(-1), "logsumexp")?, keepdim),
        )
    }
    /// Elementwise power.
    fn pow(&self, py: Python<'_>, exponent: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__pow__(py, exponent, None)
    }
    /// Elementwise maximum with another tensor (broadcasting).
    fn maximum(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        wrap(self.t.try_maximum(&tensor_arg(other, &self.t, "maximum")?))
    }
    /// Elementwise minimum with another tensor (broadcasting).
    fn minimum(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        wrap(self.t.try_minimum(&tensor_arg(other, &self.t, "minimum")?))
    }
    /// Limits values to `[min, max]` (either may be omitted).
    #[pyo3(signature = (min=None, max=None))]
    fn clamp(&self, min: Option<f64>, max: Option<f64>) -> PyResult<PyTensor> {
        wrap(self.t.try_clamp(min, max))
    }
    /// `value` where `mask` is true.
    fn masked_fill(&self, mask: &Bound<'_, PyAny>, value: f64) -> PyResult<PyTensor> {
        wrap(
            self.t
                .try_masked_fill(&tensor_arg(mask, &self.t, "masked_fill")?, value),
        )
    }
    /// Matrix product.
    fn matmul(&self, other: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        wrap(self.t.try_matmul(&other.t))
    }
    /// Variance over `dim` (all when omitted); `unbiased`/`correction` like PyTorch.
    #[pyo3(signature = (dim=None, unbiased=true, keepdim=false, *, axis=None, correction=None))]
    fn var(
        &self,
        dim: Option<&Bound<'_, PyAny>>,
        unbiased: bool,
        keepdim: bool,
        axis: Option<&Bound<'_, PyAny>>,
        correction: Option<f64>,
    ) -> PyResult<PyTensor> {
        let axes = axes_arg(axis, dim)?.unwrap_or_else(|| (0..self.t.rank() as isize).collect());
        let c = correction.unwrap_or(if unbiased { 1.0 } else { 0.0 });
        wrap(self.t.try_var(&axes, keepdim, Some(c)))
    }
    /// Standard deviation over `dim` (all when omitted).
    #[pyo3(signature = (dim=None, unbiased=true, keepdim=false, *, axis=None, correction=None))]
    fn std(
        &self,
        dim: Option<&Bound<'_, PyAny>>,
        unbiased: bool,
        keepdim: bool,
        axis: Option<&Bound<'_, PyAny>>,
        correction: Option<f64>,
    ) -> PyResult<PyTensor> {
        let axes = axes_arg(axis, dim)?.unwrap_or_else(|| (0..self.t.rank() as isize).collect());
        let c = correction.unwrap_or(if unbiased { 1.0 } else { 0.0 });
        wrap(self.t.try_std(&axes, keepdim, Some(c)))
    }
    /// Index of the maximum along `dim` (of the flattened tensor when omitted).
    #[pyo3(signature = (dim=None, keepdim=false, *, axis=None))]
    fn argmax(
        &self,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        axis: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        match axes_arg(axis, dim)? {
            None => wrap(self.t.try_flatten().and_then(|f| f.try_argmax(0, keepdim))),
            Some(v) if v.len() == 1 => wrap(self.t.try_argmax(v[0], keepdim)),
            Some(_) => Err(value_err("argmax", "takes a single axis")),
        }
    }
    /// Index of the minimum along `dim` (of the flattened tensor when omitted).
    #[pyo3(signature = (dim=None, keepdim=false, *, axis=None))]
    fn argmin(
        &self,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        axis: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        match axes_arg(axis, dim)? {
            None => wrap(self.t.try_flatten().and_then(|f| f.try_argmin(0, keepdim))),
            Some(v) if v.len() == 1 => wrap(self.t.try_argmin(v[0], keepdim)),
            Some(_) => Err(value_err("argmin", "takes a single axis")),
        }
    }
    /// Values at `index` along `dim` (`index` has the output's shape).
    fn gather(&self, dim: isize, index: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        wrap(self.t.try_gather(dim, &index.t))
    }
    /// The slices at the positions of the 1-d int64 `index` along `dim`.
    fn index_select(&self, dim: isize, index: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        wrap(self.t.try_index_select(dim, &index.t))
    }
    /// Zeroes elements with probability `p` and rescales the rest, when `training`.
    #[pyo3(signature = (p=0.5, training=true))]
    fn dropout(&self, p: f64, training: bool) -> PyResult<PyTensor> {
        wrap(self.t.try_dropout(p, training))
    }

    // ---- views ----

    /// The same values in a new shape (one entry may be -1); varargs or a tuple.
    #[pyo3(signature = (*shape))]
    fn reshape(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        wrap(self.t.try_reshape(&sizes_arg::<isize>(shape)?))
    }
    /// Same as `reshape`.
    #[pyo3(signature = (*shape))]
    fn view(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        self.reshape(shape)
    }
    /// One dimension holding every element.
    fn flatten(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_flatten())
    }
    /// `transpose()` reverses the axes; `transpose(d0, d1)` swaps two.
    #[pyo3(signature = (*dims))]
    fn transpose(&self, dims: Vec<isize>) -> PyResult<PyTensor> {
        match dims.as_slice() {
            [] => self.reversed(),
            [a, b] => wrap(self.t.try_transpose(*a, *b)),
            _ => Err(PyTypeError::new_err(
                "transpose() takes no axes or exactly two",
            )),
        }
    }
    /// The axes reversed (for a matrix, its transpose).
    #[getter(T)]
    fn reversed(&self) -> PyResult<PyTensor> {
        let perm: Vec<isize> = (0..self.t.rank() as isize).rev().collect();
        wrap(self.t.try_permute(&perm))
    }
    /// Matrix transpose (swaps the last two axes).
    #[pyo3(name = "t")]
    fn t_(&self) -> PyResult<PyTensor> {
        if self.t.rank() < 2 {
            return Ok(PyTensor::new(self.t.clone()));
        }
        wrap(self.t.try_transpose(-2, -1))
    }
    /// Reorders the axes; varargs or a tuple.
    #[pyo3(signature = (*dims))]
    fn permute(&self, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        wrap(self.t.try_permute(&sizes_arg::<isize>(dims)?))
    }
    /// A new size-1 axis at `dim`.
    #[pyo3(signature = (dim=None, *, axis=None))]
    fn unsqueeze(
        &self,
        dim: Option<&Bound<'_, PyAny>>,
        axis: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        wrap(
            self.t
                .try_unsqueeze(one_axis(axis, dim, None, "unsqueeze")?),
        )
    }
    /// Removes the size-1 axis `dim`, or every size-1 axis when omitted.
    #[pyo3(signature = (dim=None, *, axis=None))]
    fn squeeze(
        &self,
        dim: Option<&Bound<'_, PyAny>>,
        axis: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        match axes_arg(axis, dim)? {
            None => {
                let keep: Vec<isize> = self
                    .t
                    .dims()
                    .iter()
                    .filter(|&&d| d != 1)
                    .map(|&d| d as isize)
                    .collect();
                wrap(self.t.try_reshape(&keep))
            }
            Some(v) if v.len() == 1 => wrap(self.t.try_squeeze(v[0])),
            Some(_) => Err(value_err("squeeze", "takes a single axis")),
        }
    }
    /// Broadcasts to a larger shape (no copy); varargs or a tuple.
    #[pyo3(signature = (*sizes))]
    fn expand(&self, sizes: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let want = sizes_arg::<isize>(sizes)?;
        let r = self.t.rank();
        if want.len() < r {
            return Err(value_err(
                "expand",
                format!(
                    "{} sizes for a tensor of shape {}",
                    want.len(),
                    self.t.shape()
                ),
            ));
        }
        let off = want.len() - r;
        let dims: Vec<usize> = want
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                if w == -1 && i >= off {
                    self.t.dims()[i - off]
                } else {
                    w.max(0) as usize
                }
            })
            .collect();
        wrap(self.t.try_expand(dims))
    }
    /// Same as `expand` with a shape.
    fn broadcast_to(&self, shape: Vec<usize>) -> PyResult<PyTensor> {
        wrap(self.t.try_broadcast_to(shape))
    }
    /// Pieces of `split_size` along `dim` (the last may be smaller), or of the listed sizes.
    #[pyo3(signature = (split_size, dim=None, *, axis=None))]
    fn split<'py>(
        &self,
        py: Python<'py>,
        split_size: &Bound<'py, PyAny>,
        dim: Option<&Bound<'py, PyAny>>,
        axis: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let ax = one_axis(axis, dim, Some(0), "split")?;
        if let Ok(n) = split_size.extract::<usize>() {
            return wrap_all(py, self.t.try_split(n, ax));
        }
        let sizes: Vec<usize> = split_size
            .extract()
            .map_err(|_| PyTypeError::new_err("split_size must be an int or a list of ints"))?;
        let mut start = 0isize;
        let mut out = Vec::with_capacity(sizes.len());
        let total: usize = sizes.iter().sum();
        let norm = gt_core::shape::normalize_axis(ax, self.t.rank()).ok_or_else(|| {
            value_err(
                "split",
                format!("axis {ax} out of range for shape {}", self.t.shape()),
            )
        })?;
        if total != self.t.dims()[norm] {
            return Err(value_err(
                "split",
                format!(
                    "sizes {sizes:?} do not add up to {} (axis {ax} of shape {})",
                    self.t.dims()[norm],
                    self.t.shape()
                ),
            ));
        }
        for s in sizes {
            out.push(self.t.try_slice(ax, start, start + s as isize, 1));
            start += s as isize;
        }
        wrap_all(py, out.into_iter().collect())
    }
    /// `chunks` nearly equal pieces along `dim`.
    #[pyo3(signature = (chunks, dim=None, *, axis=None))]
    fn chunk<'py>(
        &self,
        py: Python<'py>,
        chunks: usize,
        dim: Option<&Bound<'py, PyAny>>,
        axis: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        wrap_all(
            py,
            self.t
                .try_chunk(chunks, one_axis(axis, dim, Some(0), "chunk")?),
        )
    }
    /// This tensor (GT views are always usable as they are).
    fn contiguous(slf: Py<Self>) -> Py<Self> {
        slf
    }
    /// A copy that stays in the autograd graph.
    #[pyo3(name = "clone")]
    fn clone_(&self) -> PyResult<PyTensor> {
        wrap(self.t.try_mul_scalar(1.0))
    }

    // ---- dtypes ----

    /// Converted to `dtype` (a `gt.dtype`, a name or a NumPy dtype).
    fn to(&self, dtype: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let d = parse_dtype(dtype)?;
        self.cast(d)
    }
    /// Same as `to(dtype)`.
    fn astype(&self, dtype: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.to(dtype)
    }
    fn float(&self) -> PyResult<PyTensor> {
        self.cast(DType::F32)
    }
    fn double(&self) -> PyResult<PyTensor> {
        self.cast(DType::F64)
    }
    fn long(&self) -> PyResult<PyTensor> {
        self.cast(DType::I64)
    }
    #[pyo3(name = "bool")]
    fn bool_(&self) -> PyResult<PyTensor> {
        self.cast(DType::Bool)
    }
    /// Whether the dtype is a float type.
    fn is_floating_point(&self) -> bool {
        self.t.dtype().is_float()
    }
    /// A copy living on worker `k`; later ops on it run there.
    fn to_worker(&self, k: u32) -> PyTensor {
        PyTensor::new(self.t.to_worker(k))
    }
}

impl PyTensor {
    fn cast(&self, d: DType) -> PyResult<PyTensor> {
        if d == self.t.dtype() {
            return Ok(PyTensor::new(self.t.clone()));
        }
        wrap(self.t.try_to_dtype(d))
    }
}
