//! Module-level functions of `gt._gt`: creation on the default session (`randn`, `zeros`,
//! `from_numpy`…), joining tensors (`cat`, `stack`, `where`), the runtime (`connect`,
//! `gpu_workers`, `manual_seed`, `sync`), gradient mode, signal scopes, the functional layers
//! the Python `nn` package uses (`linear`, `embedding`, `layer_norm`), safetensors checkpoints,
//! and debug views.

use crate::dtype;
use crate::errors::{value_err, IntoPy};
use crate::tensor::{sizes_arg, tensor_arg, PyTensor};
use gt::{DType, NoGradGuard, Session, Tensor, TensorData};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::cell::RefCell;
use std::sync::Mutex;

/// The default session (started on first use: joins `GT_ADDR` or starts the embedded runtime);
/// the GIL is released meanwhile because joining a dispatcher may wait on the network.
fn session(py: Python<'_>) -> PyResult<Session> {
    py.detach(gt::try_session).py()
}

fn dtype_or(d: Option<&Bound<'_, PyAny>>, default: DType) -> PyResult<DType> {
    match d {
        Some(d) if !d.is_none() => dtype::parse(d),
        _ => Ok(default),
    }
}

fn finish(t: Tensor, requires_grad: bool) -> PyResult<PyTensor> {
    if requires_grad {
        if !t.dtype().is_float() {
            return Err(value_err(
                "requires_grad",
                "only floating-point tensors can require gradients",
            ));
        }
        t.requires_grad_(true).py()?;
    }
    Ok(PyTensor::new(t))
}

fn shape_of(shape: &Bound<'_, PyTuple>) -> PyResult<Vec<usize>> {
    let dims = sizes_arg::<i64>(shape)?;
    dims.iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| value_err("shape", format!("negative dimension {d} in {dims:?}")))
        })
        .collect()
}

