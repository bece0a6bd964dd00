//! `gt bench compile`: seed 002's compilation benchmark. Four workloads with the shapes of the
//! prototype's `compilation_benchmark.py` (and `anchor_bench.py`) — Simple Matmul Chain, MLP
//! Training Step, Attention Block, Mixed Operations — each iteration forward + backward (+ SGD
//! for the MLP) ending with a read of the loss, run on an embedded runtime with compilation off
//! and then on (`GT_AUTO_COMPILE` semantics, default threshold), in the same process. Prints the
//! seed's table per workload, larger variants with `--large`, and the detector's cost per
//! instruction.
//!
//! Each workload runs in several rounds, each on a fresh pair of runtimes. On a small shared
//! machine a runtime's threads settle into a placement that lasts its lifetime, and a bad one
//! makes a whole run up to 2x slower (this VM: one round's MLP ratio 0.56x, the next 1.03x), so
//! one pair of runtimes measures the placement more than the compiler. The table shows the mean
//! run (iteration `i` averaged over rounds) and lists every round's steady-state speedup.
//!
//! It also shows each side's worker busy time per iteration (`WorkerStats::busy_ns` before and
//! after the timed loop): the executor's work without its waiting, which the placement noise
//! barely touches, so it shows what compilation saves the worker even at seed sizes, where the
//! client's share of an iteration hides it in the wall time.

use anyhow::Result;
use gt::config::{Config, HotPathConfig};
use gt::nn::Param;
use gt::optim::{Optimizer, Sgd};
use gt::runtime::Embedded;
use gt::{DType, Session, Tensor};
use std::time::Instant;

/// One iteration of a workload (ends with a read of its loss).
pub(crate) type Step = Box<dyn FnMut() -> Result<f64>>;
type Build = fn(&Session, usize) -> Result<Step>;

fn leaf(s: &Session, shape: &[usize]) -> Result<Tensor> {
    Ok(s.try_randn(shape.to_vec(), DType::F32)?
        .requires_grad_(true)?)
}

/// W1: a, b n×n fresh each step; x = a@b; x = x@b; x = x@b; loss = x.sum().
fn matmul_chain(s: &Session, n: usize) -> Result<Step> {
    let s = s.clone();
    Ok(Box::new(move || {
        let (a, b) = (leaf(&s, &[n, n])?, leaf(&s, &[n, n])?);
        let x = a.matmul(&b).matmul(&b).matmul(&b);
        let loss = x.sum();
        loss.backward()?;
        Ok(loss.item()?)
    }))
}

/// W2: Linear in→h relu →h/2 relu →10 (weights (in,out) randn·0.01, bias zeros), data
/// batch×in, MSE, SGD lr 0.01, zero grads.
pub(crate) fn mlp(s: &Session, scale: usize) -> Result<Step> {
    let (batch, d_in, h1, h2) = if scale == 1 {
        (16, 32, 64, 32)
    } else {
        (256, 1024, 1024, 512)
    };
    let mut params = Vec::new();
    for (i, o) in [(d_in, h1), (h1, h2), (h2, 10)] {
        let w = &s.try_randn([i, o], DType::F32)? * 0.01;
        params.push(Param::new(w));
        params.push(Param::new(s.try_full([o], 0.0, DType::F32)?));
    }
    let data = s.try_randn([batch, d_in], DType::F32)?;
    let target = s.try_randn([batch, 10], DType::F32)?;
    let mut opt = Sgd::new(params.clone(), 0.01);
    Ok(Box::new(move || {
        let p: Vec<Tensor> = params.iter().map(|p| p.get()).collect();
        let h = (data.matmul(&p[0]) + &p[1]).relu();
        let h = (h.matmul(&p[2]) + &p[3]).relu();
        let pred = h.matmul(&p[4]) + &p[5];
        let loss = (&pred - &target).pow_scalar(2.0).mean();
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        Ok(loss.item()?)
    }))
}

