//! GT's wire protocol, with no I/O: the handshake, one message enum per hop, the tensor payload
//! and the frame codec.
//!
//! # Layout
//! - [`handshake`]: the first frame of every connection (role, version, token) and its answer.
//! - [`msg`]: client ⇄ dispatcher, dispatcher ⇄ worker and worker → worker messages.
//! - [`data`]: tensor bytes (raw little-endian) with dtype and shape.
//! - [`stats`]: the worker statistics record.
//! - [`monitor`]: what the dispatcher streams to monitors (`gt trace --connect`, `gt top`).
//! - [`frame`]: length-delimited frames, each holding a postcard-encoded batch of messages.
//!
//! A frame is `u32 little-endian length | postcard(Vec<Msg>)`; tensor bytes inside are encoded as
//! a postcard byte string (a length then the raw bytes), so they are never transformed.

pub mod data;
pub mod frame;
pub mod handshake;
pub mod monitor;
pub mod msg;
pub mod stats;

pub use data::TensorData;
pub use frame::{decode_batch, encode_batch, FrameError, DEFAULT_MAX_FRAME};
pub use handshake::{Hello, Role, Welcome, PROTOCOL_VERSION};
pub use monitor::{ClientView, MonitorMsg, Snapshot, WorkerView};
pub use msg::{
    ClientMsg, ClientReply, ExecSpan, HotPathEvent, PeerMsg, WorkerLoad, WorkerMsg, WorkerReply,
    BACKWARD_SCOPE,
};
pub use stats::{CompileStats, DispatcherStats, HotPathStats, ShardStats, WorkerStats};
