//! The statistics a worker reports (seed 003's `get_worker_stats`).

use serde::{Deserialize, Serialize};

/// One worker's counters at the moment of the request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// The worker's index.
    pub worker: u32,
    /// Instructions executed (ops, uploads, transfers).
    pub ops_executed: u64,
    /// Executed ops by name (`add`, `matmul`…), sorted by name.
    pub ops_by_name: Vec<(String, u64)>,
    /// Tensors currently held.
    pub live_tensors: u64,
    /// Bytes of tensor storage currently referenced by held tensors.
    pub bytes_in_use: u64,
    /// Buffer requests served from the pool.
    pub pool_hits: u64,
    /// Buffer requests that had to allocate.
    pub pool_misses: u64,
    /// Bytes sitting in the pool ready for reuse.
    pub pool_cached_bytes: u64,
    /// Instructions that failed (and poisoned their result).
    pub errors: u64,
    /// Sessions with at least one live tensor on this worker.
    pub sessions: u64,
    /// Whether the dispatcher considers this worker alive.
    pub alive: bool,
}
