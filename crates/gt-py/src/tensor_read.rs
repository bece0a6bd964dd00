//! Reading a `gt.Tensor` back into Python: `.numpy()`, `np.asarray`, `.tolist()`, `.item()`,
//! `float()/int()/bool()` and the torch-like `repr`. Every read is a sync point and waits with
//! the GIL released.

use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use gt::Tensor;
use gt_core::DType;
use numpy::PyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Little-endian bytes → values (one copy into an aligned buffer).
fn collect<T: bytemuck::Pod>(b: &[u8]) -> Vec<T> {
    let mut v = vec![T::zeroed(); b.len() / std::mem::size_of::<T>()];
    bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(b);
    v
}

/// The values as a NumPy array of the tensor's dtype (a sync point; the GIL is released while
/// waiting). The bytes arrive in one buffer and are copied once into the array.
fn to_numpy<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let t2 = t.clone();
    let data = py.detach(move || t2.data()).py()?;
    let dims: Vec<usize> = data.shape.dims().to_vec();
    let b = &data.bytes;
    let flat = match data.dtype {
        DType::F32 => PyArray1::from_vec(py, collect::<f32>(b)).into_any(),
        DType::F64 => PyArray1::from_vec(py, collect::<f64>(b)).into_any(),
        DType::I64 => PyArray1::from_vec(py, collect::<i64>(b)).into_any(),
        DType::Bool => {
            PyArray1::from_vec(py, b.iter().map(|&x| x != 0).collect::<Vec<bool>>()).into_any()
        }
    };
    flat.call_method1("reshape", (PyTuple::new(py, dims)?,))
}

fn scalar_value(py: Python<'_>, t: &Tensor) -> PyResult<Py<PyAny>> {
    let t2 = t.clone();
    let v = py.detach(move || t2.item()).py()?;
    Ok(match t.dtype() {
        DType::F32 | DType::F64 => v.into_pyobject(py)?.into_any().unbind(),
        DType::I64 => (v as i64).into_pyobject(py)?.into_any().unbind(),
        DType::Bool => (v != 0.0).into_pyobject(py)?.to_owned().into_any().unbind(),
    })
}

#[pymethods]
impl PyTensor {
    /// The values as a NumPy array (a sync point).
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_numpy(py, &self.t)
    }
    /// NumPy's conversion hook (`np.asarray(t)`).
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = copy;
        let a = to_numpy(py, &self.t)?;
        match dtype {
            Some(d) if !d.is_none() => a.call_method1("astype", (d,)),
            _ => Ok(a),
        }
    }
    /// The values as nested Python lists (a sync point).
    fn tolist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_numpy(py, &self.t)?.call_method0("tolist")
    }
    /// The single value of a one-element tensor as a Python number (a sync point).
    fn item(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        scalar_value(py, &self.t)
    }
    fn __float__(&self, py: Python<'_>) -> PyResult<f64> {
        let t = self.t.clone();
        py.detach(move || t.item()).py()
    }
    fn __int__(&self, py: Python<'_>) -> PyResult<i64> {
        let t = self.t.clone();
        py.detach(move || t.item()).py().map(|v| v as i64)
    }
    fn __index__(&self, py: Python<'_>) -> PyResult<i64> {
        if self.t.dtype() != DType::I64 {
            return Err(PyTypeError::new_err(
                "only integer tensors of one element can be used as an index",
            ));
        }
        self.__int__(py)
    }
    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        if self.t.numel() != 1 {
            return Err(PyValueError::new_err(format!(
                "the truth value of a tensor of shape {} is ambiguous",
                self.t.shape()
            )));
        }
        let t = self.t.clone();
        py.detach(move || t.item()).py().map(|v| v != 0.0)
    }
    fn __repr__(&self, py: Python<'_>) -> String {
        let t = self.t.clone();
        let mut suffix = String::new();
        if t.dtype() != DType::F32 {
            suffix.push_str(&format!(", dtype=gt.{}", t.dtype().name()));
        }
        if t.requires_grad() {
            suffix.push_str(", requires_grad=True");
        }
        match py.detach(move || t.to_vec_f64()) {
            Ok(v) => format!(
                "tensor({}{suffix})",
                gt_client::display::render(&v, self.t.dims(), self.t.dtype())
            ),
            Err(e) => format!("tensor(<error: {e}>{suffix})"),
        }
    }
}
