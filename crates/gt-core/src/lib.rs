//! GT's vocabulary types, shared by every other crate: [`Shape`], [`DType`], the id newtypes and
//! the one [`Error`] type. Nothing here does I/O or knows about ops.
//!
//! # Layout
//! - [`shape`]: dimensions, element counts, contiguous strides, broadcasting.
//! - [`dtype`]: element types and PyTorch's promotion rule.
//! - [`ids`]: client tensor ids, session ids, worker ids, request ids, and worker-side keys.
//! - [`error`]: the error type every layer returns, cheap to clone so a poisoned tensor can carry
//!   its cause to everything computed from it.

pub mod dtype;
pub mod error;
pub mod ids;
pub mod shape;

pub use dtype::DType;
pub use error::{Error, Result};
pub use ids::{Key, ReqId, SessionId, TensorId, WorkerId};
pub use shape::Shape;
