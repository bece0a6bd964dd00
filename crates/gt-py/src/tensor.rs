//! The `gt.Tensor` class: a Python object holding a `gt::Tensor` handle. Arithmetic (with the
//! reflected forms), comparisons, reductions, in-place updates and autograd live here;
//! [`crate::tensor_ops`] and [`crate::tensor_read`] add the rest of the methods.
//!
//! GT tensors are immutable ids in the instruction stream, so "in-place" operations (`p -= u`,
//! `p.grad.zero_()`, `x[i] = v`, `copy_`) compute a new tensor and rebind the Python object to it
//! ([`rebind`]): every module and optimizer holding the object sees the new value, like PyTorch's
//! in-place updates. A leaf that requires gradients stays a leaf and keeps its gradient. The
//! object `.grad` returns remembers whose gradient it is, so rebinding it updates that slot.

use crate::dtype::{self, PyDType};
use crate::errors::{value_err, IntoPy};
use crate::index;
use gt::{BinaryOp, Tensor};
use gt_client::autograd::grad_enabled;
use gt_core::DType;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyList, PyTuple};

/// A tensor: a handle to data that lives on a GT worker.
#[pyclass(name = "Tensor", module = "gt", weakref)]
pub struct PyTensor {
    pub t: Tensor,
    /// For the object returned by `.grad`: the tensor whose gradient this is.
    pub grad_of: Option<Py<PyTensor>>,
}

impl PyTensor {
    pub fn new(t: Tensor) -> PyTensor {
        PyTensor { t, grad_of: None }
    }
}

/// The right operand of a binary op.
pub enum Operand {
    T(Tensor),
    S(f64),
}

/// A tensor or a Python number; `None` for anything else (the op returns `NotImplemented`).
pub fn operand(o: &Bound<'_, PyAny>) -> PyResult<Option<Operand>> {
    if let Ok(t) = o.cast::<PyTensor>() {
        return Ok(Some(Operand::T(t.try_borrow()?.t.clone())));
    }
    Ok(o.extract::<f64>().ok().map(Operand::S))
}

/// A tensor argument, or a number made into a 0-d tensor of `like`'s dtype.
pub fn tensor_arg(o: &Bound<'_, PyAny>, like: &Tensor, op: &str) -> PyResult<Tensor> {
    match operand(o)? {
        Some(Operand::T(t)) => Ok(t),
        Some(Operand::S(x)) => like
            .session()
            .try_full(Vec::<usize>::new(), x, like.dtype())
            .py(),
        None => Err(PyTypeError::new_err(format!(
            "{op}: expected a gt.Tensor or a number, got {}",
            o.get_type().name()?
        ))),
    }
}

fn binary(a: &Tensor, op: BinaryOp, b: &Tensor) -> gt::Result<Tensor> {
    match op {
        BinaryOp::Add => a.try_add(b),
        BinaryOp::Sub => a.try_sub(b),
        BinaryOp::Mul => a.try_mul(b),
        BinaryOp::Div => a.try_div(b),
        BinaryOp::Pow => a.try_pow(b),
        BinaryOp::Maximum => a.try_maximum(b),
        BinaryOp::Minimum => a.try_minimum(b),
    }
}

fn binary_scalar(a: &Tensor, op: BinaryOp, x: f64) -> gt::Result<Tensor> {
    match op {
        BinaryOp::Add => a.try_add_scalar(x),
        BinaryOp::Sub => a.try_sub_scalar(x),
        BinaryOp::Mul => a.try_mul_scalar(x),
        BinaryOp::Div => a.try_div_scalar(x),
        BinaryOp::Pow => a.try_pow_scalar(x),
        BinaryOp::Maximum => a.try_clamp(Some(x), None),
        BinaryOp::Minimum => a.try_clamp(None, Some(x)),
    }
}

