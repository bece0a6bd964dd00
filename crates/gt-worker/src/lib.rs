//! A GT worker: receives session-tagged instructions from the dispatcher, executes them on an
//! [`Engine`] and answers sync requests. One worker per GPU or CPU socket.
//!
//! # Layout
//! - [`engine`]: the `Engine` trait — the seam between the instruction stream and kernels.
//! - [`hotpath`]: hot-path detection (per-stream signatures, repetition and period detection).
//! - [`compile`]: the trace compiler (hot sequences → fused programs).
//! - [`cpu`]: the CPU engine: strided tensors, a size-bucketed buffer pool, kernels, `gemm`.
//! - [`state`]: the synchronous core: tensor table, poisoning, stats (testable without sockets).
//! - [`server`]: the I/O shell: dispatcher link, heartbeats, peer transfers.

pub mod compile;
pub mod cpu;
pub mod engine;
pub mod hotpath;
pub mod peers;
pub mod server;
pub mod state;
#[cfg(test)]
mod test_util;

pub use engine::Engine;
