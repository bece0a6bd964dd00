//! The one error type of GT. It is `Clone` because a worker-side failure poisons a tensor id and
//! every tensor computed from it carries the same cause.

use serde::{Deserialize, Serialize};

/// Result alias used across GT.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with enough context to act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Error {
    /// Shapes that do not fit the op (raised by the client at the call site).
    #[error("shape error in {op}: {msg}")]
    Shape { op: String, msg: String },
    /// An axis outside the tensor's rank.
    #[error("axis error in {op}: {msg}")]
    Axis { op: String, msg: String },
    /// A dtype the op does not accept.
    #[error("dtype error in {op}: {msg}")]
    DType { op: String, msg: String },
    /// An argument that is invalid regardless of shapes (e.g. a zero slice step).
    #[error("invalid argument to {op}: {msg}")]
    Invalid { op: String, msg: String },
    /// A tensor id that the receiver does not know.
    #[error("unknown tensor id {0}")]
    UnknownTensor(String),
    /// A worker that died or stopped answering; names the worker.
    #[error("worker {worker} lost: {reason}")]
    WorkerLost { worker: u32, reason: String },
    /// A failure while executing on a worker (poisons the result ids).
    #[error("worker {worker} failed to execute {op}: {msg}")]
    Exec {
        worker: u32,
        op: String,
        msg: String,
    },
    /// Protocol violations: bad frames, version or token mismatch, unexpected messages.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Connection-level failures (refused, closed, timed out).
    #[error("connection error: {0}")]
    Connection(String),
    /// Bad configuration (environment variables, flags).
    #[error("configuration error: {0}")]
    Config(String),
}

impl Error {
    /// Shape error for `op`.
    pub fn shape(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Shape {
            op: op.into(),
            msg: msg.into(),
        }
    }
    /// Axis error for `op`.
    pub fn axis(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Axis {
            op: op.into(),
            msg: msg.into(),
        }
    }
    /// Dtype error for `op`.
    pub fn dtype(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::DType {
            op: op.into(),
            msg: msg.into(),
        }
    }
    /// Invalid-argument error for `op`.
    pub fn invalid(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Invalid {
            op: op.into(),
            msg: msg.into(),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Connection(e.to_string())
    }
}
