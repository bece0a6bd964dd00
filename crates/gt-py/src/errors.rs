//! Maps `gt::Error` to the Python exception a user expects: bad arguments (shapes, axes, dtypes,
//! invalid values) are `ValueError`, a dispatcher that cannot be reached is `ConnectionError`,
//! everything that fails at run time (a lost worker, a failed kernel, a protocol violation) is
//! `RuntimeError`. The message is GT's, which names the op and the shapes.

use gt_core::Error;
use pyo3::exceptions::{PyConnectionError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// The Python exception for a GT error.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Shape { .. }
        | Error::Axis { .. }
        | Error::DType { .. }
        | Error::Invalid { .. }
        | Error::Config(_) => PyValueError::new_err(msg),
        Error::Connection(_) => PyConnectionError::new_err(msg),
        Error::UnknownTensor(_)
        | Error::WorkerLost { .. }
        | Error::Exec { .. }
        | Error::Protocol(_) => PyRuntimeError::new_err(msg),
    }
}

/// `Result` → `PyResult`.
pub trait IntoPy<T> {
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPy<T> for gt_core::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}

/// A `ValueError` naming the op.
pub fn value_err(op: &str, msg: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("invalid argument to {op}: {msg}"))
}
