//! Looking inside the runtime: per-worker statistics (a sync point) and the autograd tape.

use crate::runtime::try_session;
use gt_core::Result;
use gt_proto::WorkerStats;

/// Every worker's statistics.
pub fn worker_stats() -> Result<Vec<WorkerStats>> {
    try_session()?.worker_stats()
}

/// The dispatcher's own statistics: sharding counters for this session and in total.
pub fn dispatcher_stats() -> Result<gt_proto::DispatcherStats> {
    try_session()?.dispatcher_stats()
}

/// A human-readable table of [`worker_stats`].
pub fn format_worker_stats(stats: &[WorkerStats]) -> String {
    let mut s = String::from(
        "worker  alive  ops_executed  live_tensors  bytes_in_use  pool_hits  pool_misses  errors\n",
    );
    for w in stats {
        s.push_str(&format!(
            "{:>6}  {:>5}  {:>12}  {:>12}  {:>12}  {:>9}  {:>11}  {:>6}\n",
            w.worker,
            w.alive,
            w.ops_executed,
            w.live_tensors,
            w.bytes_in_use,
            w.pool_hits,
            w.pool_misses,
            w.errors
        ));
        if !w.ops_by_name.is_empty() {
            let ops: Vec<String> = w
                .ops_by_name
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("        ops: {}\n", ops.join(" ")));
        }
    }
    s
}

/// Prints [`worker_stats`] to stdout (the user asked for it; this is not logging).
pub fn print_worker_stats() -> Result<()> {
    let stats = worker_stats()?;
    print!("{}", format_worker_stats(&stats));
    Ok(())
}

/// The ops currently recorded for autograd in the default session (op names, ids, shapes).
pub fn tape() -> Result<Vec<gt_client::TapeEntry>> {
    Ok(gt_client::autograd::tape(&try_session()?))
}

/// Prints [`tape`] to stdout.
pub fn print_tape() -> Result<()> {
    print!("{}", gt_client::autograd::format_tape(&tape()?));
    Ok(())
}
