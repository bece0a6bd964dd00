//! Sharding: signal configs, placements of distributed tensors, per-op propagation rules, the
//! collectives that move data between layouts, and the modifier that ties them into routing.
//!
//! # Layout
//! - [`config`]: the YAML/Rust config (signal → shard spec, compile flag, backward signal).
//! - [`placement`]: Replicate, Shard(axis, extents), Partial(sum) and the part arithmetic.
//! - [`rules`]: how each op kind runs on distributed inputs (an exhaustive match on the op).
//! - [`collective`]: scatter, gather, all-gather, all-reduce, reduce-scatter as instructions.
//! - [`modifier`]: creations in a signal scope, ops on distributed tensors, reads, moves.

pub mod collective;
pub mod config;
pub mod modifier;
pub mod placement;
pub mod rules;

pub use config::{ShardConfig, ShardSpec, SignalConfig};
pub use placement::{Dist, Layout};
