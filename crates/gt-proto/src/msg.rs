//! The messages of each hop, one enum per direction, a doc line per variant.
//!
//! ```text
//! client ──ClientMsg──► dispatcher ──WorkerMsg──► worker ──PeerMsg──► worker
//!        ◄─ClientReply─            ◄─WorkerReply─
//! ```
//! Clients name tensors with their own [`TensorId`]s; the dispatcher rewrites them to worker-side
//! [`Key`]s (session-tagged), so no client can reach another's tensors.

use crate::{DispatcherStats, TensorData, WorkerStats};
use gt_core::{Error, Key, ReqId, SessionId, TensorId, WorkerId};
use gt_ops::Op;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// The signal scope a client opens around the gradient ops of `backward()`: inside it, new
/// tensors take the placement of the `backward:` signal of the region that produced the loss.
pub const BACKWARD_SCOPE: &str = "gt.backward";

/// Client → dispatcher.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Compute `out = op(inputs)`.
    Exec {
        out: TensorId,
        op: Op,
        inputs: SmallVec<[TensorId; 2]>,
    },
    /// Create `out` from the given bytes.
    Upload { out: TensorId, data: TensorData },
    /// The client dropped its last handle to `id`.
    Free { id: TensorId },
    /// `out` is a copy of `src` living on `worker` (like `.to(device)`).
    ToWorker {
        out: TensorId,
        src: TensorId,
        worker: WorkerId,
    },
    /// Send back the contents of `id` (a sync point).
    Read { req: ReqId, id: TensorId },
    /// Send back every worker's statistics (a sync point).
    Stats { req: ReqId },
    /// Answer once everything sent before has executed (a sync point).
    Sync { req: ReqId },
    /// Enter the named signal scope (`gt::signal("layer1")`); scopes nest.
    ScopeEnter { name: String },
    /// Leave the innermost signal scope.
    ScopeExit,
    /// Use this sharding/compile config (YAML text, see `gt_dispatcher::shard::ShardConfig`) for
    /// this session from now on; answered with `Synced` (an error names what is wrong).
    Configure { req: ReqId, yaml: String },
    /// Send back the dispatcher's own statistics (sharding counters).
    DispatcherStats { req: ReqId },
}

/// Dispatcher → client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientReply {
    /// The contents asked for by `Read`, or why they cannot be had.
    Data {
        req: ReqId,
        result: Result<TensorData, Error>,
    },
    /// The statistics asked for by `Stats`.
    Stats {
        req: ReqId,
        result: Result<Vec<WorkerStats>, Error>,
    },
    /// `Sync` finished: `Err` names a worker lost while holding this client's tensors.
    Synced {
        req: ReqId,
        result: Result<(), Error>,
    },
    /// The statistics asked for by `DispatcherStats`.
    DispatcherStats {
        req: ReqId,
        result: Result<DispatcherStats, Error>,
    },
}

/// Dispatcher → worker. Every tensor is named by a session-tagged [`Key`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerMsg {
    /// Compute `out = op(inputs)`.
    Exec {
        out: Key,
        op: Op,
        inputs: SmallVec<[Key; 2]>,
    },
    /// Store the given bytes as `out`.
    Upload { out: Key, data: TensorData },
    /// Drop `key`.
    Free { key: Key },
    /// `out` names the same tensor as `src` (a move to the worker it already lives on).
    Alias { out: Key, src: Key },
    /// Drop every tensor of `session` (its client disconnected).
    FreeSession { session: SessionId },
    /// Mark `key` as failed with `error` (its inputs were lost elsewhere).
    Poison { key: Key, error: Error },
    /// Reply with the contents of `key`.
    Read { req: ReqId, key: Key },
    /// Reply with this worker's statistics.
    Stats { req: ReqId },
    /// Reply once everything before has executed.
    Barrier { req: ReqId },
    /// Deliver the contents of `key` to worker `to` as transfer `xfer`.
    Send { key: Key, to: WorkerId, xfer: u64 },
    /// Store transfer `xfer` from worker `from` as `out` (waits for it to arrive).
    Recv { out: Key, from: WorkerId, xfer: u64 },
    /// The addresses of the other workers, for peer transfers.
    Peers { peers: Vec<(WorkerId, String)> },
    /// Worker `worker` is gone: fail any transfer still expected from it.
    PeerLost { worker: WorkerId, error: Error },
    /// Liveness probe; answered with `Pong` right away, even while executing.
    Ping,
    /// Turn per-instruction timing records ([`WorkerReply::Timing`]) on or off. Handled by the
    /// worker's shell as soon as it arrives; off (the default) costs one flag load per batch.
    Timing { on: bool },
    /// Session `session` enters (`enter`) or leaves a signal scope configured `compile: true`:
    /// the worker compiles the instructions in between at first sight instead of waiting for
    /// them to repeat.
    CompileRegion { session: SessionId, enter: bool },
}

/// Worker → dispatcher.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerReply {
    /// Answer to `Read`.
    Data {
        req: ReqId,
        result: Result<TensorData, Error>,
    },
    /// Answer to `Stats`.
    Stats { req: ReqId, stats: Box<WorkerStats> },
    /// Answer to `Barrier`.
    BarrierDone { req: ReqId },
    /// Answer to `Ping`.
    Pong,
    /// Unsolicited: the hot-path detector of `session`'s stream entered or left a hot sequence.
    HotPath {
        session: SessionId,
        event: HotPathEvent,
    },
    /// Unsolicited, with every `Pong`: how busy the executor is.
    Load(WorkerLoad),
    /// Unsolicited while timing is on: how long each instruction of a batch took.
    Timing { spans: Vec<ExecSpan> },
}

/// A worker's executor load, cumulative since it started (rates come from differences).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerLoad {
    /// Nanoseconds since the executor started.
    pub uptime_ns: u64,
    /// Nanoseconds spent handling instructions.
    pub busy_ns: u64,
    /// Instructions handled.
    pub handled: u64,
    /// Instructions received but not yet handled.
    pub queued: u64,
}

/// The execution of one instruction on a worker (timing records).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecSpan {
    /// The tensor it produced (or read, sent or freed).
    pub key: Key,
    /// The op name (`add`, `matmul`…) or the instruction (`upload`, `send`, `recv`, `free`…).
    pub op: std::borrow::Cow<'static, str>,
    /// Start, in nanoseconds since the Unix epoch (the worker's clock).
    pub start_unix_ns: u64,
    /// Duration in nanoseconds.
    pub dur_ns: u64,
}

/// What a worker's hot-path detector reports (logged as `HOTPATH_START` / `HOTPATH_END`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HotPathEvent {
    /// A hot sequence of `len` instructions with this signature begins.
    Start { signature: u64, len: u32 },
    /// The hot sequence ended; `compiled` tells whether a compiled program ran it.
    End { signature: u64, compiled: bool },
}

/// Worker → worker (peer transfers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// The contents for transfer `xfer`, or the error that poisons its destination.
    Tensor {
        xfer: u64,
        from: WorkerId,
        result: Result<TensorData, Error>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_messages_stay_small() {
        // Batches are vectors of these, moved through every queue and kept by streamed runs; a
        // large rarely-used variant (slice specs were inline once) makes every message pay.
        let sizes = (
            std::mem::size_of::<gt_ops::Op>(),
            std::mem::size_of::<WorkerMsg>(),
            std::mem::size_of::<ClientMsg>(),
        );
        assert!(
            sizes.0 <= 80 && sizes.1 <= 112 && sizes.2 <= 112,
            "{sizes:?}"
        );
    }
}
