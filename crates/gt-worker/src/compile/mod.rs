//! The trace compiler: a hot instruction sequence becomes a program of fused loops, kernels and
//! planned buffers (see DESIGN.md §6).
//!
//! # Layout
//! - [`loop_ir`]: the fused elementwise loop IR shared by the planner and the code generators.

pub mod loop_ir;
