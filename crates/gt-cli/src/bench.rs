//! `gt bench ops`: the per-op cost of the runtime. Two loops — 10,000 × `a = a + b` on 16x16 and
//! 10,000 × a 64x64 matmul — through the embedded runtime, through dispatcher + worker processes
//! over TCP and over a Unix socket, and calling the CPU kernels directly. Each is timed until the
//! final value has been read back, so it measures work done, not work enqueued. A sync row times
//! the round trip of `x = x + 1; x.item()` on every path (the cost a loop pays per `loss.item()`).
//! The last rows are the instruction log's cost ([`crate::bench_log`]).

use crate::bench_log::{
    log_alone, log_alone_json, log_alone_line, logging, logging_json, logging_line, logging_step,
    logging_step_json, logging_step_line,
};
use crate::cluster::Cluster;
use anyhow::Result;
use clap::Subcommand;
use gt::config::Config;
use gt::runtime::Embedded;
use gt::{DType, Session};
use std::time::Instant;

/// Which benchmark to run.
#[derive(Subcommand)]
pub enum Which {
    /// Per-op overhead: small adds and matmuls through every path.
    Ops {
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Iterations of each loop.
        #[arg(long, default_value_t = 10_000)]
        iters: usize,
        /// Only the instruction-log rows (logging off vs on for an add loop and a training
        /// step, and the log alone).
        #[arg(long)]
        log_only: bool,
        /// Adds per round of the instruction-log row (9 rounds with the log off, 9 with it on);
        /// the training-step row runs a 25th as many steps.
        #[arg(long, default_value_t = 50_000)]
        log_iters: usize,
    },
    /// Sharding: a matmul chain and an MLP step on 1 vs 2 workers (1 thread each).
    Shard {
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Rounds; the best time of each is kept.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Seed 002's compilation benchmark: four workloads with compilation off and on.
    Compile {
        /// Iterations per workload and mode.
        #[arg(long, default_value_t = 100)]
        iters: usize,
        /// Iterations counted as warm-up in the table.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Print one JSON object instead of the tables.
        #[arg(long)]
        json: bool,
        /// Also run the larger variants (batch 256, width 1024).
        #[arg(long)]
        large: bool,
        /// Fresh pairs of runtimes per workload; the table shows their mean run.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// A/A run: both sides eager, so the "speedups" show this machine's noise floor.
        #[arg(long)]
        aa: bool,
    },
    /// Small matrix products: the CPU engine's register kernel vs the `gemm` crate.
    Matmul {
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Products per timed batch.
        #[arg(long, default_value_t = 20000)]
        iters: usize,
    },
    /// Fused elementwise loops: the Cranelift JIT and the blocked interpreter vs eager kernels.
    Jit {
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Threads for every path (eager kernels and fused loops split the work alike).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// PyTorch eager and the Python prototype, measured on these machines (see the README).
const PYTORCH_ADD_US: f64 = 2.0;
const PYTORCH_MATMUL_US: f64 = 9.1;

pub fn run(which: Which, cfg: &Config) -> Result<()> {
    match which {
        Which::Ops {
            json,
            log_only: true,
            log_iters,
            ..
        } => {
            let log_iters = log_iters.max(1);
            let row = logging(log_iters, cfg)?;
            let step = logging_step(log_iters, cfg)?;
            let alone = log_alone(log_iters)?;
            if json {
                let mut out = logging_json(&row);
                out["training_step"] = logging_step_json(&step, log_iters);
                out["alone"] = log_alone_json(alone);
                println!("{out}");
            } else {
                println!("{}", logging_line(&row));
                println!("{}", logging_step_line(&step));
                println!("{}", log_alone_line(alone));
            }
            Ok(())
        }
        Which::Ops {
            json,
            iters,
            log_only: false,
            log_iters,
        } => ops(json, iters.max(1), log_iters.max(1), cfg),
        Which::Shard { json, repeats } => crate::bench_shard::run(json, repeats, cfg),
        Which::Compile {
            iters,
            warmup,
            json,
            large,
            rounds,
            aa,
        } => crate::bench_compile::run(
            crate::bench_compile::Opts {
                iters: iters.max(1),
                warmup,
                json,
                large,
                rounds: rounds.max(1),
                aa,
            },
            cfg,
        ),
        Which::Jit { json, threads } => crate::bench_jit::run(json, threads),
        Which::Matmul { json, iters } => crate::bench_matmul::run(json, iters),
    }
}

/// µs per op of the add loop on `s` (after a warm-up).
fn add_loop(s: &Session, iters: usize) -> Result<f64> {
    let warm = (iters / 10).clamp(1, 1000);
    let b = s.try_randn([16, 16], DType::F32)?;
    let mut a = s.try_zeros_like(&b)?;
    let time_add = |a: &mut gt::Tensor, n: usize| -> Result<f64> {
        let t = Instant::now();
        for _ in 0..n {
            *a = a.try_add(&b)?;
        }
        a.to_vec()?;
        Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
    };
    time_add(&mut a, warm)?;
    time_add(&mut a, iters)
}

/// µs per round trip of `x = x + 1; x.item()` on `s`: two streamed instructions and a read
/// answered through every thread hand-off (after a warm-up).
fn sync_loop(s: &Session, iters: usize) -> Result<f64> {
    let n = (iters / 10).max(10);
    let mut x = s.try_full([1], 0.0, DType::F32)?;
    let time = |x: &mut gt::Tensor, n: usize| -> Result<f64> {
        let t = Instant::now();
        for _ in 0..n {
            *x = x.try_add_scalar(1.0)?;
            x.item()?;
        }
        Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
    };
    time(&mut x, (n / 10).max(1))?;
    time(&mut x, n)
}

/// µs per op of the add loop and the matmul loop on `s`, and µs per sync round trip.
fn loops(s: &Session, iters: usize) -> Result<((f64, f64), f64)> {
    let warm = (iters / 10).clamp(1, 1000);
    let add_us = add_loop(s, iters)?;

    let x = s.try_randn([64, 64], DType::F32)?;
    let w = s.try_randn([64, 64], DType::F32)?;
    let time_mm = |n: usize| -> Result<f64> {
        let t = Instant::now();
        let mut c = x.try_matmul(&w)?;
        for _ in 1..n {
            c = x.try_matmul(&w)?;
        }
        c.to_vec()?;
        Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
    };
    time_mm(warm)?;
    let mm_us = time_mm(iters)?;
    Ok(((add_us, mm_us), sync_loop(s, iters)?))
}

fn ops(json: bool, iters: usize, log_iters: usize, cfg: &Config) -> Result<()> {
    let progress = |what: &str| {
        if !json {
            eprintln!("  measuring {what}…");
        }
    };
    progress("CPU kernels called directly");
    let kernels = gt_worker::cpu::bench_kernels(iters);

    progress("embedded runtime");
    let rt = Embedded::start(1, cfg.threads_per_worker(1), cfg)?;
    let embedded = loops(&rt.session("bench")?, iters)?;
    drop(rt);
    progress("embedded add loop with the instruction log off and on");
    let log_row = logging(log_iters, cfg)?;
    progress("a training step with the instruction log off and on");
    let step_row = logging_step(log_iters, cfg)?;
    let alone = log_alone(log_iters)?;

    let opts = gt_client::connect::ConnectOptions {
        token: cfg.token.clone(),
        ..Default::default()
    };
    progress("dispatcher + worker processes over TCP");
    let tcp = {
        let c = Cluster::start(&["--listen", "127.0.0.1:0"], 1, cfg.threads_per_worker(1))?;
        loops(&gt_client::connect(&c.addr, &opts)?, iters)?
    };
    progress("dispatcher + worker processes over a Unix socket");
    let unix = {
        let path = std::env::temp_dir().join(format!("gt-bench-{}.sock", std::process::id()));
        let c = Cluster::start(
            &["--unix", path.to_str().unwrap_or("/tmp/gt-bench.sock")],
            1,
            cfg.threads_per_worker(1),
        )?;
        loops(&gt_client::connect(&c.addr, &opts)?, iters)?
    };

    let syncs = [("embedded", embedded.1), ("tcp", tcp.1), ("unix", unix.1)];
    let (embedded, tcp, unix) = (embedded.0, tcp.0, unix.0);
    let rows = [
        ("kernels", kernels),
        ("embedded", embedded),
        ("tcp", tcp),
        ("unix", unix),
    ];
    if json {
        let pick = |f: fn(&(f64, f64)) -> f64| {
            serde_json::Value::Object(
                rows.iter()
                    .map(|(k, v)| (k.to_string(), serde_json::json!(f(v))))
                    .collect(),
            )
        };
        let mut logging_row = logging_json(&log_row);
        logging_row["training_step"] = logging_step_json(&step_row, log_iters);
        logging_row["alone"] = log_alone_json(alone);
        let out = serde_json::json!({
            "iters": iters,
            "add_16x16_us": pick(|v| v.0),
            "matmul_64x64_us": pick(|v| v.1),
            "sync_round_trip_us": serde_json::Value::Object(
                syncs.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect(),
            ),
            "logging": logging_row,
            "pytorch_eager_us": { "add_16x16": PYTORCH_ADD_US, "matmul_64x64": PYTORCH_MATMUL_US },
        });
        println!("{out}");
        return Ok(());
    }
    println!("gt bench ops: {iters} iterations per loop, timed until the final value is read back");
    println!(
        "{:<34} {:>18} {:>21}",
        "path", "add 16x16 (µs/op)", "matmul 64x64 (µs/op)"
    );
    let names = [
        "CPU kernels, called directly",
        "embedded runtime (in-process)",
        "dispatcher + worker over TCP",
        "dispatcher + worker over Unix",
    ];
    for (name, (_, (add, mm))) in names.iter().zip(rows.iter()) {
        println!("{name:<34} {add:>18.3} {mm:>21.3}");
    }
    println!(
        "{:<34} {:>18.3} {:>21.3}",
        "PyTorch eager (measured here)", PYTORCH_ADD_US, PYTORCH_MATMUL_US
    );
    println!(
        "sync round trip (x = x + 1; x.item()): embedded {:.1} µs, TCP {:.1} µs, Unix {:.1} µs",
        syncs[0].1, syncs[1].1, syncs[2].1
    );
    println!(
        "embedded vs PyTorch eager: {:.2}x on adds, {:.2}x on matmuls (higher is better)",
        PYTORCH_ADD_US / embedded.0,
        PYTORCH_MATMUL_US / embedded.1
    );
    println!("{}", logging_line(&log_row));
    println!("{}", logging_step_line(&step_row));
    println!("{}", log_alone_line(alone));
    Ok(())
}
