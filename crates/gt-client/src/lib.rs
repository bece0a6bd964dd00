//! GT's client: the [`Tensor`] handle and its PyTorch-like API, and the [`Session`] that streams
//! instructions to a dispatcher.
//!
//! Every op is checked here first (shape, dtype and axis errors come from `gt_ops::infer` at the
//! call site) and then appended to the session's outgoing batch with a client-chosen id: there is
//! no round trip until a sync point (`to_vec`, `item`, printing, stats, `sync`). Dropping the
//! last handle of a tensor appends `Free`.
//!
//! # Layout
//! - [`autograd`]: the recorded graph, `backward`, `no_grad`, the tape.
//! - [`session`]: the outgoing batch, request/reply matching, connection failure.
//! - [`connect`]: joining a dispatcher over TCP or a Unix socket.
//! - [`tensor`]: the handle, metadata, reads and moves.
//! - [`ops`]: the op methods (`try_` forms return `Result`) and creation functions.
//! - [`operators`]: `+ - * /` and unary minus on tensors and scalars (panicking forms).
//! - [`index`]: slicing and indexing arguments.
//! - [`display`]: torch-like printing.

pub mod autograd;
pub mod connect;
pub mod display;
pub mod index;
pub mod operators;
pub mod ops;
pub mod ops_ext;
pub mod ops_nnf;
pub mod session;
pub mod tensor;

pub use autograd::{no_grad, NoGradGuard, TapeEntry};
pub use connect::connect;
pub use index::Idx;
pub use session::{ReplyRouter, Session};
pub use tensor::Tensor;
