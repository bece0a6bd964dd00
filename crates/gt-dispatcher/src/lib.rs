//! GT's dispatcher: one session per client (its own id namespace), a placement table saying which
//! worker holds each tensor, a worker registry with heartbeats, and the rewriting of client
//! instruction streams into worker instruction streams (including worker-to-worker moves).
//!
//! # Layout
//! - [`event`]: everything that can happen to the dispatcher, as one enum.
//! - [`core`]: the synchronous state machine that handles events (no I/O, fake-clock testable).
//! - [`route`]: rewriting one client instruction into worker instructions.
//! - [`shard`]: the sharding modifier (signal configs, placements, rules, collectives).
//! - [`log`]: the instruction log (`GT_INSTRUCTION_LOG`), one line per event.
//! - [`monitor`]: attached monitors (`gt trace --connect`, `gt top`): lines and snapshots.
//! - [`hub`]: the core behind a lock, run by whichever thread brings an event.
//! - [`server`]: the shell — listeners, handshakes, socket pumps, the heartbeat ticker.

pub mod core;
pub mod event;
mod hub;
pub mod log;
pub mod monitor;
pub mod route;
pub mod server;
pub mod shard;

pub use crate::core::{Core, CoreConfig};
pub use event::Event;
pub use log::InstructionLog;
pub use server::{Dispatcher, DispatcherConfig};
pub use shard::ShardConfig;

#[cfg(test)]
mod tests;
