//! GT: a multiplexing tensor runtime. Write ordinary eager tensor code; it runs on an embedded
//! runtime (a dispatcher and `GT_WORKERS` workers inside your process) or, unchanged, on a
//! cluster of `gt dispatcher` / `gt worker` processes when `GT_ADDR` is set or you call
//! [`connect`].
//!
//! ```no_run
//! let a = gt::randn([64, 32]);
//! let b = gt::ones([32]);
//! let c = (&a + &b).relu().sum_dims(&[1], false);
//! let shown = c.to_string();  // printing is a sync point: the first round trip happens here
//! ```
//!
//! # Layout
//! - [`checkpoint`]: safetensors save/load with PyTorch's parameter names.
//! - [`config`]: every environment variable, read once.
//! - [`runtime`]: the default session: connect, or auto-start the embedded runtime.
//! - [`create`]: module-level creation functions (`gt::randn`, `gt::zeros`, …).
//! - [`debug`]: worker statistics and the autograd tape.
//! - [`nn`]: modules, parameters, layers, losses (lives here rather than in `gt-client` because
//!   constructors use the default session).
//! - [`optim`]: SGD, Adam, AdamW and learning-rate schedules.
//! - [`signal`]: named scopes in the stream (`gt::signal("layer1")`), for sharding and compile
//!   configs.

pub mod checkpoint;
pub mod config;
pub mod create;
pub mod debug;
pub mod nn;
pub mod optim;
pub mod runtime;
pub mod signal;

pub use create::*;
pub use gt_client::{no_grad, Idx, NoGradGuard, Session, Tensor};
pub use gt_core::{DType, Error, Result, Shape};
pub use gt_dispatcher::shard::{ShardConfig, ShardSpec, SignalConfig};
pub use gt_ops::{BinaryOp, ReduceOp, UnaryOp};
pub use gt_proto::{DispatcherStats, ShardStats};
pub use gt_proto::{TensorData, WorkerStats};
pub use runtime::{
    connect, load_config, manual_seed, no_grad_eval, session, set_config, sync, try_session,
};

/// Opens the signal scope `name` until the returned guard is dropped (see [`mod@signal`]).
pub fn signal(name: &str) -> signal::Guard {
    signal::enter(name)
}
