//! The worker's plan cache, keyed by hot-sequence signature: compiles in the worker's idle
//! time, on a background thread when the plan will JIT loops (or inline), blacklists signatures
//! whose compile failed, and disables plans measured slower than eager execution of the same
//! trace.
//!
//! The regression guard compares like with like. An eager instance costs its instructions'
//! execution; a compiled instance costs everything the worker does for it beyond the detector
//! both pay — checking each arriving instruction against the plan, running the steps,
//! installing the results — plus the deferred values computed later (forcing). Timing restarts
//! whenever the set of deferred results changes (while the worker learns which results get
//! read, early runs pay for values computed on demand). The first run of a window is left out
//! (cold caches); the best of the next [`GUARD_RUNS`]` - 1` is compared with the best eager
//! instance, best against best as in any benchmark on a noisy machine. A mean let the warm-up
//! decide: the seed-size MLP step's runs 2–4 after the restart took 21–52 µs (forcing, the
//! first runs ahead, the buffer pool filling), later ones 17.6–18.4 µs against 22.8–23.1 µs for
//! its best eager instance, and the guard disabled the plan in 4 of 6 runs, leaving the loop at
//! 27.5 µs per step instead of 23.5.

use super::program::{self, CompileJob, Plan};
use gt_proto::CompileStats;
use program::compile;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a stream waits for a pending compile ([`PlanCache::wait`]).
const MAX_WAIT: Duration = Duration::from_millis(20);
/// Eager instances the regression guard wants to have seen before it decides
/// ([`PlanCache::wants_eager_sample`]).
const EAGER_SAMPLES: u32 = 2;
/// How much slower than later ones the first eager instance of a loop can be (warm-up).
const COLD: f64 = 1.5;
/// Compiled runs measured before the regression guard decides (the seed MLP's settle by the
/// sixth).
const GUARD_RUNS: u32 = 8;
/// A plan whose best run is this much slower than the best eager run is disabled: not faster
/// means not worth the matching overhead.
const GUARD_SLOWER: f64 = 1.0;

type Slot = Arc<Mutex<Option<Result<Plan, String>>>>;

/// A compile, for the background thread or the worker's idle time.
type Work = Box<dyn FnOnce() + Send>;

/// The job `build` makes, or why there is none.
fn built(build: impl FnOnce() -> Option<CompileJob>) -> Result<CompileJob, String> {
    build().ok_or_else(|| {
        "the trace holds an instruction a plan cannot run (or reuses a freed tensor)".to_string()
    })
}

/// A compile's outcome as the cache keeps it.
fn plan(p: gt_core::Result<Plan>) -> Result<Plan, String> {
    p.map_err(|e| e.to_string())
}

/// `f`'s result, with a panic counted as a failed compile.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("the compiler panicked".to_string()))
}

/// Leaves a compile's outcome in `slot`.
fn finish(slot: &Slot, r: Result<Plan, String>) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
}

/// The background compiler: one thread per worker, started with the cache and fed jobs in
/// order, so at most one compile competes with the executor for a core and no thread is created
/// per trace (handing a job over measured 4–29 µs on the dev VM, mostly the wake-up; the
/// compile itself 12–30 µs). Dropping the cache closes the channel and the thread ends after its
/// current job.
struct Background {
    jobs: crossbeam_channel::Sender<Work>,
}

impl Background {
    /// Starts the thread and waits until it runs, so its start-up does not compete with the
    /// worker's first instructions.
    fn start() -> std::io::Result<Background> {
        let (jobs, rx) = crossbeam_channel::unbounded::<Work>();
        let (ready_tx, ready) = crossbeam_channel::bounded::<()>(1);
        std::thread::Builder::new()
            .name("gt-compile".into())
            .spawn(move || {
                let _ = ready_tx.send(());
                while let Ok(work) = rx.recv() {
                    work();
                }
            })?;
        let _ = ready.recv();
        Ok(Background { jobs })
    }
}

enum Entry {
    Pending(Slot),
    Ready(Arc<Plan>, Perf),
    Off,
}

