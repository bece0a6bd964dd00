//! THE op table. Every op GT knows is a variant of [`Op`]; every concern (shape inference, wire
//! encoding, kernels, reference semantics, later gradients, fusion and sharding) is an exhaustive
//! `match` on it, so adding an op makes the compiler list every place to touch.
//!
//! # Layout
//! - [`op`]: the enum family ([`Op`], [`UnaryOp`], [`BinaryOp`], [`ReduceOp`]) and its names.
//! - [`mod@infer`]: output shape and dtype of an op from its inputs' — the client calls this at the
//!   call site, so shape errors are raised where the user wrote the bad op.
//! - [`grad`]: one vector-Jacobian rule per op, written against a tiny [`grad::Graph`] trait.
//! - [`scalar`]: what each elementwise op does to one element, shared by kernels and reference.
//! - [`random`]: the counter-based (Philox) generator: a value depends only on
//!   (seed, stream, element index), never on where or how it is computed.
//! - [`reference`]: a slow, obviously-correct float64 evaluator used as the test oracle.

pub mod grad;
#[cfg(test)]
mod gradcheck;
pub mod infer;
mod kind_names;
pub mod op;
pub mod random;
pub mod reference;
pub mod scalar;

pub use infer::{infer, Meta};
pub use op::{
    ArgOp, BinaryOp, CompareOp, Dist, Op, OpKind, ReduceOp, SliceSpec, SliceSpecs, UnaryOp,
};
