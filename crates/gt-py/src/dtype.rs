//! `gt.float32`, `gt.float64`, `gt.int64`, `gt.bool`: small immutable objects that print like
//! PyTorch's (`gt.float32`) and compare equal to their names (and NumPy's), and the parsing of
//! every form a dtype argument may take (a `gt.dtype`, a name such as `'float32'`, a NumPy
//! dtype, or the Python types `float`, `int`, `bool`).

use crate::errors::value_err;
use gt_core::DType;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// A GT element type.
#[pyclass(name = "dtype", module = "gt", frozen)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDType(pub DType);

#[pymethods]
impl PyDType {
    fn __repr__(&self) -> String {
        format!("gt.{}", self.0.name())
    }
    /// Equal to the same dtype, and to anything naming it (`'float32'`, `np.float32`).
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        parse(other).is_ok_and(|d| d == self.0)
    }
    fn __ne__(&self, other: &Bound<'_, PyAny>) -> bool {
        !self.__eq__(other)
    }
    fn __hash__(&self) -> u64 {
        self.0 as u64
    }
    fn __str__(&self) -> String {
        self.__repr__()
    }
    /// The name (`float32`, `float64`, `int64`, `bool`), also the NumPy name.
    #[getter]
    fn name(&self) -> &'static str {
        self.0.name()
    }
    /// Whether this is a floating-point type.
    #[getter]
    fn is_floating_point(&self) -> bool {
        self.0.is_float()
    }
    /// Bytes per element.
    #[getter]
    fn itemsize(&self) -> usize {
        self.0.size()
    }
}

/// Reads a dtype argument.
pub fn parse(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    if let Ok(d) = obj.cast::<PyDType>() {
        return Ok(d.get().0);
    }
    if let Ok(t) = obj.cast::<PyType>() {
        let name = t.name()?.to_string();
        return match name.as_str() {
            "float" => Ok(DType::F32),
            "int" => Ok(DType::I64),
            "bool" => Ok(DType::Bool),
            _ => parse_name(&obj.str()?.to_string()),
        };
    }
    // Strings and NumPy dtypes (whose str() is their name).
    parse_name(&obj.str()?.to_string())
}

fn parse_name(s: &str) -> PyResult<DType> {
    let s = s.trim();
    let s = s
        .strip_prefix("gt.")
        .or_else(|| s.strip_prefix("torch."))
        .unwrap_or(s);
    let s = s
        .strip_prefix("<class 'numpy.")
        .and_then(|r| r.strip_suffix("'>"))
        .unwrap_or(s);
    match s {
        "long" | "int" => Ok(DType::I64),
        "bool_" => Ok(DType::Bool),
        _ => DType::parse(s).ok_or_else(|| {
            value_err(
                "dtype",
                format!("unknown dtype {s:?}; GT has float32, float64, int64 and bool"),
            )
        }),
    }
}

/// Parses any dtype argument into a `gt.dtype` (used by the Python half).
#[pyfunction]
fn _parse_dtype(obj: &Bound<'_, PyAny>) -> PyResult<PyDType> {
    parse(obj).map(PyDType)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDType>()?;
    m.add_function(wrap_pyfunction!(_parse_dtype, m)?)?;
    for d in [DType::F32, DType::F64, DType::I64, DType::Bool] {
        m.add(d.name(), PyDType(d))?;
    }
    Ok(())
}