/// Standard normal values of `shape` (varargs or a tuple) from the seeded generator.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, requires_grad=false))]
fn randn(
    py: Python<'_>,
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<PyTensor> {
    let d = dtype_or(dtype, DType::F32)?;
    finish(
        session(py)?.try_randn(shape_of(shape)?, d).py()?,
        requires_grad,
    )
}

/// Uniform values on `[0, 1)` of `shape`.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, requires_grad=false))]
fn rand(
    py: Python<'_>,
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<PyTensor> {
    let d = dtype_or(dtype, DType::F32)?;
    finish(
        session(py)?.try_rand(shape_of(shape)?, d).py()?,
        requires_grad,
    )
}

/// Zeros of `shape`.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, requires_grad=false))]
fn zeros(
    py: Python<'_>,
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<PyTensor> {
    let d = dtype_or(dtype, DType::F32)?;
    finish(
        session(py)?.try_full(shape_of(shape)?, 0.0, d).py()?,
        requires_grad,
    )
}

/// Ones of `shape`.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, requires_grad=false))]
fn ones(
    py: Python<'_>,
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<PyTensor> {
    let d = dtype_or(dtype, DType::F32)?;
    finish(
        session(py)?.try_full(shape_of(shape)?, 1.0, d).py()?,
        requires_grad,
    )
}

/// `shape` filled with `fill_value`.
#[pyfunction]
#[pyo3(signature = (shape, fill_value, dtype=None, requires_grad=false))]
fn full(
    py: Python<'_>,
    shape: Vec<usize>,
    fill_value: f64,
    dtype: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<PyTensor> {
    let d = dtype_or(dtype, DType::F32)?;
    finish(
        session(py)?.try_full(shape, fill_value, d).py()?,
        requires_grad,
    )
}

/// `start, start+step, …` below `end`.
#[pyfunction]
#[pyo3(signature = (start, end, step=1.0, dtype=None))]
fn arange(
    py: Python<'_>,
    start: f64,
    end: f64,
    step: f64,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let d = dtype_or(dtype, DType::F32)?;
    Ok(PyTensor::new(
        session(py)?.try_arange(start, end, step, d).py()?,
    ))
}

fn bytes_of<T: numpy::Element + bytemuck::Pod>(a: &Bound<'_, PyArrayDyn<T>>) -> PyResult<Vec<u8>> {
    let r = a.readonly();
    // `as_slice` also accepts Fortran order, whose memory order is not the logical order.
    Ok(match r.as_slice() {
        Ok(s) if a.is_c_contiguous() => bytemuck::cast_slice(s).to_vec(),
        _ => {
            let v: Vec<T> = r.as_array().iter().copied().collect();
            bytemuck::cast_slice(&v).to_vec()
        }
    })
}

/// A tensor with a NumPy array's shape, dtype (float32, float64, int64 or bool) and values
/// (copied once into the upload).
#[pyfunction]
#[pyo3(signature = (arr, requires_grad=false))]
fn from_numpy(py: Python<'_>, arr: &Bound<'_, PyAny>, requires_grad: bool) -> PyResult<PyTensor> {
    let (dtype, shape, bytes) = if let Ok(a) = arr.cast::<PyArrayDyn<f32>>() {
        (DType::F32, a.shape().to_vec(), bytes_of(a)?)
    } else if let Ok(a) = arr.cast::<PyArrayDyn<f64>>() {
        (DType::F64, a.shape().to_vec(), bytes_of(a)?)
    } else if let Ok(a) = arr.cast::<PyArrayDyn<i64>>() {
        (DType::I64, a.shape().to_vec(), bytes_of(a)?)
    } else if let Ok(a) = arr.cast::<PyArrayDyn<bool>>() {
        let r = a.readonly();
        let bytes = r.as_array().iter().map(|&b| b as u8).collect();
        (DType::Bool, a.shape().to_vec(), bytes)
    } else {
        return Err(PyTypeError::new_err(format!(
            "from_numpy needs a float32, float64, int64 or bool ndarray, got {}",
            arr.getattr("dtype")
                .map(|d| d.to_string())
                .unwrap_or_else(|_| arr.get_type().to_string())
        )));
    };
    let data = TensorData {
        dtype,
        shape: shape.into(),
        bytes,
    };
    finish(session(py)?.try_from_data(data).py()?, requires_grad)
}

fn tensor_list(seq: &Bound<'_, PyAny>, op: &str) -> PyResult<Vec<Tensor>> {
    let mut out = Vec::new();
    for item in seq.try_iter()? {
        let item = item?;
        let t = item
            .cast::<PyTensor>()
            .map_err(|_| PyTypeError::new_err(format!("{op} takes a sequence of gt.Tensor")))?;
        out.push(t.try_borrow()?.t.clone());
    }
    Ok(out)
}

fn axis_kw(axis: Option<isize>, dim: Option<isize>) -> PyResult<isize> {
    match (axis, dim) {
        (Some(_), Some(_)) => Err(PyTypeError::new_err("pass either axis or dim, not both")),
        (a, d) => Ok(a.or(d).unwrap_or(0)),
    }
}

/// Joins tensors along an existing axis.
#[pyfunction]
#[pyo3(signature = (tensors, axis=None, *, dim=None))]
fn cat(tensors: &Bound<'_, PyAny>, axis: Option<isize>, dim: Option<isize>) -> PyResult<PyTensor> {
    let ts = tensor_list(tensors, "cat")?;
    Ok(PyTensor::new(gt::try_cat(&ts, axis_kw(axis, dim)?).py()?))
}

/// Joins tensors along a new axis.
#[pyfunction]
#[pyo3(signature = (tensors, axis=None, *, dim=None))]
fn stack(
    tensors: &Bound<'_, PyAny>,
    axis: Option<isize>,
    dim: Option<isize>,
) -> PyResult<PyTensor> {
    let ts = tensor_list(tensors, "stack")?;
    Ok(PyTensor::new(gt::try_stack(&ts, axis_kw(axis, dim)?).py()?))
}

/// `a` where `cond` is true, else `b` (tensors or numbers).
#[pyfunction]
#[pyo3(name = "where")]
fn where_(
    cond: PyRef<'_, PyTensor>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    let like = match (a.cast::<PyTensor>(), b.cast::<PyTensor>()) {
        (Ok(t), _) | (_, Ok(t)) => t.try_borrow()?.t.clone(),
        _ => {
            return Err(PyTypeError::new_err(
                "where needs at least one tensor among a and b",
            ))
        }
    };
    let a = tensor_arg(a, &like, "where")?;
    let b = tensor_arg(b, &like, "where")?;
    Ok(PyTensor::new(gt::try_where_(&cond.t, &a, &b).py()?))
}

/// `x @ weight.T + bias` (PyTorch's layout: weight `[out, in]`).
#[pyfunction]
#[pyo3(signature = (x, weight, bias=None))]
fn linear(
    x: PyRef<'_, PyTensor>,
    weight: PyRef<'_, PyTensor>,
    bias: Option<PyRef<'_, PyTensor>>,
) -> PyResult<PyTensor> {
    let w = &weight.t;
    let wt = if w.rank() == 2 {
        w.try_transpose(0, 1)
    } else {
        Err(gt::Error::shape(
            "linear",
            format!("weight must be [out, in], got {}", w.shape()),
        ))
    }
    .py()?;
    let y = x.t.try_matmul(&wt).py()?;
    Ok(PyTensor::new(match bias {
        Some(b) => y.try_add(&b.t).py()?,
        None => y,
    }))
}

/// Rows of `weight` at the int64 `ids` (any shape).
#[pyfunction]
fn embedding(ids: PyRef<'_, PyTensor>, weight: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
    Ok(PyTensor::new(gt::try_embedding(&weight.t, &ids.t).py()?))
}

/// Layer normalisation over the last `len(normalized_shape)` axes.
#[pyfunction]
#[pyo3(signature = (x, normalized_shape, weight=None, bias=None, eps=1e-5))]
fn layer_norm(
    x: PyRef<'_, PyTensor>,
    normalized_shape: &Bound<'_, PyAny>,
    weight: Option<PyRef<'_, PyTensor>>,
    bias: Option<PyRef<'_, PyTensor>>,
    eps: f64,
) -> PyResult<PyTensor> {
    let n = match normalized_shape.extract::<usize>() {
        Ok(_) => 1,
        Err(_) => normalized_shape.extract::<Vec<usize>>()?.len(),
    };
    let w = weight.as_ref().map(|w| &w.t);
    let b = bias.as_ref().map(|b| &b.t);
    Ok(PyTensor::new(x.t.try_layer_norm(n, w, b, eps).py()?))
}

// ---- checkpoints ----

/// Writes `(name, tensor)` pairs to a safetensors file (reads each tensor: a sync point).
#[pyfunction]
fn save_tensors(
    py: Python<'_>,
    path: std::path::PathBuf,
    items: Vec<(String, PyRef<'_, PyTensor>)>,
) -> PyResult<()> {
    let items: Vec<(String, Tensor)> = items.into_iter().map(|(n, t)| (n, t.t.clone())).collect();
    py.detach(move || gt::checkpoint::save_tensors(&path, &items))
        .py()
}

/// Reads every tensor of a safetensors file, in file order, as `(name, tensor)` pairs.
#[pyfunction]
fn load_tensors(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Vec<(String, PyTensor)>> {
    let items = py
        .detach(move || gt::checkpoint::load_tensors(&path))
        .py()?;
    Ok(items
        .into_iter()
        .map(|(n, t)| (n, PyTensor::new(t)))
        .collect())
}

// ---- runtime ----

/// Joins the dispatcher at `addr` (`host:port` or `unix:/path`); later ops of this process use
/// it. Raises `ConnectionError` when nothing answers there.
#[pyfunction]
fn connect(py: Python<'_>, addr: String) -> PyResult<()> {
    py.detach(move || gt::connect(&addr)).py()
}

/// Sets how many workers the embedded runtime starts (before the first op).
#[pyfunction]
fn gpu_workers(n: usize) -> PyResult<()> {
    gt::runtime::set_embedded_workers(n).py()
}

/// Loads a YAML sharding/compile config (signal name → placement) and makes it this process's
/// session config. Raises `ValueError` naming the key or value that is wrong.
#[pyfunction]
fn load_config(py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
    py.detach(move || gt::load_config(&path)).py()
}

/// Seeds the default session's random generator.
#[pyfunction]
fn manual_seed(py: Python<'_>, seed: u64) -> PyResult<()> {
    session(py)?.manual_seed(seed);
    Ok(())
}

/// Waits until all work issued so far has executed.
#[pyfunction]
fn sync(py: Python<'_>) -> PyResult<()> {
    py.detach(gt::sync).py()
}

thread_local! {
    static NO_GRAD: RefCell<Vec<NoGradGuard>> = const { RefCell::new(Vec::new()) };
}

/// Enters a no-grad region on this thread (used by `gt.no_grad()`).
#[pyfunction]
fn _no_grad_enter() {
    NO_GRAD.with(|g| g.borrow_mut().push(gt::no_grad()));
}

/// Leaves the innermost no-grad region on this thread.
#[pyfunction]
fn _no_grad_exit() -> PyResult<()> {
    NO_GRAD
        .with(|g| g.borrow_mut().pop())
        .map(drop)
        .ok_or_else(|| PyRuntimeError::new_err("no_grad exit without a matching enter"))
}

/// Whether ops on this thread are recorded for autograd.
#[pyfunction]
fn is_grad_enabled() -> bool {
    gt_client::autograd::grad_enabled()
}

static SCOPES: Mutex<Vec<Session>> = Mutex::new(Vec::new());

/// Opens the signal scope `name` (closed by `signal_exit`).
#[pyfunction]
fn signal_enter(py: Python<'_>, name: &str) -> PyResult<()> {
    let s = session(py)?;
    s.scope_enter(name);
    SCOPES.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    Ok(())
}

/// Closes the innermost open signal scope.
#[pyfunction]
fn signal_exit() -> PyResult<()> {
    let s = SCOPES.lock().unwrap_or_else(|e| e.into_inner()).pop();
    match s {
        Some(s) => {
            s.scope_exit();
            Ok(())
        }
        None => Err(PyRuntimeError::new_err(
            "gt.signal.exit() without an open scope",
        )),
    }
}

// ---- debug ----

/// The ops recorded for autograd, oldest first, as dicts.
#[pyfunction]
fn tape<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
    let entries = gt::debug::tape().py()?;
    let out = PyList::empty(py);
    for e in entries {
        let d = PyDict::new(py);
        d.set_item("op", e.op)?;
        d.set_item("output", e.output.to_string())?;
        d.set_item(
            "inputs",
            e.inputs.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        )?;
        d.set_item("shape", PyTuple::new(py, e.meta.shape.dims())?)?;
        d.set_item("dtype", e.meta.dtype.name())?;
        out.append(d)?;
    }
    Ok(out)
}

/// The tape as printable text.
#[pyfunction]
fn format_tape() -> PyResult<String> {
    Ok(gt_client::autograd::format_tape(&gt::debug::tape().py()?))
}

/// Every worker's statistics as JSON (a sync point).
#[pyfunction]
fn worker_stats_json(py: Python<'_>) -> PyResult<String> {
    let reports = py.detach(gt::debug::worker_stats).py()?;
    let json_err = |e: serde_json::Error| PyRuntimeError::new_err(e.to_string());
    let mut list = Vec::with_capacity(reports.len());
    for r in &reports {
        let mut v = serde_json::to_value(&r.stats).map_err(json_err)?;
        let kinds: serde_json::Map<String, serde_json::Value> = r
            .ops_by_kind
            .iter()
            .map(|(k, n)| (k.label().to_string(), (*n).into()))
            .collect();
        v["ops_by_kind"] = kinds.into();
        v["data_movement"] = r.data_movement.into();
        list.push(v);
    }
    serde_json::to_string(&list).map_err(json_err)
}

/// Every worker's statistics as a table (a sync point).
#[pyfunction]
fn format_worker_stats(py: Python<'_>) -> PyResult<String> {
    let stats = py.detach(gt::debug::worker_stats).py()?;
    Ok(gt::debug::format_worker_stats(&stats))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(randn, m)?)?;
    m.add_function(wrap_pyfunction!(rand, m)?)?;
    m.add_function(wrap_pyfunction!(zeros, m)?)?;
    m.add_function(wrap_pyfunction!(ones, m)?)?;
    m.add_function(wrap_pyfunction!(full, m)?)?;
    m.add_function(wrap_pyfunction!(arange, m)?)?;
    m.add_function(wrap_pyfunction!(from_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(cat, m)?)?;
    m.add_function(wrap_pyfunction!(stack, m)?)?;
    m.add_function(wrap_pyfunction!(where_, m)?)?;
    m.add_function(wrap_pyfunction!(linear, m)?)?;
    m.add_function(wrap_pyfunction!(embedding, m)?)?;
    m.add_function(wrap_pyfunction!(layer_norm, m)?)?;
    m.add_function(wrap_pyfunction!(save_tensors, m)?)?;
    m.add_function(wrap_pyfunction!(load_tensors, m)?)?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_workers, m)?)?;
    m.add_function(wrap_pyfunction!(load_config, m)?)?;
    m.add_function(wrap_pyfunction!(manual_seed, m)?)?;
    m.add_function(wrap_pyfunction!(sync, m)?)?;
    m.add_function(wrap_pyfunction!(_no_grad_enter, m)?)?;
    m.add_function(wrap_pyfunction!(_no_grad_exit, m)?)?;
    m.add_function(wrap_pyfunction!(is_grad_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(signal_enter, m)?)?;
    m.add_function(wrap_pyfunction!(signal_exit, m)?)?;
    m.add_function(wrap_pyfunction!(tape, m)?)?;
    m.add_function(wrap_pyfunction!(format_tape, m)?)?;
    m.add_function(wrap_pyfunction!(worker_stats_json, m)?)?;
    m.add_function(wrap_pyfunction!(format_worker_stats, m)?)?;
    Ok(())
}
