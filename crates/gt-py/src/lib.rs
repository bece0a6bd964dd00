//! `gt._gt`, the native half of the `gt` Python package: the [`tensor::PyTensor`] class over
//! `gt::Tensor` and the module-level functions (creation, runtime, signals, debug). The Python
//! half (`python/gt/`) adds `nn`, `optim`, `no_grad` and the PyTorch-style conveniences.
//!
//! Rules kept everywhere here: only `try_` forms of the GT API are called, so a GT error becomes
//! a Python exception ([`errors`]) and no Rust panic reaches Python; calls that may block on the
//! runtime (reads, sync, connect, stats) release the GIL.
//!
//! # Layout
//! - [`errors`]: `gt::Error` → `ValueError` / `RuntimeError` / `ConnectionError`.
//! - [`dtype`]: the `gt.dtype` objects and parsing of dtype arguments.
//! - [`tensor`]: the `Tensor` class (arithmetic, reductions, views, autograd, in-place updates).
//! - [`tensor_ops`]: more `Tensor` methods (activations, selection, conversions).
//! - [`tensor_read`]: reads back into Python (`numpy`, `item`, `repr`).
//! - [`index`]: Python indexing keys (`x[0, 1:3, ..., None]`) → `gt::Idx`.
//! - [`functions`]: module-level functions.

mod dtype;
mod errors;
mod functions;
mod index;
mod tensor;
mod tensor_ops;
mod tensor_read;

use pyo3::prelude::*;

/// The module's Rust allocations (the embedded runtime's threads included) use mimalloc, as the
/// `gt` binary does (README, "The eager per-instruction path").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn _gt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<tensor::PyTensor>()?;
    dtype::register(m)?;
    functions::register(m)?;
    Ok(())
}