/// W3: x (4,16,d) → (64,d); wq wk wv d×d; scores = q@kᵀ; out = scores@v; loss = out.sum().
fn attention(s: &Session, d: usize) -> Result<Step> {
    let s = s.clone();
    Ok(Box::new(move || {
        let x = leaf(&s, &[4, 16, d])?;
        let (wq, wk, wv) = (leaf(&s, &[d, d])?, leaf(&s, &[d, d])?, leaf(&s, &[d, d])?);
        let xf = x.reshape(&[64, d as isize]);
        let (q, k, v) = (xf.matmul(&wq), xf.matmul(&wk), xf.matmul(&wv));
        let out = q.matmul(&k.t()).matmul(&v);
        let loss = out.sum();
        loss.backward()?;
        Ok(loss.item()?)
    }))
}

/// W4: a, b n×n; x = relu(a@b); x = x + a; x = x * b; x = x.sum(axis 1); loss = x.mean().
fn mixed(s: &Session, n: usize) -> Result<Step> {
    let s = s.clone();
    Ok(Box::new(move || {
        let (a, b) = (leaf(&s, &[n, n])?, leaf(&s, &[n, n])?);
        let x = a.matmul(&b).relu();
        let x = (&x + &a) * &b;
        let loss = x.sum_dims(&[1], false).mean();
        loss.backward()?;
        Ok(loss.item()?)
    }))
}

/// One side's run: seconds per iteration, the worker's busy seconds per iteration, and how
/// many plans the regression guard disabled.
type Side = (Vec<f64>, f64, u64);