struct Perf {
    eager_best_ns: u64,
    /// The best compiled run after the first, forcing included (`u64::MAX` before one).
    compiled_best_ns: u64,
    /// Forcing time not yet added to a run.
    forced_ns: u64,
    runs: u32,
}

/// What the cache has for a signature.
pub enum Lookup {
    /// Nothing yet: compile it.
    Missing,
    /// Being compiled: run eagerly.
    Pending,
    /// Compiled.
    Ready(Arc<Plan>),
    /// Failed or disabled: run eagerly and stop buffering it.
    Off,
}

/// Plans by signature, and the compiler's counters.
pub struct PlanCache {
    entries: FxHashMap<u64, Entry>,
    /// Per signature: the best eager instance (ns) and how many were timed.
    eager_ns: FxHashMap<u64, (u64, u32)>,
    /// `None`: compile on the caller's thread (`inline`, or no thread could be started).
    background: Option<Background>,
    /// Compiles waiting for the worker's idle time, oldest first ([`PlanCache::start_build`]).
    idle: Vec<(u64, Work)>,
    keep_slower: bool,
    /// The counters reported in `WorkerStats::compile`.
    pub stats: CompileStats,
}

impl PlanCache {
    /// An empty cache; `inline` compiles on the caller's thread; `keep_slower` turns the
    /// regression guard off.
    pub fn new(inline: bool, keep_slower: bool) -> PlanCache {
        let background = if inline {
            None
        } else {
            match Background::start() {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!(target: "gt::compile", "no compile thread ({e}): compiling on the worker's thread");
                    None
                }
            }
        };
        PlanCache {
            entries: FxHashMap::default(),
            eager_ns: FxHashMap::default(),
            background,
            idle: Vec::new(),
            keep_slower,
            stats: CompileStats::default(),
        }
    }

    /// The state of `sig`, collecting a finished background compile.
    pub fn lookup(&mut self, sig: u64) -> Lookup {
        let Some(e) = self.entries.get_mut(&sig) else {
            return Lookup::Missing;
        };
        if let Entry::Pending(slot) = e {
            if let Some(at) = self.idle.iter().position(|(s, _)| *s == sig) {
                // Needed now: compile it (or hand it to the compile thread) right away.
                let (_, work) = self.idle.remove(at);
                work();
            }
            let done = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some(done) = done else {
                return Lookup::Pending;
            };
            *e = match done {
                Ok(p) => {
                    self.stats.traces_compiled += 1;
                    self.stats.compile_time_us += p.compile_us;
                    self.stats.fused_loops += p.loops.0 as u64;
                    self.stats.fused_instructions += p.loops.1 as u64;
                    self.stats.dead_instructions += p.dead as u64;
                    self.stats.folded_instructions += p.folded as u64;
                    tracing::debug!(target: "gt::compile", "trace {sig:016x}: {} instructions, {} dead, {} constant, {} loops fusing {}, compiled in {} µs", p.instructions, p.dead, p.folded, p.loops.0, p.loops.1, p.compile_us);
                    let perf = Perf {
                        eager_best_ns: self.eager_ns.get(&sig).map_or(0, |e| e.0),
                        compiled_best_ns: u64::MAX,
                        forced_ns: 0,
                        runs: 0,
                    };
                    Entry::Ready(Arc::new(p), perf)
                }
                Err(msg) => {
                    self.stats.fallbacks += 1;
                    tracing::debug!(target: "gt::compile", "trace {sig:016x} runs eagerly: {msg}");
                    Entry::Off
                }
            };
        }
        match self.entries.get(&sig) {
            Some(Entry::Ready(p, _)) => Lookup::Ready(p.clone()),
            Some(Entry::Off) => Lookup::Off,
            Some(Entry::Pending(_)) => Lookup::Pending,
            None => Lookup::Missing,
        }
    }

    /// Waits for a pending compile of `sig` while that is likely to pay: at most half of its
    /// best eager instance (a wait that long still pays when the plan is twice as fast; most
    /// compiles take far less) and never over [`MAX_WAIT`]. Returns what
    /// [`PlanCache::lookup`] says at the end.
    ///
    /// Why: the compile of the instance just recorded runs on the compile thread while the
    /// client already sends the next one. Taken at the first instruction, the lookup almost
    /// always finds it pending (12–30 µs for a trace without loops), so one more instance ran
    /// eagerly: a 512x512 matmul chain (8.8 ms eager, 3.1 ms compiled) ran its first compiled
    /// iteration one later in three fresh runtimes out of four.
    pub fn wait(&mut self, sig: u64) -> Lookup {
        let budget = self
            .eager_ns
            .get(&sig)
            .map_or(Duration::ZERO, |&(ns, _)| Duration::from_nanos(ns / 2))
            .min(MAX_WAIT);
        let start = Instant::now();
        loop {
            let l = self.lookup(sig);
            if !matches!(l, Lookup::Pending) || start.elapsed() >= budget {
                return l;
            }
            std::thread::yield_now();
        }
    }

    /// The ready plan for `sig`, if any (without collecting a pending compile).
    pub fn ready(&self, sig: u64) -> Option<Arc<Plan>> {
        match self.entries.get(&sig) {
            Some(Entry::Ready(p, _)) => Some(p.clone()),
            _ => None,
        }
    }

    /// Whether compiled runs of `sig` are still being timed (the regression guard decides after
    /// its first few; later runs skip the clock reads).
    pub fn timing(&self, sig: u64) -> bool {
        match self.entries.get(&sig) {
            Some(Entry::Ready(_, perf)) => perf.runs < GUARD_RUNS,
            _ => false,
        }
    }

    /// Starts compiling `job` (in the background unless the cache compiles inline).
    pub fn start(&mut self, job: CompileJob) {
        self.start_build(job.sig, move || Some(job));
    }

    /// Starts compiling the job `build` makes for `sig`. With a compile thread, the job waits
    /// for the worker's next idle moment ([`PlanCache::run_idle`]) or the first lookup that
    /// needs it, whichever comes first: there it is built, and compiled on the spot unless the
    /// plan will JIT fused loops, which the compile thread does
    /// ([`program::compile_unless_jit`]).
    /// `None` from `build` (the recorded instance holds something a plan cannot) blacklists
    /// the signature like a failed compile: the stream stops recording it.
    ///
    /// Why not always the compile thread: a trace without loops compiles in 7–30 µs, less than
    /// handing it over costs (4–29 µs, mostly the thread's wake-up), and on a small machine
    /// the compile thread takes a core from the client or the worker at the moment the next
    /// instance starts. The worker is idle right after it answers the read that ended the
    /// recorded instance, while the client prepares the next one.
    pub fn start_build(
        &mut self,
        sig: u64,
        build: impl FnOnce() -> Option<CompileJob> + Send + 'static,
    ) {
        self.stats.cache_misses += 1;
        let slot: Slot = Arc::new(Mutex::new(None));
        self.entries.insert(sig, Entry::Pending(slot.clone()));
        let Some(b) = &self.background else {
            return finish(&slot, guarded(|| plan(compile(built(build)?))));
        };
        let jobs = b.jobs.clone();
        let work: Work = Box::new(move || {
            let quick = guarded(|| Ok(program::compile_unless_jit(built(build)?)));
            let job = match quick {
                Ok(Err(job)) => job,
                Ok(Ok(p)) => return finish(&slot, plan(p)),
                Err(e) => return finish(&slot, Err(e)),
            };
            let background: Work = Box::new(move || finish(&slot, guarded(|| plan(compile(*job)))));
            if let Err(e) = jobs.send(background) {
                // The thread is gone (it only ends with the channel): compile here.
                tracing::warn!(target: "gt::compile", "the compile thread stopped: compiling on the worker's thread");
                (e.into_inner())();
            }
        });
        self.idle.push((sig, work));
    }

    /// Whether a compile waits for idle time ([`PlanCache::run_idle`]).
    pub fn has_idle_work(&self) -> bool {
        !self.idle.is_empty()
    }

    /// Runs the oldest compile waiting for idle time; `false` if there was none.
    pub fn run_idle(&mut self) -> bool {
        if self.idle.is_empty() {
            return false;
        }
        let (_, work) = self.idle.remove(0);
        work();
        true
    }

    /// Counts a stream finding a plan another stream (or an earlier run) made.
    pub fn hit(&mut self) {
        self.stats.cache_hits += 1;
    }

    /// Records an eager run of the trace (the baseline of the regression guard).
    pub fn record_eager(&mut self, sig: u64, ns: u64) {
        let e = self.eager_ns.entry(sig).or_insert((u64::MAX, 0));
        e.0 = e.0.min(ns);
        e.1 += 1;
        if let Some(Entry::Ready(_, perf)) = self.entries.get_mut(&sig) {
            perf.eager_best_ns = e.0;
        }
    }

    /// Whether the next instance of `sig` should run eagerly, timed, before the regression guard
    /// decides: its last compiled run is next, it has fewer than [`EAGER_SAMPLES`] eager
    /// instances to compare with, and a baseline [`COLD`] times too slow could change the
    /// verdict. The instance a plan is usually compiled from is the loop's second iteration,
    /// still cold (buffers not yet pooled, caches cold): the seed-size mixed step took ~30 µs
    /// there against ~20 µs later, a "best" that would let a plan up to 1.5x slower than eager
    /// pass. A plan clearly faster than that (the 512x512 matmul chain: 2.9 against 8 ms) is
    /// not made to run an eager instance for nothing.
    pub fn wants_eager_sample(&self, sig: u64) -> bool {
        let Some(Entry::Ready(_, perf)) = self.entries.get(&sig) else {
            return false;
        };
        !self.keep_slower
            && perf.runs == GUARD_RUNS - 1
            && self.eager_ns.get(&sig).map_or(0, |e| e.1) < EAGER_SAMPLES
            && perf.compiled_best_ns as f64 * COLD > perf.eager_best_ns as f64
    }

    /// Records a compiled run; returns true when the plan was just disabled as slower than eager.
    pub fn record_compiled(&mut self, sig: u64, ns: u64, instructions: u64) -> bool {
        self.stats.compiled_runs += 1;
        self.stats.compiled_instructions += instructions;
        let Some(Entry::Ready(_, perf)) = self.entries.get_mut(&sig) else {
            return false;
        };
        if perf.runs >= GUARD_RUNS {
            // Decided; later runs are not timed (`timing`).
            return false;
        }
        perf.runs += 1;
        let forced = std::mem::take(&mut perf.forced_ns);
        if perf.runs > 1 {
            perf.compiled_best_ns = perf.compiled_best_ns.min(ns + forced);
        }
        let best = perf.compiled_best_ns;
        let slower = !self.keep_slower
            && perf.eager_best_ns > 0
            && perf.eager_best_ns != u64::MAX
            && perf.runs == GUARD_RUNS
            && best as f64 > perf.eager_best_ns as f64 * GUARD_SLOWER;
        if perf.runs == GUARD_RUNS {
            tracing::debug!(target: "gt::compile", "trace {sig:016x}: compiled {best} ns per run (best, forcing included), eager {} ns (best){}", perf.eager_best_ns, if slower { ": disabled" } else { "" });
        }
        if slower {
            self.entries.insert(sig, Entry::Off);
            self.stats.disabled += 1;
        }
        slower
    }

    /// The runs of `sig` changed (which results it defers): time them afresh, since the runs
    /// measured so far paid for values computed on demand while the worker learned.
    pub fn restart_guard(&mut self, sig: u64) {
        if let Some(Entry::Ready(_, perf)) = self.entries.get_mut(&sig) {
            perf.runs = 0;
            perf.compiled_best_ns = u64::MAX;
            perf.forced_ns = 0;
        }
    }

    /// Time spent computing deferred values of `sig` (counted into its next timed run).
    pub fn record_forced(&mut self, sig: u64, ns: u64) {
        if let Some(Entry::Ready(_, perf)) = self.entries.get_mut(&sig) {
            if perf.runs < GUARD_RUNS {
                perf.forced_ns += ns;
            }
        }
    }

    /// Counts a buffered prefix flushed eagerly.
    pub fn deviation(&mut self) {
        self.stats.deviations += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::program::PlanOp;
    use crate::compile::trace::{Arg, Bound};
    use gt_core::{DType, Key, SessionId};
    use gt_ops::{Meta, Op};

    fn job(k: usize) -> CompileJob {
        let m = |r, c| Meta {
            shape: [r, c].into(),
            dtype: DType::F32,
        };
        CompileJob {
            sig: 7,
            ops: vec![PlanOp::Exec(Op::MatMul, 2)],
            bound: Bound {
                args: vec![Arg::Ext(0), Arg::Ext(1)],
                ext: vec![Key::new(SessionId(1), 1), Key::new(SessionId(1), 2)],
                free_ext: vec![],
                live: vec![(0, Key::new(SessionId(1), 3))],
            },
            ext_metas: vec![m(2, 3), m(k, 4)],
        }
    }

    /// A cache holding the compiled plan of `job(3)` (signature 7) and one eager instance of
    /// `eager_ns`.
    fn ready(eager_ns: u64, keep_slower: bool) -> PlanCache {
        let mut c = PlanCache::new(true, keep_slower);
        c.start(job(3));
        c.record_eager(7, eager_ns);
        assert!(matches!(c.lookup(7), Lookup::Ready(_)));
        c
    }

    /// Two elementwise ops over 128x128 floats, which fusion puts in one JIT-compiled loop.
    fn fusable_job() -> CompileJob {
        use gt_ops::UnaryOp;
        CompileJob {
            sig: 8,
            ops: vec![
                PlanOp::Exec(Op::Unary(UnaryOp::Neg), 1),
                PlanOp::Exec(Op::Unary(UnaryOp::Exp), 1),
            ],
            bound: Bound {
                args: vec![Arg::Ext(0), Arg::Node(0)],
                ext: vec![Key::new(SessionId(1), 1)],
                free_ext: vec![],
                live: vec![(1, Key::new(SessionId(1), 3))],
            },
            ext_metas: vec![Meta {
                shape: [128, 128].into(),
                dtype: DType::F32,
            }],
        }
    }

    #[test]
    fn plans_without_loops_compile_in_idle_time_and_loops_on_the_compile_thread() {
        assert!(matches!(program::compile_unless_jit(job(3)), Ok(Ok(_))));
        assert!(program::compile_unless_jit(fusable_job()).is_err());
        // Queued for the worker's idle time, which compiles it.
        let mut c = PlanCache::new(false, false);
        c.start(job(3));
        assert!(c.has_idle_work());
        assert!(c.run_idle());
        assert!(!c.has_idle_work() && !c.run_idle());
        assert!(matches!(c.lookup(7), Lookup::Ready(_)));
        // Or by the first lookup that needs it.
        let mut c = PlanCache::new(false, false);
        c.start(job(3));
        assert!(matches!(c.lookup(7), Lookup::Ready(_)));
        assert!(!c.has_idle_work());
        // A failing one is blacklisted either way.
        c.start(CompileJob { sig: 9, ..job(5) });
        assert!(c.run_idle());
        assert!(matches!(c.lookup(9), Lookup::Off));
        // One with a loop to JIT is handed to the compile thread at idle time.
        c.start(fusable_job());
        assert!(c.run_idle());
        let t0 = std::time::Instant::now();
        let plan = loop {
            match c.lookup(8) {
                Lookup::Ready(p) => break p,
                Lookup::Pending => {}
                _ => panic!("the fused trace did not compile"),
            }
            assert!(
                t0.elapsed().as_secs() < 60,
                "the compile thread never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!(plan.loops, (1, 2));
    }

    #[test]
    fn a_failed_compile_is_blacklisted_and_counted() {
        let mut c = PlanCache::new(true, false);
        assert!(matches!(c.lookup(7), Lookup::Missing));
        c.start(job(5)); // 2x3 @ 5x4: shape inference fails
        assert!(matches!(c.lookup(7), Lookup::Off));
        assert_eq!((c.stats.fallbacks, c.stats.traces_compiled), (1, 0));
        // A recorded instance no plan can hold is blacklisted the same way.
        let mut none = PlanCache::new(true, false);
        none.start_build(7, || None);
        assert!(matches!(none.lookup(7), Lookup::Off));
        assert_eq!(none.stats.fallbacks, 1);
        // In the background too (a real compile thread).
        let mut bg = PlanCache::new(false, false);
        bg.start(job(3));
        let t0 = std::time::Instant::now();
        while matches!(bg.lookup(7), Lookup::Pending) {
            assert!(
                t0.elapsed().as_secs() < 60,
                "the compile thread never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(matches!(bg.lookup(7), Lookup::Ready(_)));
        let mut ok = PlanCache::new(true, false);
        ok.start(job(3));
        assert!(matches!(ok.lookup(7), Lookup::Ready(_)));
        assert_eq!((ok.stats.cache_misses, ok.stats.traces_compiled), (1, 1));
    }

    #[test]
    fn a_plan_slower_than_eager_is_disabled() {
        let mut c = ready(1_000, false);
        let disabled: Vec<bool> = (0..GUARD_RUNS)
            .map(|_| c.record_compiled(7, 5_000, 1))
            .collect();
        assert_eq!(disabled.last(), Some(&true));
        assert!(matches!(c.lookup(7), Lookup::Off));
        assert_eq!(c.stats.disabled, 1);
    }

    #[test]
    fn a_cold_eager_baseline_gets_a_second_sample_before_the_guard_decides() {
        // The instance the plan was compiled from: cold, 1.5x the steady eager time.
        let mut c = ready(1_500, false);
        let mut asked = Vec::new();
        for _ in 0..GUARD_RUNS - 1 {
            asked.push(c.wants_eager_sample(7));
            assert!(!c.record_compiled(7, 1_200, 1));
        }
        // Before the last guard run: one eager instance, which is faster than the plan.
        assert_eq!(asked, vec![false; GUARD_RUNS as usize - 1]);
        assert!(c.wants_eager_sample(7));
        c.record_eager(7, 1_000);
        assert!(!c.wants_eager_sample(7));
        assert!(c.record_compiled(7, 1_200, 1), "1.2x slower than eager");
        // A plan far faster than even a cold baseline needs no second sample.
        let mut fast = ready(1_500, false);
        for _ in 0..GUARD_RUNS - 1 {
            assert!(!fast.record_compiled(7, 500, 1));
        }
        assert!(!fast.wants_eager_sample(7));
        // With `keep_slower` no sample is asked for.
        let mut keep = ready(1_500, true);
        for _ in 0..GUARD_RUNS - 1 {
            keep.record_compiled(7, 1_200, 1);
        }
        assert!(!keep.wants_eager_sample(7));
    }

    #[test]
    fn forcing_counts_against_a_plan_and_the_first_run_does_not() {
        // Fast runs whose deferred values cost more later: disabled.
        let mut c = ready(1_000, false);
        let mut disabled = false;
        for _ in 0..GUARD_RUNS {
            c.record_forced(7, 900);
            disabled = c.record_compiled(7, 300, 1);
        }
        assert!(disabled);
        // A slow first run (cold caches) and fast later ones: kept.
        let mut c = ready(1_000, false);
        let runs: Vec<bool> = (0..GUARD_RUNS)
            .map(|i| c.record_compiled(7, if i == 0 { 50_000 } else { 600 }, 1))
            .collect();
        assert!(runs.iter().all(|d| !d));
        assert!(matches!(c.lookup(7), Lookup::Ready(_)));
        // Slow warm-up runs after the first (forcing, the buffer pool filling), then fast
        // ones: the best decides, as it does on the eager side.
        let mut c = ready(1_000, false);
        let warm = [50_000, 30_000, 52_000, 25_000];
        let runs: Vec<bool> = (0..GUARD_RUNS as usize)
            .map(|i| c.record_compiled(7, warm.get(i).copied().unwrap_or(800), 1))
            .collect();
        assert!(runs.iter().all(|d| !d));
        assert!(matches!(c.lookup(7), Lookup::Ready(_)));
        // `keep_slower` keeps even a slow plan.
        let mut c = ready(1_000, true);
        assert!((0..GUARD_RUNS).all(|_| !c.record_compiled(7, 5_000, 1)));
    }
}