/// `a op other` (or `other op a` when `reflected`), `NotImplemented` for foreign operands.
fn binop(
    py: Python<'_>,
    a: &Tensor,
    other: &Bound<'_, PyAny>,
    op: BinaryOp,
    reflected: bool,
) -> PyResult<Py<PyAny>> {
    let r = match operand(other)? {
        None => return Ok(py.NotImplemented()),
        Some(Operand::T(b)) if reflected => binary(&b, op, a),
        Some(Operand::T(b)) => binary(a, op, &b),
        Some(Operand::S(x)) if reflected => a.try_scalar_lhs(op, x),
        Some(Operand::S(x)) => binary_scalar(a, op, x),
    };
    Ok(Py::new(py, PyTensor::new(r.py()?))?.into_any())
}

/// Replaces the tensor held by `slf` with `new` (the in-place operations). A leaf that requires
/// gradients stays one and keeps its gradient; updating such a leaf while gradients are recorded
/// is refused like in PyTorch (`check_leaf`).
pub fn rebind(slf: &Bound<'_, PyTensor>, new: Tensor, check_leaf: bool) -> PyResult<()> {
    let py = slf.py();
    let (old, grad_of) = {
        let me = slf.try_borrow()?;
        (me.t.clone(), me.grad_of.as_ref().map(|o| o.clone_ref(py)))
    };
    let new = if old.is_leaf() && old.requires_grad() {
        if check_leaf && grad_enabled() {
            return Err(PyRuntimeError::new_err(
                "a leaf tensor that requires grad is being used in an in-place operation; \
                 wrap parameter updates in `with gt.no_grad():`",
            ));
        }
        let n = if new.is_leaf() { new } else { new.detach() };
        let n = n.requires_grad_(true).py()?;
        n.set_grad(old.grad());
        n
    } else {
        new
    };
    if let Some(owner) = grad_of {
        let o = owner.bind(py).try_borrow()?;
        if o.t.grad().map(|g| g.id()) == Some(old.id()) {
            o.t.set_grad(Some(new.clone()));
        }
    }
    slf.try_borrow_mut()?.t = new;
    Ok(())
}

/// In-place `slf op= other`.
fn inplace(slf: &Bound<'_, PyTensor>, other: &Bound<'_, PyAny>, op: BinaryOp) -> PyResult<()> {
    let a = slf.try_borrow()?.t.clone();
    let new = match operand(other)? {
        Some(Operand::T(b)) => binary(&a, op, &b),
        Some(Operand::S(x)) => binary_scalar(&a, op, x),
        None => {
            return Err(PyTypeError::new_err(format!(
                "unsupported operand type for in-place {}: {}",
                op.name(),
                other.get_type().name()?
            )))
        }
    }
    .py()?;
    if new.shape() != a.shape() {
        return Err(value_err(
            op.name(),
            format!(
                "in-place result of shape {} does not fit the tensor's shape {}",
                new.shape(),
                a.shape()
            ),
        ));
    }
    let new = if new.dtype() != a.dtype() {
        new.try_to_dtype(a.dtype()).py()?
    } else {
        new
    };
    rebind(slf, new, true)
}

/// Reads `(axis=…, dim=…)` (either name; int, tuple or list) into axes.
pub fn axes_arg(
    axis: Option<&Bound<'_, PyAny>>,
    dim: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Vec<isize>>> {
    let a = match (axis, dim) {
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(PyTypeError::new_err("pass either axis or dim, not both"));
        }
    };
    if a.is_none() {
        return Ok(None);
    }
    if let Ok(i) = a.extract::<isize>() {
        return Ok(Some(vec![i]));
    }
    a.extract::<Vec<isize>>()
        .map(Some)
        .map_err(|_| PyTypeError::new_err("axis must be an int or a tuple of ints"))
}

/// Reads `*sizes` that may also be given as one tuple or list.
pub fn sizes_arg<T: for<'a, 'py> FromPyObject<'a, 'py>>(
    args: &Bound<'_, PyTuple>,
) -> PyResult<Vec<T>> {
    if args.len() == 1 {
        let first = args.get_item(0)?;
        if first.cast::<PyTuple>().is_ok() || first.cast::<PyList>().is_ok() {
            return first
                .extract::<Vec<T>>()
                .map_err(|_| PyTypeError::new_err("sizes must be ints"));
        }
    }
    args.extract::<Vec<T>>()
        .map_err(|_| PyTypeError::new_err("sizes must be ints"))
}

enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
}

fn reduce(t: &Tensor, which: Reduce, axes: Option<Vec<isize>>, keepdim: bool) -> PyResult<Tensor> {
    let axes = match axes {
        Some(a) => a,
        None => (0..t.rank() as isize).collect(),
    };
    if axes.is_empty() {
        // A 0-d tensor (or an empty axis list): nothing to reduce.
        return t.try_reshape(&[]).py();
    }
    match which {
        Reduce::Sum => t.try_sum_dims(&axes, keepdim),
        Reduce::Mean => t.try_mean_dims(&axes, keepdim),
        Reduce::Max => t.try_max_dims(&axes, keepdim),
        Reduce::Min => t.try_min_dims(&axes, keepdim),
    }
    .py()
}

#[pymethods]
impl PyTensor {
    // ---- metadata ----

    /// The shape as a tuple.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.t.dims())
    }
    /// The element type.
    #[getter]
    fn dtype(&self) -> PyDType {
        PyDType(self.t.dtype())
    }
    /// Number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.t.rank()
    }
    /// Number of dimensions.
    fn dim(&self) -> usize {
        self.t.rank()
    }
    /// Number of elements.
    fn numel(&self) -> usize {
        self.t.numel()
    }
    /// The shape (`size()`) or one dimension (`size(d)`).
    #[pyo3(signature = (dim=None))]
    fn size<'py>(&self, py: Python<'py>, dim: Option<isize>) -> PyResult<Bound<'py, PyAny>> {
        match dim {
            None => Ok(PyTuple::new(py, self.t.dims())?.into_any()),
            Some(d) => {
                let ax = gt_core::shape::normalize_axis(d, self.t.rank()).ok_or_else(|| {
                    value_err(
                        "size",
                        format!("dim {d} out of range for shape {}", self.t.shape()),
                    )
                })?;
                Ok(self.t.dims()[ax].into_pyobject(py)?.into_any())
            }
        }
    }
    fn __len__(&self) -> PyResult<usize> {
        self.t
            .dims()
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d tensor"))
    }
    /// The id of this tensor in its session's stream.
    #[getter]
    fn id(&self) -> String {
        self.t.id().to_string()
    }

    // ---- arithmetic ----

    fn __add__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Add, false)
    }
    fn __radd__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Add, true)
    }
    fn __sub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Sub, false)
    }
    fn __rsub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Sub, true)
    }
    fn __mul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Mul, false)
    }
    fn __rmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Mul, true)
    }
    fn __truediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Div, false)
    }
    fn __rtruediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Div, true)
    }
    pub(crate) fn __pow__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Pow, false)
    }
    fn __rpow__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        binop(py, &self.t, o, BinaryOp::Pow, true)
    }
    fn __matmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match o.cast::<PyTensor>() {
            Ok(b) => {
                let r = self.t.try_matmul(&b.try_borrow()?.t).py()?;
                Ok(Py::new(py, PyTensor::new(r))?.into_any())
            }
            Err(_) => Ok(py.NotImplemented()),
        }
    }
    fn __rmatmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match o.cast::<PyTensor>() {
            Ok(a) => {
                let r = a.try_borrow()?.t.try_matmul(&self.t).py()?;
                Ok(Py::new(py, PyTensor::new(r))?.into_any())
            }
            Err(_) => Ok(py.NotImplemented()),
        }
    }
    fn __neg__(&self) -> PyResult<PyTensor> {
        Ok(PyTensor::new(self.t.try_neg().py()?))
    }
    fn __pos__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __abs__(&self) -> PyResult<PyTensor> {
        Ok(PyTensor::new(self.t.try_abs().py()?))
    }
    fn __iadd__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        inplace(slf, o, BinaryOp::Add)
    }
    fn __isub__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        inplace(slf, o, BinaryOp::Sub)
    }
    fn __imul__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        inplace(slf, o, BinaryOp::Mul)
    }
    fn __itruediv__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        inplace(slf, o, BinaryOp::Div)
    }
    fn __richcmp__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let t = &self.t;
        let r = match operand(o)? {
            None => return Ok(py.NotImplemented()),
            Some(Operand::T(b)) => match op {
                CompareOp::Lt => t.try_lt(&b),
                CompareOp::Le => t.try_le(&b),
                CompareOp::Eq => t.try_eq(&b),
                CompareOp::Ne => t.try_ne(&b),
                CompareOp::Gt => t.try_gt(&b),
                CompareOp::Ge => t.try_ge(&b),
            },
            Some(Operand::S(x)) => match op {
                CompareOp::Lt => t.try_lt_scalar(x),
                CompareOp::Le => t.try_le_scalar(x),
                CompareOp::Eq => t.try_eq_scalar(x),
                CompareOp::Ne => t.try_ne_scalar(x),
                CompareOp::Gt => t.try_gt_scalar(x),
                CompareOp::Ge => t.try_ge_scalar(x),
            },
        };
        Ok(Py::new(py, PyTensor::new(r.py()?))?.into_any())
    }
    /// Identity hash (tensors compare elementwise, so they hash like objects, as in PyTorch).
    fn __hash__(slf: &Bound<'_, Self>) -> isize {
        slf.as_ptr() as isize
    }

    // ---- in-place methods ----

    /// `self += other` as a method; returns self.
    fn add_<'py>(slf: Bound<'py, Self>, o: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        inplace(&slf, o, BinaryOp::Add)?;
        Ok(slf)
    }
    /// `self -= other` as a method; returns self.
    fn sub_<'py>(slf: Bound<'py, Self>, o: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        inplace(&slf, o, BinaryOp::Sub)?;
        Ok(slf)
    }
    /// `self *= other` as a method; returns self.
    fn mul_<'py>(slf: Bound<'py, Self>, o: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        inplace(&slf, o, BinaryOp::Mul)?;
        Ok(slf)
    }
    /// `self /= other` as a method; returns self.
    fn div_<'py>(slf: Bound<'py, Self>, o: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        inplace(&slf, o, BinaryOp::Div)?;
        Ok(slf)
    }
    /// Sets every element to zero; returns self.
    fn zero_(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        Self::fill_(slf, 0.0)
    }
    /// Sets every element to `value`; returns self.
    fn fill_(slf: Bound<'_, Self>, value: f64) -> PyResult<Bound<'_, Self>> {
        let t = slf.try_borrow()?.t.clone();
        let z = t
            .session()
            .try_full(t.shape().clone(), value, t.dtype())
            .py()?;
        rebind(&slf, z, true)?;
        Ok(slf)
    }
    /// Copies `src`'s values (same shape, or broadcastable to it; cast to this dtype); returns
    /// self.
    fn copy_<'py>(slf: Bound<'py, Self>, src: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        let t = slf.try_borrow()?.t.clone();
        let s = tensor_arg(src, &t, "copy_")?;
        let s = if s.shape() != t.shape() {
            s.try_broadcast_to(t.shape().clone()).py()?
        } else {
            s
        };
        let s = if s.dtype() != t.dtype() {
            s.try_to_dtype(t.dtype()).py()?
        } else {
            s
        };
        rebind(&slf, s, true)?;
        Ok(slf)
    }

    // ---- autograd ----

    /// Backpropagates from this scalar (or with an explicit `gradient` of this tensor's shape).
    #[pyo3(signature = (gradient=None))]
    fn backward(&self, gradient: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match gradient {
            None => self.t.backward().py(),
            Some(g) => {
                let g = tensor_arg(g, &self.t, "backward")?;
                self.t.backward_with(&g).py()
            }
        }
    }
    /// The accumulated gradient (`None` before a backward pass).
    #[getter]
    fn grad(slf: &Bound<'_, Self>) -> PyResult<Option<PyTensor>> {
        let g = slf.try_borrow()?.t.grad();
        Ok(g.map(|g| PyTensor {
            t: g,
            grad_of: Some(slf.clone().unbind()),
        }))
    }
    #[setter]
    fn set_grad(&self, g: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match g {
            None => self.t.set_grad(None),
            Some(g) if g.is_none() => self.t.set_grad(None),
            Some(g) => {
                let g = tensor_arg(g, &self.t, "grad")?;
                if g.shape() != self.t.shape() {
                    return Err(value_err(
                        "grad",
                        format!(
                            "gradient of shape {} for a tensor of shape {}",
                            g.shape(),
                            self.t.shape()
                        ),
                    ));
                }
                self.t.set_grad(Some(g))
            }
        }
        Ok(())
    }
    /// Whether gradients are tracked for this tensor.
    #[getter]
    fn requires_grad(&self) -> bool {
        self.t.requires_grad()
    }
    #[setter(requires_grad)]
    fn set_requires_grad(&self, on: bool) -> PyResult<()> {
        self.t.requires_grad_(on).py().map(drop)
    }
    /// Starts (or stops) tracking gradients for this leaf; returns self.
    #[pyo3(signature = (requires_grad=true))]
    fn requires_grad_(slf: Bound<'_, Self>, requires_grad: bool) -> PyResult<Bound<'_, Self>> {
        if requires_grad && !slf.try_borrow()?.t.dtype().is_float() {
            return Err(PyValueError::new_err(
                "only floating-point tensors can require gradients",
            ));
        }
        slf.try_borrow()?.t.requires_grad_(requires_grad).py()?;
        Ok(slf)
    }
    /// Whether this tensor is a leaf of the autograd graph (not computed by a tracked op).
    #[getter]
    fn is_leaf(&self) -> bool {
        self.t.is_leaf()
    }
    /// The same values, cut from the autograd graph.
    fn detach(&self) -> PyTensor {
        PyTensor::new(self.t.detach())
    }
    /// The same values, cut from the autograd graph (PyTorch's `.data`).
    #[getter]
    fn data(&self) -> PyTensor {
        PyTensor::new(self.t.detach())
    }

    // ---- reductions ----

    /// Sum over `axis` (int or tuple; all when omitted). `dim`/`keepdim` are accepted too.
    #[pyo3(signature = (axis=None, keepdims=false, *, dim=None, keepdim=None))]
    fn sum(
        &self,
        axis: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let axes = axes_arg(axis, dim)?;
        Ok(PyTensor::new(reduce(
            &self.t,
            Reduce::Sum,
            axes,
            keepdim.unwrap_or(keepdims),
        )?))
    }
    /// Mean over `axis` (int or tuple; all when omitted).
    #[pyo3(signature = (axis=None, keepdims=false, *, dim=None, keepdim=None))]
    fn mean(
        &self,
        axis: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let axes = axes_arg(axis, dim)?;
        Ok(PyTensor::new(reduce(
            &self.t,
            Reduce::Mean,
            axes,
            keepdim.unwrap_or(keepdims),
        )?))
    }
    /// Maximum over `axis` (int or tuple; all when omitted). Returns the values only.
    #[pyo3(signature = (axis=None, keepdims=false, *, dim=None, keepdim=None))]
    fn max(
        &self,
        axis: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let axes = axes_arg(axis, dim)?;
        Ok(PyTensor::new(reduce(
            &self.t,
            Reduce::Max,
            axes,
            keepdim.unwrap_or(keepdims),
        )?))
    }
    /// Minimum over `axis` (int or tuple; all when omitted). Returns the values only.
    #[pyo3(signature = (axis=None, keepdims=false, *, dim=None, keepdim=None))]
    fn min(
        &self,
        axis: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let axes = axes_arg(axis, dim)?;
        Ok(PyTensor::new(reduce(
            &self.t,
            Reduce::Min,
            axes,
            keepdim.unwrap_or(keepdims),
        )?))
    }

    // ---- indexing ----

    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        index::get(&self.t, key).map(PyTensor::new)
    }
    fn __setitem__(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let t = slf.try_borrow()?.t.clone();
        let new = index::set(&t, key, value)?;
        rebind(slf, new, true)
    }
}

/// Parses a dtype argument (see [`dtype::parse`]).
pub fn parse_dtype(d: &Bound<'_, PyAny>) -> PyResult<DType> {
    dtype::parse(d)
}