/// Seconds per iteration of `iters` iterations of `build`, eager and compiled, each side on a
/// fresh runtime of its own that is shut down before the other side starts, with each side's
/// worker busy time per iteration (from `WorkerStats::busy_ns` before and after the loop: the
/// worker's work without the wall clock's scheduling noise). `on_first` picks
/// which side runs first; `gt bench compile` alternates it over rounds, so drifting load on the
/// machine and anything left behind by the first runtime affect both sides alike.
///
/// The sides used to run side by side on two live runtimes, stepped one iteration (later one
/// block of iterations) each. Since waiting threads poll for `gt_transport::parking::POLL`
/// (50 µs) before they sleep, that measured thread placement more than the compiler: three
/// polling threads (the client and two workers) on two cores, and whichever runtime's worker
/// shared the client's core lost by ~40%, alternating with the start order (round speedups of
/// 0.70, 1.46, 0.70, 1.47, 0.69 for the same workload). A program has one runtime; so does
/// each side here.
fn time(
    build: Build,
    size: usize,
    iters: usize,
    hot: HotPathConfig,
    threads: usize,
    on_first: bool,
) -> Result<(Side, Side)> {
    let busy = |s: &Session| -> Result<(u64, u64)> {
        let w = s.worker_stats()?;
        Ok((
            w.iter().map(|w| w.busy_ns).sum(),
            w.iter().map(|w| w.compile.disabled).sum(),
        ))
    };
    let side = |hotpath: HotPathConfig| -> Result<Side> {
        let cfg = Config {
            hotpath,
            ..Config::default()
        };
        let rt = Embedded::start(1, threads, &cfg)?;
        let s = rt.session("bench-compile")?;
        s.manual_seed(0);
        let mut step = build(&s, size)?;
        let mut times = Vec::with_capacity(iters);
        let (busy0, _) = busy(&s)?;
        for _ in 0..iters {
            let t = Instant::now();
            step()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let (busy1, disabled) = busy(&s)?;
        let worker = (busy1 - busy0) as f64 * 1e-9 / iters.max(1) as f64;
        drop(step);
        drop(s);
        drop(rt);
        Ok((times, worker, disabled))
    };
    Ok(if on_first {
        let on = side(hot)?;
        (side(HotPathConfig::default())?, on)
    } else {
        let off = side(HotPathConfig::default())?;
        (off, side(hot)?)
    })
}

/// What `gt bench compile` was asked for.
pub struct Opts {
    pub iters: usize,
    pub warmup: usize,
    pub json: bool,
    pub large: bool,
    pub rounds: usize,
    /// Both sides eager: the table then shows this machine's noise floor.
    pub aa: bool,
}

struct Row {
    name: String,
    warmup: usize,
    /// Seconds per iteration, averaged over rounds.
    off: Vec<f64>,
    on: Vec<f64>,
    /// Each round's steady-state speedup.
    round_speedups: Vec<f64>,
    /// Worker busy seconds per iteration of each side, averaged over rounds.
    busy: (f64, f64),
    /// Rounds in which the regression guard disabled a plan of the compiled side.
    disabled_rounds: usize,
    /// The compiled side's stats after a separate run of `.0` iterations ([`stats_after`]).
    stats: Option<(usize, gt::WorkerStats)>,
}

/// Iteration `i` averaged over the rounds (all of the same length).
fn mean_run(rounds: &[Vec<f64>]) -> Vec<f64> {
    let k = rounds.len().max(1) as f64;
    let n = rounds.first().map_or(0, Vec::len);
    (0..n)
        .map(|i| rounds.iter().map(|r| r[i]).sum::<f64>() / k)
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

impl Row {
    fn sums(&self) -> [(f64, f64); 3] {
        let w = self.warmup.min(self.off.len());
        let s = |v: &[f64]| v.iter().sum::<f64>();
        [
            (s(&self.off[..w]), s(&self.on[..w])),
            (s(&self.off[w..]), s(&self.on[w..])),
            (s(&self.off), s(&self.on)),
        ]
    }

    /// Median seconds per steady-state iteration of each side (robust to the scheduling spikes
    /// of a shared machine, which can double a single iteration).
    fn medians(&self) -> (f64, f64) {
        let w = self.warmup.min(self.off.len());
        (median(&self.off[w..]), median(&self.on[w..]))
    }

    /// The first iteration from which compiled cumulative time stays at or below eager's.
    fn break_even(&self) -> Option<usize> {
        let (mut a, mut b) = (0.0, 0.0);
        let mut since = None;
        for (i, (x, y)) in self.off.iter().zip(&self.on).enumerate() {
            a += x;
            b += y;
            match (b <= a, since) {
                (true, None) => since = Some(i + 1),
                (false, _) => since = None,
                _ => {}
            }
        }
        since
    }

    fn print(&self) {
        let n = self.off.len();
        let w = self.warmup.min(n);
        let [warm, steady, total] = self.sums();
        let ms = |x: f64| format!("{:.3}ms", x * 1e3);
        let line = |label: &str, (a, b): (f64, f64), k: usize| {
            let k = k.max(1) as f64;
            println!(
                "{label:<44}{:>14}{:>14}{:>10.2}x",
                ms(a / k),
                ms(b / k),
                if b > 0.0 { a / b } else { 0.0 }
            );
        };
        println!("\nWORKLOAD: {}", self.name);
        println!(
            "Iterations: {n} (warmup: {w}), mean of {} rounds on fresh runtimes",
            self.round_speedups.len()
        );
        println!("{}", "=".repeat(82));
        println!(
            "{:<44}{:>14}{:>14}{:>11}",
            "Results", "No Compile", "Compile", "Speedup"
        );
        println!("{}", "-".repeat(82));
        line(&format!("Warmup (first {w} iters):"), warm, 1);
        line("  Per iteration:", warm, w);
        line(
            &format!("Steady state (remaining {} iters):", n - w),
            steady,
            1,
        );
        line("  Per iteration:", steady, n - w);
        line("  Median iteration:", self.medians(), 1);
        line("  Worker busy per iteration:", self.busy, 1);
        println!("{}", "-".repeat(82));
        line("TOTAL TIME:", total, 1);
        line("Average per iteration:", total, n);
        let sp = total.0 / total.1.max(1e-12);
        let st = steady.0 / steady.1.max(1e-12);
        if sp >= 1.0 {
            println!("\nVERDICT: ✅ COMPILE WINS ({sp:.2}x faster overall)");
        } else {
            println!(
                "\nVERDICT: ❌ EAGER WINS (compile {:.2}x slower overall)",
                1.0 / sp
            );
        }
        let (mo, mc) = self.medians();
        println!(
            "         Steady-state: {st:.2}x (median iteration {:.2}x)",
            mo / mc.max(1e-12)
        );
        let rounds: Vec<String> = self
            .round_speedups
            .iter()
            .map(|x| format!("{x:.2}x"))
            .collect();
        println!(
            "         Rounds: {} (median {:.2}x)",
            rounds.join(" "),
            median(&self.round_speedups)
        );
        match self.break_even() {
            Some(k) => println!("         Break-even: iteration {k}"),
            None => println!("         Break-even: never within {n} iterations"),
        }
        if let Some((k, s)) = &self.stats {
            println!("         Stats of a separate compiled run of {k} iterations:");
            println!(
                "         Compiled traces: {}, compile time {} µs, compiled runs {}, fallbacks {}, disabled {}",
                s.compile.traces_compiled,
                s.compile.compile_time_us,
                s.compile.compiled_runs,
                s.compile.fallbacks,
                s.compile.disabled
            );
            println!(
                "         Run ahead: {} instances predicted, {} as predicted, {} not",
                s.compile.ahead_runs, s.compile.ahead_hits, s.compile.ahead_misses
            );
            println!(
                "         Regression guard: disabled a plan in {} of {} rounds",
                self.disabled_rounds,
                self.round_speedups.len()
            );
        }
    }

    fn json(&self) -> serde_json::Value {
        let [warm, steady, total] = self.sums();
        let n = self.off.len();
        let w = self.warmup.min(n);
        serde_json::json!({
            "workload": self.name,
            "iters": n,
            "warmup": w,
            "eager_per_iter_ms": total.0 * 1e3 / n as f64,
            "compiled_per_iter_ms": total.1 * 1e3 / n as f64,
            "warmup_s": [warm.0, warm.1],
            "steady_s": [steady.0, steady.1],
            "total_s": [total.0, total.1],
            "steady_speedup": steady.0 / steady.1.max(1e-12),
            "steady_median_ms": [self.medians().0 * 1e3, self.medians().1 * 1e3],
            "steady_median_speedup": self.medians().0 / self.medians().1.max(1e-12),
            "total_speedup": total.0 / total.1.max(1e-12),
            "break_even_iter": self.break_even(),
            "iteration_ms": {
                "eager": self.off.iter().map(|x| x * 1e3).collect::<Vec<_>>(),
                "compiled": self.on.iter().map(|x| x * 1e3).collect::<Vec<_>>(),
            },
            "round_steady_speedups": self.round_speedups,
            "worker_busy_ms_per_iter": [self.busy.0 * 1e3, self.busy.1 * 1e3],
            "round_steady_speedup_median": median(&self.round_speedups),
            "guard_disabled_rounds": self.disabled_rounds,
            "compile": self.stats.as_ref().map(|(k, s)| serde_json::json!({
                "iterations": k,
                "traces_compiled": s.compile.traces_compiled,
                "compile_time_us": s.compile.compile_time_us,
                "compiled_runs": s.compile.compiled_runs,
                "fallbacks": s.compile.fallbacks,
                "disabled": s.compile.disabled,
                "ahead_runs": s.compile.ahead_runs,
                "ahead_hits": s.compile.ahead_hits,
                "ahead_misses": s.compile.ahead_misses,
            })),
        })
    }
}

/// The compiled side's stats after `iters` iterations (a separate short run, so the timed runs
/// contain no stats requests).
fn stats_after(
    build: Build,
    size: usize,
    iters: usize,
    hot: HotPathConfig,
    threads: usize,
) -> Result<gt::WorkerStats> {
    let cfg = Config {
        hotpath: hot,
        ..Config::default()
    };
    let rt = Embedded::start(1, threads, &cfg)?;
    let s = rt.session("bench-compile-stats")?;
    s.manual_seed(0);
    let mut step = build(&s, size)?;
    for _ in 0..iters {
        step()?;
    }
    Ok(s.worker_stats()?.remove(0))
}

/// Nanoseconds per instruction of the hot-path detector on a repeated 400-instruction step.
fn detector_ns() -> f64 {
    use gt_core::{Key, SessionId};
    use gt_ops::{BinaryOp, Op, UnaryOp};
    use gt_proto::WorkerMsg;
    use gt_worker::hotpath::detector::Params;
    let mut d = gt_worker::hotpath::StreamDetector::new(Params {
        threshold: 2,
        min_seq: 5,
        window: 256,
    });
    let meta = gt_ops::Meta {
        shape: [64, 64].into(),
        dtype: DType::F32,
    };
    let k = |n: u64| Key::new(SessionId(1), n);
    let mut id = 1000u64;
    let mut msgs = 0u64;
    let t = Instant::now();
    for _ in 0..250 {
        for j in 0..100 {
            let op = match j % 3 {
                0 => Op::MatMul,
                1 => Op::Binary(BinaryOp::Add),
                _ => Op::Unary(UnaryOp::Relu),
            };
            let inputs = if j % 3 == 2 {
                [k(id - 1)].into_iter().collect()
            } else {
                [k(id - 1), k(j % 7)].into_iter().collect()
            };
            std::hint::black_box(d.observe(
                &WorkerMsg::Exec {
                    out: k(id),
                    op,
                    inputs,
                },
                |_| Some(meta.clone()),
            ));
            std::hint::black_box(
                d.observe(&WorkerMsg::Free { key: k(id - 1) }, |_| Some(meta.clone())),
            );
            id += 1;
            msgs += 2;
        }
        d.sync();
    }
    t.elapsed().as_nanos() as f64 / msgs as f64
}

/// Runs the benchmark.
pub fn run(opts: Opts, cfg: &Config) -> Result<()> {
    let Opts {
        iters,
        warmup,
        json,
        large,
        rounds,
        aa,
    } = opts;
    let threads = cfg.threads_per_worker(1);
    let on = HotPathConfig {
        auto_compile: true,
        ..cfg.hotpath.clone()
    };
    let mut sets: Vec<(&str, Build, usize, usize)> = vec![
        ("Simple Matmul Chain", matmul_chain, 64, iters),
        ("MLP Training Step", mlp, 1, iters),
        ("Attention Block", attention, 64, iters),
        ("Mixed Operations", mixed, 32, iters),
    ];
    if large {
        let li = (iters / 5).max(warmup + 5);
        sets.extend([
            (
                "Simple Matmul Chain (512x512)",
                matmul_chain as Build,
                512,
                li,
            ),
            ("MLP Training Step (batch 256, width 1024)", mlp, 2, li),
            ("Attention Block (width 1024)", attention, 1024, li),
            ("Mixed Operations (512x512)", mixed, 512, li),
        ]);
    }
    let mut rows = Vec::new();
    for (name, build, size, n) in sets {
        let (mut offs, mut ons, mut round_speedups) = (Vec::new(), Vec::new(), Vec::new());
        let mut busy = (0.0, 0.0);
        let mut disabled_rounds = 0;
        for r in 0..rounds {
            if !json {
                eprint!("\r  {name}: round {}/{rounds}…", r + 1);
            }
            let side = if aa {
                HotPathConfig::default()
            } else {
                on.clone()
            };
            let ((off_t, off_b, _), (on_t, on_b, on_d)) =
                time(build, size, n, side, threads, r % 2 == 1)?;
            disabled_rounds += usize::from(on_d > 0);
            busy.0 += off_b / rounds as f64;
            busy.1 += on_b / rounds as f64;
            let w = warmup.min(n);
            let steady = |v: &[f64]| v[w..].iter().sum::<f64>();
            round_speedups.push(steady(&off_t) / steady(&on_t).max(1e-12));
            offs.push(off_t);
            ons.push(on_t);
        }
        if !json {
            eprint!("\r{}\r", " ".repeat(80));
        }
        let stats = if aa {
            None
        } else {
            let k = n.min(warmup + 5);
            stats_after(build, size, k, on.clone(), threads)
                .ok()
                .map(|s| (k, s))
        };
        let row = Row {
            name: if aa {
                format!("{name} [A/A: both sides eager]")
            } else {
                name.into()
            },
            warmup,
            off: mean_run(&offs),
            on: mean_run(&ons),
            round_speedups,
            busy,
            disabled_rounds,
            stats,
        };
        if !json {
            row.print();
        }
        rows.push(row);
    }
    let det = detector_ns();
    if json {
        let out = serde_json::json!({
            "workloads": rows.iter().map(Row::json).collect::<Vec<_>>(),
            "detector_ns_per_instruction": det,
            "threads": threads,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("\nHot-path detector: {det:.1} ns per instruction (target < 100 ns)");
    }
    Ok(())
}
