//! The trace compiler: a hot instruction sequence becomes a program of fused loops, kernels and
//! planned buffers (see DESIGN.md §6).
//!
//! # Layout
//! - [`trace`]: a buffered trace in canonical form (nodes, external inputs, live-outs, frees).
//! - [`program`]: compiling a trace into a [`program::Plan`] (inference, DCE, release points)
//!   and running it on an engine.
//! - [`fuse`]: runs of elementwise instructions lowered to fused loops.
//! - [`epilogue`]: a matmul with the add (and relu) only it feeds, as one step.
//! - [`cache`]: plans by signature, background compilation, blacklist and regression guard.
//! - [`persist`]: `GT_COMPILE_CACHE`, hot signatures kept across runs.
//! - [`loop_ir`]: the fused elementwise loop IR shared by the planner and the code generators.
//! - [`loop_check`]: validation of a loop spec and its iteration plan (shared by the generators).
//! - [`loop_conv`]: the eager kernels' dtype conversions, for `Cast` and `Const` nodes.
//! - [`loop_interp`]: the blocked interpreter (fallback code generator and test oracle).
//! - [`loop_jit`]: the Cranelift JIT for loop specs (`loop_jit_ops`: per-node instructions;
//!   `loop_jit_simd`: the 128-bit vector inner loop; `loop_jit_sym`: the eager transcendental
//!   functions it calls).

pub mod cache;
pub mod epilogue;
pub mod fuse;
pub mod loop_check;
pub mod loop_conv;
pub mod loop_interp;
pub mod loop_ir;
pub mod loop_jit;
mod loop_jit_ops;
pub(crate) mod loop_jit_simd;
mod loop_jit_sym;
pub mod persist;
pub mod program;
#[cfg(test)]
mod tests;
pub mod trace;
