//! Seed 002's standalone detector: feed it the operations of each iteration, and it says when
//! the iteration has repeated often enough to be worth compiling.
//!
//! ```
//! use gt_worker::hotpath::IterationDetector;
//! let mut d = IterationDetector::new(3);
//! let mut decisions = Vec::new();
//! for _ in 0..5 {
//!     d.begin_iteration();
//!     d.record_operation("matmul", &[64, 64]);
//!     d.record_operation("relu", &[64, 64]);
//!     decisions.push(d.end_iteration());
//! }
//! assert_eq!(decisions, [false, false, true, true, true]);
//! ```

use super::signature::{finish, mix};
use rustc_hash::FxHashMap;

/// Counts iteration signatures (hash of the operation names and shapes recorded between
/// `begin_iteration` and `end_iteration`).
#[derive(Debug, Default)]
pub struct IterationDetector {
    threshold: u32,
    current: u64,
    ops: usize,
    counts: FxHashMap<u64, u32>,
    iterations: u64,
    hot_iterations: u64,
    last_hot: bool,
}

impl IterationDetector {
    /// A detector that calls an iteration hot once its signature was seen `threshold` times.
    pub fn new(threshold: u32) -> IterationDetector {
        IterationDetector {
            threshold: threshold.max(1),
            ..Default::default()
        }
    }

    /// Starts recording an iteration.
    pub fn begin_iteration(&mut self) {
        self.current = 0;
        self.ops = 0;
    }

    /// Records one operation of the current iteration.
    pub fn record_operation(&mut self, op: &str, input_shape: &[usize]) {
        let mut h = mix(self.current, op.len() as u64);
        for b in op.bytes() {
            h = mix(h, b as u64);
        }
        h = mix(h, input_shape.len() as u64);
        for &d in input_shape {
            h = mix(h, d as u64);
        }
        self.current = h;
        self.ops += 1;
    }

    /// Ends the iteration; true when its signature has now been seen `threshold` times or more
    /// (compile it).
    pub fn end_iteration(&mut self) -> bool {
        let sig = finish(mix(self.current, self.ops as u64));
        let c = self.counts.entry(sig).or_insert(0);
        *c += 1;
        self.iterations += 1;
        let hot = *c >= self.threshold;
        self.hot_iterations += hot as u64;
        self.last_hot = hot;
        hot
    }

    /// Whether the last finished iteration was hot.
    pub fn should_compile(&self) -> bool {
        self.last_hot
    }

    /// `(iterations, hot iterations, distinct signatures)`.
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.iterations,
            self.hot_iterations,
            self.counts.len() as u64,
        )
    }
}
