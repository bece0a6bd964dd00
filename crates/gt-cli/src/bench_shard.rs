//! `gt bench shard`: what sharding buys. Two workloads run on an embedded runtime with one worker
//! and with two workers, every worker limited to one compute thread, the same program and the
//! same sharding config (`batch` shards axis 0, `params` replicates):
//! - a matmul chain: `x ← tanh(x @ w)` a number of times with `x` row-sharded (data parallel,
//!   no transfers between steps);
//! - an MLP training step: forward, MSE loss, backward and an SGD update with a row-sharded
//!   batch and replicated weights (the weight gradients are partial sums, all-reduced by the
//!   update).
//!
//! Each is timed until a scalar computed from the result has been read back (best of
//! `--repeats`); the speedup is the 1-worker time over the 2-worker time in the same run.

use anyhow::Result;
use gt::config::Config;
use gt::runtime::Embedded;
use gt::{DType, Session, ShardConfig, Tensor};
use std::time::Instant;

const CONFIG: &str = "
batch:
  shard:
    axis: 0
  backward: batch
params:
  shard:
    replicated: true
";

fn runtime(workers: usize, cfg: &Config) -> Result<Embedded> {
    let c = Config {
        sharding: std::sync::Arc::new(ShardConfig::from_yaml(CONFIG)?),
        instruction_log: None,
        ..cfg.clone()
    };
    Ok(Embedded::start(workers, 1, &c)?)
}

fn scoped<T>(s: &Session, name: &str, f: impl FnOnce() -> T) -> T {
    s.scope_enter(name);
    let out = f();
    s.scope_exit();
    out
}

/// Seconds for `steps` links of the matmul chain on an `n x d` batch.
fn chain(s: &Session, n: usize, d: usize, steps: usize) -> Result<f64> {
    let x = scoped(s, "batch", || s.try_randn([n, d], DType::F32))?;
    let w = scoped(s, "params", || s.try_randn([d, d], DType::F32))?;
    let w = w.try_mul_scalar(1.0 / (d as f64).sqrt())?;
    x.sum().item()?;
    let t = Instant::now();
    let mut y = x;
    for _ in 0..steps {
        y = y.try_matmul(&w)?.try_tanh()?;
    }
    y.sum().item()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Seconds for `steps` MLP training steps (`d → h → o`, batch `n`).
fn mlp(s: &Session, n: usize, d: usize, h: usize, o: usize, steps: usize) -> Result<f64> {
    let (x, target) = scoped(s, "batch", || -> Result<(Tensor, Tensor)> {
        Ok((
            s.try_randn([n, d], DType::F32)?,
            s.try_randn([n, o], DType::F32)?,
        ))
    })?;
    let (mut w1, mut w2) = scoped(s, "params", || -> Result<(Tensor, Tensor)> {
        Ok((
            s.try_randn([d, h], DType::F32)?
                .try_mul_scalar(1.0 / (d as f64).sqrt())?,
            s.try_randn([h, o], DType::F32)?
                .try_mul_scalar(1.0 / (h as f64).sqrt())?,
        ))
    })?;
    let lr = 0.01;
    let step = |w1: &mut Tensor, w2: &mut Tensor| -> Result<Tensor> {
        let (a, b) = (w1.requires_grad_(true)?, w2.requires_grad_(true)?);
        let hidden = x.try_matmul(&a)?.try_relu()?;
        let diff = hidden.try_matmul(&b)?.try_sub(&target)?;
        let loss = diff.try_mul(&diff)?.mean();
        // `backward: batch`: the loss gradient's seed is replicated, not scattered.
        loss.backward()?;
        let (ga, gb) = (a.grad().expect("grad"), b.grad().expect("grad"));
        *w1 = a.detach().try_sub(&ga.try_mul_scalar(lr)?)?;
        *w2 = b.detach().try_sub(&gb.try_mul_scalar(lr)?)?;
        Ok(loss.detach())
    };
    step(&mut w1, &mut w2)?.item()?;
    let t = Instant::now();
    let mut last = None;
    for _ in 0..steps {
        last = Some(step(&mut w1, &mut w2)?);
    }
    if let Some(l) = last {
        l.item()?;
    }
    Ok(t.elapsed().as_secs_f64())
}

struct Row {
    name: &'static str,
    one: f64,
    two: f64,
}

pub fn run(json: bool, repeats: usize, cfg: &Config) -> Result<()> {
    let (n, d, steps) = (2048, 512, 8);
    let (mn, md, mh, mo, msteps) = (4096, 256, 512, 128, 4);
    let mut rows = [
        Row {
            name: "matmul chain",
            one: f64::INFINITY,
            two: f64::INFINITY,
        },
        Row {
            name: "mlp train step",
            one: f64::INFINITY,
            two: f64::INFINITY,
        },
    ];
    let (rt1, rt2) = (runtime(1, cfg)?, runtime(2, cfg)?);
    let (s1, s2) = (rt1.session("bench-shard-1")?, rt2.session("bench-shard-2")?);
    let mut stats = None;
    for r in 0..repeats.max(1) {
        if !json {
            eprintln!("  round {} of {}…", r + 1, repeats.max(1));
        }
        rows[0].one = rows[0].one.min(chain(&s1, n, d, steps)?);
        rows[0].two = rows[0].two.min(chain(&s2, n, d, steps)?);
        rows[1].one = rows[1].one.min(mlp(&s1, mn, md, mh, mo, msteps)?);
        rows[1].two = rows[1].two.min(mlp(&s2, mn, md, mh, mo, msteps)?);
        stats = Some(s2.dispatcher_stats()?);
    }
    let stats = stats.expect("at least one round");
    if json {
        let out = serde_json::json!({
            "threads_per_worker": 1,
            "matmul_chain": { "batch": n, "dim": d, "steps": steps,
                "one_worker_s": rows[0].one, "two_workers_s": rows[0].two,
                "speedup": rows[0].one / rows[0].two },
            "mlp_step": { "batch": mn, "dims": [md, mh, mo], "steps": msteps,
                "one_worker_s": rows[1].one, "two_workers_s": rows[1].two,
                "speedup": rows[1].one / rows[1].two },
            "two_worker_shard_stats": {
                "sharded_ops": stats.shard.sharded_ops,
                "transfers": stats.shard.transfers,
                "bytes_moved": stats.shard.bytes_moved,
                "all_reduces": stats.shard.all_reduces,
            },
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "gt bench shard: 1 vs 2 workers, 1 compute thread each, best of {}",
        repeats.max(1)
    );
    println!(
        "{:<16} {:>14} {:>14} {:>9}",
        "workload", "1 worker (s)", "2 workers (s)", "speedup"
    );
    for r in &rows {
        println!(
            "{:<16} {:>14.3} {:>14.3} {:>8.2}x",
            r.name,
            r.one,
            r.two,
            r.one / r.two
        );
    }
    println!(
        "  matmul chain: x[{n}x{d}] @ w[{d}x{d}], {steps} links; mlp: batch {mn}, {md}→{mh}→{mo}, {msteps} steps"
    );
    println!(
        "  2-worker session: {} sharded ops, {} transfers, {:.1} MB moved, {} all-reduces",
        stats.shard.sharded_ops,
        stats.shard.transfers,
        stats.shard.bytes_moved as f64 / 1e6,
        stats.shard.all_reduces
    );
    Ok(())
}
