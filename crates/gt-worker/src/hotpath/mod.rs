//! Hot-path detection: the worker's stream modifier that notices instruction sequences that
//! repeat (seeds 000–004, DESIGN.md §6).
//!
//! Each client stream (`Key::session()`) has its own [`StreamDetector`]. Every instruction gets a
//! signature ([`signature`]) from its op, attributes, the metas of inputs coming from outside the
//! current segment, and its *renormalized dataflow*: an input is "produced k instructions ago" or
//! "external input #j in first-use order", never a raw tensor id. Sync points (a `Read` of the
//! stream's tensor) end a segment; a segment whose signature repeats `threshold` times is hot.
//! Loops without sync points are caught by a period detector over the last `window`
//! instructions. Both cost O(1) amortized per instruction.
//!
//! # Layout
//! - [`signature`]: per-instruction hashing and the op fingerprint.
//! - [`detector`]: the per-stream detector and the matcher that recognizes a hot sequence as it
//!   begins again.
//! - [`standalone`]: seed 002's per-iteration API (`begin_iteration` / `record_operation` /
//!   `end_iteration`).

pub mod detector;
pub mod signature;
pub mod standalone;

pub use detector::{HotSeq, Step, StreamDetector};
pub use standalone::IterationDetector;

use std::path::PathBuf;

/// The hot-path and compiler settings of a worker (read once from the environment by
/// `gt::config::Config` or the CLI, and passed down).
#[derive(Clone, Debug, PartialEq)]
pub struct HotPathConfig {
    /// `GT_AUTO_COMPILE=1`: detect hot sequences and compile them.
    pub auto_compile: bool,
    /// `GT_COMPILE=1`: compile every sequence at its second sight, without waiting for hotness.
    pub compile_all: bool,
    /// `GT_HOTPATH_THRESHOLD`: repetitions after which a sequence is hot.
    pub threshold: u32,
    /// `GT_HOTPATH_MIN_SEQ`: the shortest sequence considered, in instructions.
    pub min_seq: usize,
    /// `GT_HOTPATH_WINDOW`: the longest repeating period detected in streams without sync points,
    /// and the farthest "produced k instructions ago" reference named by distance.
    pub window: usize,
    /// `GT_COMPILE_CACHE`: a directory where hot signatures persist across runs.
    pub cache_dir: Option<PathBuf>,
    /// Compile on the executing thread instead of in the background (deterministic; tests).
    pub compile_inline: bool,
    /// `GT_COMPILE_KEEP_SLOWER=1`: keep plans the regression guard measured slower than eager
    /// (tests that must exercise the compiled path whatever the timings; debugging).
    pub keep_slower: bool,
}

/// Default `GT_HOTPATH_THRESHOLD`: a sequence seen twice is hot (see the README for why).
pub const DEFAULT_THRESHOLD: u32 = 2;
/// Default `GT_HOTPATH_MIN_SEQ`.
pub const DEFAULT_MIN_SEQ: usize = 5;
/// Default `GT_HOTPATH_WINDOW`.
pub const DEFAULT_WINDOW: usize = 256;

impl Default for HotPathConfig {
    fn default() -> Self {
        HotPathConfig {
            auto_compile: false,
            compile_all: false,
            threshold: DEFAULT_THRESHOLD,
            min_seq: DEFAULT_MIN_SEQ,
            window: DEFAULT_WINDOW,
            cache_dir: None,
            compile_inline: false,
            keep_slower: false,
        }
    }
}

impl HotPathConfig {
    /// Whether detection runs at all.
    pub fn enabled(&self) -> bool {
        self.auto_compile || self.compile_all
    }

    /// The effective threshold (`GT_COMPILE=1` makes every sequence hot at its first repetition).
    pub fn effective_threshold(&self) -> u32 {
        if self.compile_all {
            1
        } else {
            self.threshold.max(1)
        }
    }
}
