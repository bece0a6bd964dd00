//! `gt bench matmul`: the CPU engine's small-matmul kernel against the `gemm` crate, in one
//! run. Every product of the seed MLP training step (forward, both gradients of each layer,
//! with the transposed views autograd makes) plus a few edge shapes is timed through
//! `Engine::execute` twice — once with small products on the register kernel (the default),
//! once with every product on `gemm` — and the two results are compared element by element.

use anyhow::{bail, Result};
use gt_core::DType;
use gt_ops::{Dist, Op};
use gt_worker::cpu::{CpuEngine, CpuTensor};
use gt_worker::Engine;
use std::time::Instant;

/// One product: `m x k` @ `k x n`, each operand stored as given or as the transpose of a
/// row-major matrix (a permuted view, as `x.t()` makes).
struct Case {
    label: &'static str,
    m: usize,
    k: usize,
    n: usize,
    a_t: bool,
    b_t: bool,
}

const CASES: &[Case] = &[
    case("mlp fwd 1: x@W1", 16, 32, 64, false, false),
    case("mlp fwd 2: h@W2", 16, 64, 32, false, false),
    case("mlp fwd 3: h@W3", 16, 32, 10, false, false),
    case("mlp bwd: dy@W3^T", 16, 10, 32, false, true),
    case("mlp bwd: h^T@dy (W3)", 32, 16, 10, true, false),
    case("mlp bwd: dy@W2^T", 16, 32, 64, false, true),
    case("mlp bwd: h^T@dy (W2)", 64, 16, 32, true, false),
    case("mlp bwd: x^T@dy (W1)", 32, 16, 64, true, false),
    case("tall thin 100x7 @ 7x3", 100, 7, 3, false, false),
    case("row 1x64 @ 64x64", 1, 64, 64, false, false),
    case("square 64^3 (gemm)", 64, 64, 64, false, false),
];

const fn case(label: &'static str, m: usize, k: usize, n: usize, a_t: bool, b_t: bool) -> Case {
    Case {
        label,
        m,
        k,
        n,
        a_t,
        b_t,
    }
}

/// A random `rows x cols` operand, or the transposed view of a random `cols x rows` one.
fn operand(e: &mut CpuEngine, rows: usize, cols: usize, t: bool, stream: u64) -> Result<CpuTensor> {
    let stored = if t { [cols, rows] } else { [rows, cols] };
    let op = Op::Random {
        dist: Dist::Normal,
        shape: stored.as_slice().into(),
        dtype: DType::F32,
        seed: 11,
        stream,
    };
    let x = e.execute(&op, &[])?;
    if t {
        Ok(e.execute(
            &Op::Permute {
                perm: [1, 0].as_slice().into(),
            },
            &[&x],
        )?)
    } else {
        Ok(x)
    }
}

/// Nanoseconds per product: the best of five batches (after a warm-up batch), so a noisy
/// neighbour inflates no figure.
fn time(e: &mut CpuEngine, a: &CpuTensor, b: &CpuTensor, iters: usize) -> Result<f64> {
    let mut best = f64::INFINITY;
    for round in 0..6 {
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(e.execute(&Op::MatMul, &[a, b])?);
        }
        if round > 0 {
            best = best.min(t.elapsed().as_secs_f64() * 1e9 / iters as f64);
        }
    }
    Ok(best)
}

struct Row {
    label: &'static str,
    shape: String,
    kernel_ns: f64,
    gemm_ns: f64,
    max_diff: f32,
    identical: bool,
}

pub fn run(json: bool, iters: usize) -> Result<()> {
    let iters = iters.max(1);
    let (mut small, mut gemm) = (CpuEngine::new(1), CpuEngine::new(1));
    gemm.set_small_matmul(false);
    let mut rows = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let a = operand(&mut small, c.m, c.k, c.a_t, 2 * i as u64)?;
        let b = operand(&mut small, c.k, c.n, c.b_t, 2 * i as u64 + 1)?;
        let kernel_ns = time(&mut small, &a, &b, iters)?;
        let gemm_ns = time(&mut gemm, &a, &b, iters)?;
        let (got, want) = (
            small.execute(&Op::MatMul, &[&a, &b])?,
            gemm.execute(&Op::MatMul, &[&a, &b])?,
        );
        let (got, want) = (
            small.download(&got).to_f32_vec(),
            gemm.download(&want).to_f32_vec(),
        );
        let max_diff = got
            .iter()
            .zip(&want)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        if got.len() != want.len() || max_diff > 1e-5 * scale {
            bail!("{}: the kernel and gemm differ by {max_diff}", c.label);
        }
        rows.push(Row {
            label: c.label,
            shape: format!(
                "{}x{}{} @ {}x{}{}",
                c.m,
                c.k,
                if c.a_t { "ᵀ" } else { "" },
                c.k,
                c.n,
                if c.b_t { "ᵀ" } else { "" }
            ),
            kernel_ns,
            gemm_ns,
            max_diff,
            identical: got
                .iter()
                .zip(&want)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
        });
    }
    let (k_sum, g_sum) = rows[..8]
        .iter()
        .fold((0.0, 0.0), |(k, g), r| (k + r.kernel_ns, g + r.gemm_ns));
    if json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "case": r.label,
                    "shape": r.shape,
                    "engine_ns": r.kernel_ns,
                    "gemm_only_ns": r.gemm_ns,
                    "speedup": r.gemm_ns / r.kernel_ns,
                    "max_abs_diff": r.max_diff,
                    "bit_identical": r.identical,
                })
            })
            .collect();
        let step = serde_json::json!({ "engine_ns": k_sum, "gemm_only_ns": g_sum });
        println!("{}", serde_json::json!({ "cases": out, "mlp_step": step }));
        return Ok(());
    }
    println!("gt bench matmul: Engine::execute(MatMul), small products on the register kernel vs all on gemm; ns per product (best of 5 batches of {iters})");
    println!(
        "{:<24} {:<16} {:>9} {:>10} {:>8} {:>10}",
        "case", "shape", "engine", "gemm only", "speedup", "identical"
    );
    for r in &rows {
        println!(
            "{:<24} {:<16} {:>9.0} {:>10.0} {:>7.2}x {:>10}",
            r.label,
            r.shape,
            r.kernel_ns,
            r.gemm_ns,
            r.gemm_ns / r.kernel_ns,
            if r.identical {
                "yes".to_string()
            } else {
                format!("{:.1e}", r.max_diff)
            }
        );
    }
    println!(
        "{:<24} {:<16} {:>9.0} {:>10.0} {:>7.2}x",
        "seed MLP step (8 above)",
        "",
        k_sum,
        g_sum,
        g_sum / k_sum
    );
    Ok(())
}
