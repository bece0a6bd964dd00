//! Looking inside the runtime: per-worker statistics (a sync point) and the autograd tape.
//!
//! [`worker_stats`] returns one [`WorkerReport`] per worker: the raw [`WorkerStats`] (reachable
//! through `Deref`: `ops_executed`, `hotpath`, `compile`…) plus the executed operations grouped
//! by [`OpKind`]. [`print_worker_stats`] prints them all (seed 003's `print_worker_stats`).

use crate::runtime::try_session;
use gt_core::Result;
use gt_ops::OpKind;
use gt_proto::WorkerStats;
use std::fmt::Write as _;

/// One worker's statistics with its operations grouped by kind.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerReport {
    /// Everything the worker reported.
    pub stats: WorkerStats,
    /// Executed ops per kind, every kind listed (in [`OpKind::ALL`] order).
    pub ops_by_kind: Vec<(OpKind, u64)>,
    /// Instructions that are not ops: uploads and worker-to-worker sends and receives.
    pub data_movement: u64,
}

impl std::ops::Deref for WorkerReport {
    type Target = WorkerStats;
    fn deref(&self) -> &WorkerStats {
        &self.stats
    }
}

impl WorkerReport {
    /// Groups `stats.ops_by_name` by op kind.
    pub fn new(stats: WorkerStats) -> WorkerReport {
        let mut by_kind: Vec<(OpKind, u64)> = OpKind::ALL.iter().map(|k| (*k, 0)).collect();
        let mut data_movement = 0;
        for (name, n) in &stats.ops_by_name {
            match OpKind::of_name(name) {
                Some(k) => {
                    if let Some(slot) = by_kind.iter_mut().find(|(kk, _)| *kk == k) {
                        slot.1 += n;
                    }
                }
                None => data_movement += n,
            }
        }
        WorkerReport {
            stats,
            ops_by_kind: by_kind,
            data_movement,
        }
    }

    /// Executed ops of `kind`.
    pub fn ops_of(&self, kind: OpKind) -> u64 {
        self.ops_by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// Share of buffer requests served from the pool, in percent.
    pub fn pool_hit_rate(&self) -> f64 {
        percent(self.pool_hits, self.pool_hits + self.pool_misses)
    }
}

/// The dispatcher's own statistics: sharding counters for this session and in total.
pub fn dispatcher_stats() -> Result<gt_proto::DispatcherStats> {
    try_session()?.dispatcher_stats()
}

/// Every worker's statistics, in worker order.
pub fn worker_stats() -> Result<Vec<WorkerReport>> {
    Ok(try_session()?
        .worker_stats()?
        .into_iter()
        .map(WorkerReport::new)
        .collect())
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// A human-readable report of [`worker_stats`]: one block per worker.
pub fn format_worker_stats(reports: &[WorkerReport]) -> String {
    let mut s = String::new();
    for w in reports {
        let _ = writeln!(
            s,
            "worker {} ({})",
            w.worker,
            if w.alive { "alive" } else { "lost" }
        );
        let _ = writeln!(
            s,
            "  executed:  {} instructions, {} errors, {:.1} ms busy; {} live tensors ({}) from {} sessions",
            w.ops_executed,
            w.errors,
            w.busy_ns as f64 / 1e6,
            w.live_tensors,
            bytes(w.bytes_in_use),
            w.sessions
        );
        let kinds: Vec<String> = w
            .ops_by_kind
            .iter()
            .map(|(k, n)| format!("{} {n}", k.label()))
            .collect();
        let _ = writeln!(
            s,
            "  by kind:   {}; data movement {}",
            kinds.join(", "),
            w.data_movement
        );
        if !w.ops_by_name.is_empty() {
            let ops: Vec<String> = w
                .ops_by_name
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(s, "  by op:     {}", ops.join(" "));
        }
        let _ = writeln!(
            s,
            "  pool:      {} hits, {} misses ({:.1}% hit rate), {} cached",
            w.pool_hits,
            w.pool_misses,
            w.pool_hit_rate(),
            bytes(w.pool_cached_bytes)
        );
        let h = &w.hotpath;
        if h.enabled {
            let _ = writeln!(
                s,
                "  hot path:  {} of {} instructions hot ({:.1}%); {} hot of {} sequences (threshold {}, window {})",
                h.hot_instructions,
                h.total_instructions,
                percent(h.hot_instructions, h.total_instructions),
                h.hot_sequences,
                h.unique_sequences,
                h.hot_threshold,
                h.window_size
            );
        } else {
            let _ = writeln!(s, "  hot path:  off (GT_AUTO_COMPILE=1 turns it on)");
        }
        let c = &w.compile;
        let _ = writeln!(
            s,
            "  compile:   {} traces compiled in {:.1} ms ({} cache hits, {} misses); {} runs covering {} instructions; {} fallbacks, {} disabled, {} deviations",
            c.traces_compiled,
            c.compile_time_us as f64 / 1000.0,
            c.cache_hits,
            c.cache_misses,
            c.compiled_runs,
            c.compiled_instructions,
            c.fallbacks,
            c.disabled,
            c.deviations
        );
        if c.deferred_values > 0
            || c.dead_instructions > 0
            || c.fused_loops > 0
            || c.folded_instructions > 0
        {
            let _ = writeln!(
                s,
                "  plans:     {} fused loops replacing {} instructions, {} dead instructions, {} constant; {} results deferred ({} computed on use, {} never computed)",
                c.fused_loops,
                c.fused_instructions,
                c.dead_instructions,
                c.folded_instructions,
                c.deferred_values,
                c.deferred_forced,
                c.deferred_dropped
            );
        }
        if c.ahead_runs > 0 {
            let _ = writeln!(
                s,
                "  ahead:     {} instances predicted and run ahead, {} arrived as predicted, {} did not",
                c.ahead_runs, c.ahead_hits, c.ahead_misses
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_group_ops_by_kind_and_print_every_section() {
        let stats = WorkerStats {
            worker: 1,
            alive: true,
            ops_executed: 9,
            ops_by_name: vec![
                ("add".into(), 3),
                ("full".into(), 1),
                ("matmul".into(), 2),
                ("recv".into(), 1),
                ("reshape".into(), 1),
                ("sum".into(), 1),
                ("upload".into(), 1),
            ],
            pool_hits: 3,
            pool_misses: 1,
            busy_ns: 2_500_000,
            ..Default::default()
        };
        let r = WorkerReport::new(stats);
        assert_eq!(r.ops_of(OpKind::Elementwise), 3);
        assert_eq!(r.ops_of(OpKind::Creation), 1);
        assert_eq!(r.ops_of(OpKind::MatMul), 2);
        assert_eq!(r.ops_of(OpKind::Reduce), 1);
        assert_eq!(r.ops_of(OpKind::View), 1);
        assert_eq!(r.ops_of(OpKind::Index), 0);
        assert_eq!(r.data_movement, 2);
        assert_eq!(r.pool_hit_rate(), 75.0);
        let text = format_worker_stats(&[r]);
        for want in [
            "worker 1 (alive)",
            "elementwise 3",
            "matmul 2",
            "data movement 2",
            "75.0% hit rate",
            "2.5 ms busy",
            "hot path:  off",
            "compile:   0 traces",
        ] {
            assert!(text.contains(want), "{want:?} missing:\n{text}");
        }
    }
}
