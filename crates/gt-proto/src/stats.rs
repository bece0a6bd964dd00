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
    /// Nanoseconds the worker's executor has spent handling instructions since it started
    /// (its work, not its waiting: differences of two snapshots give a loop's worker time
    /// without the wall clock's scheduling noise).
    pub busy_ns: u64,
    /// Hot-path detection (seed 000's `hotpath` section).
    pub hotpath: HotPathStats,
    /// Trace compilation.
    pub compile: CompileStats,
}

/// The hot-path detector's counters, summed over the worker's client streams (seed 000).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HotPathStats {
    /// Whether detection is on (`GT_AUTO_COMPILE=1` or `GT_COMPILE=1`).
    pub enabled: bool,
    /// Instructions the detector has seen.
    pub total_instructions: u64,
    /// Instructions that were part of a hot sequence when they arrived.
    pub hot_instructions: u64,
    /// Distinct sequence signatures being counted.
    pub unique_sequences: u64,
    /// Sequences that reached the threshold.
    pub hot_sequences: u64,
    /// Repetitions after which a sequence is hot (`GT_HOTPATH_THRESHOLD`).
    pub hot_threshold: u64,
    /// Longest sequence considered, in instructions (`GT_HOTPATH_WINDOW`).
    pub window_size: u64,
}

/// The trace compiler's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompileStats {
    /// Traces compiled into programs.
    pub traces_compiled: u64,
    /// Hot sequences whose program was already cached (in memory or in `GT_COMPILE_CACHE`).
    pub cache_hits: u64,
    /// Hot sequences that had to be compiled.
    pub cache_misses: u64,
    /// Total time spent compiling, in microseconds.
    pub compile_time_us: u64,
    /// Compiles that failed (the signature is blacklisted and runs eagerly).
    pub fallbacks: u64,
    /// Compiled traces disabled because they ran slower than eager.
    pub disabled: u64,
    /// Buffered trace prefixes flushed eagerly because the stream deviated.
    pub deviations: u64,
    /// Times a compiled program ran.
    pub compiled_runs: u64,
    /// Instructions executed inside compiled programs.
    pub compiled_instructions: u64,
    /// Fused elementwise loops in the compiled programs.
    pub fused_loops: u64,
    /// Instructions those loops replace.
    pub fused_instructions: u64,
    /// Instructions removed as dead (results freed inside the trace without being read).
    pub dead_instructions: u64,
    /// Results of compiled runs left uncomputed until something uses them.
    #[serde(default)]
    pub deferred_values: u64,
    /// Deferred results computed because something used them.
    #[serde(default)]
    pub deferred_forced: u64,
    /// Deferred results freed unused: work never done.
    #[serde(default)]
    pub deferred_dropped: u64,
    /// Instructions of the compiled programs that compute constants (creation ops and what only
    /// they feed): computed on a stream's first run of the program, then reused.
    #[serde(default)]
    pub folded_instructions: u64,
    /// Instances of compiled programs predicted from the ones before and run ahead of their
    /// instructions while the worker was idle.
    #[serde(default)]
    pub ahead_runs: u64,
    /// Predicted instances that arrived as predicted (their steps' work was done early).
    #[serde(default)]
    pub ahead_hits: u64,
    /// Predicted instances that arrived otherwise (what ran ahead was dropped).
    #[serde(default)]
    pub ahead_misses: u64,
}

/// The dispatcher's own counters (`ClientMsg::DispatcherStats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DispatcherStats {
    /// Live workers.
    pub workers: u64,
    /// Connected sessions.
    pub sessions: u64,
    /// The sharding modifier's counters for the asking session.
    pub shard: ShardStats,
    /// The sharding modifier's counters summed over every session since the dispatcher started.
    pub shard_total: ShardStats,
}

/// What the sharding modifier did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStats {
    /// Client ops that ran on shards (one instruction per participating worker).
    pub sharded_ops: u64,
    /// Per-shard instructions issued for them (sum over workers).
    pub shard_instructions: u64,
    /// Client ops on distributed tensors that had no sharding rule and were gathered onto one
    /// worker first (correct, slower).
    pub gathered_ops: u64,
    /// Tensors created or uploaded directly as shards or replicas.
    pub placed_creations: u64,
    /// Worker-to-worker transfers injected by the modifier.
    pub transfers: u64,
    /// Bytes those transfers moved.
    pub bytes_moved: u64,
    /// Collectives injected, by kind.
    pub scatters: u64,
    /// All-gathers (shards → a full copy on every worker).
    pub all_gathers: u64,
    /// All-reduces (partial sums → a full sum on every worker).
    pub all_reduces: u64,
    /// Reduce-scatters (partial sums → the sum's shards).
    pub reduce_scatters: u64,
    /// Gathers onto one worker (reads, fallbacks, moves to a single worker).
    pub gathers: u64,
}
