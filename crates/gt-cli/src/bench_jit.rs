//! `gt bench jit`: fused elementwise loops against the eager kernels, in one run. Each workload
//! is timed three ways on the same inputs — the eager CPU kernels (one `CpuEngine::execute` per
//! op, each writing a fresh pooled buffer), the blocked interpreter and the Cranelift JIT (one
//! pass writing a preallocated output, as a compiled trace with planned buffers does) — plus the
//! JIT's compile latency per kernel. Every fused result is checked bit for bit against eager.
//!
//! Workloads: `relu(x*y + 1)` over 16M f32 (memory-bound: three passes vs one), and two 4-op
//! chains at 64x64 (in cache, per-op overhead dominates) and 256x1024: the update
//! `x - 0.01*(v*0.9 + g)` (cheap ops, vectorized) and the gated activation `sigmoid(x*w + b) * x`
//! (a broadcast bias row and a transcendental, which the JIT calls per element).

use anyhow::{bail, Context, Result};
use gt_core::{DType, Shape};
use gt_ops::{BinaryOp, Dist, Op, UnaryOp};
use gt_worker::compile::loop_interp::interpret;
use gt_worker::compile::loop_ir::{LoopInput, LoopKernel, LoopNode, LoopSpec};
use gt_worker::compile::loop_jit::jit;
use gt_worker::cpu::{CpuEngine, CpuTensor};
use gt_worker::Engine;
use std::sync::Arc;
use std::time::Instant;

/// One workload: its eager op chain and the equivalent loop spec over the same inputs.
struct Workload {
    name: &'static str,
    inputs: Vec<CpuTensor>,
    spec: LoopSpec,
    /// Iterations per timed batch.
    iters: usize,
    /// Runs the chain eagerly, returning the final tensor.
    eager: fn(&mut CpuEngine, &[CpuTensor]) -> Result<CpuTensor>,
}

/// One row of results (times per iteration, in milliseconds).
struct Row {
    name: &'static str,
    elements: usize,
    eager_ms: f64,
    interp_ms: f64,
    jit_ms: f64,
    compile_ms: f64,
    identical: bool,
}

fn randn(e: &mut CpuEngine, shape: &[usize], stream: u64) -> Result<CpuTensor> {
    let op = Op::Random {
        dist: Dist::Normal,
        shape: shape.into(),
        dtype: DType::F32,
        seed: 7,
        stream,
    };
    Ok(e.execute(&op, &[])?)
}

fn input(t: &CpuTensor, shape: &Shape) -> LoopInput {
    LoopInput {
        dtype: t.dtype(),
        offset: t.layout().offset,
        strides: t.layout().broadcast_strides(shape).into_iter().collect(),
    }
}

/// `relu(x*y + 1)` over `[rows, cols]`.
fn relu_chain(e: &mut CpuEngine, rows: usize, cols: usize, iters: usize) -> Result<Workload> {
    let x = randn(e, &[rows, cols], 1)?;
    let y = randn(e, &[rows, cols], 2)?;
    let shape = x.shape().clone();
    let spec = LoopSpec {
        inputs: vec![input(&x, &shape), input(&y, &shape)],
        nodes: vec![
            LoopNode::Load(0),
            LoopNode::Load(1),
            LoopNode::Binary(BinaryOp::Mul, 0, 1),
            LoopNode::Const {
                value: 1.0,
                dtype: DType::F32,
            },
            LoopNode::Binary(BinaryOp::Add, 2, 3),
            LoopNode::Unary(UnaryOp::Relu, 4),
        ],
        outputs: vec![5],
        shape,
    };
    Ok(Workload {
        name: "relu(x*y+1)",
        inputs: vec![x, y],
        spec,
        iters,
        eager: |e, t| {
            let m = e.execute(&Op::Binary(BinaryOp::Mul), &[&t[0], &t[1]])?;
            let add = Op::BinaryScalar {
                op: BinaryOp::Add,
                scalar: 1.0,
                scalar_left: false,
            };
            let a = e.execute(&add, &[&m])?;
            Ok(e.execute(&Op::Unary(UnaryOp::Relu), &[&a])?)
        },
    })
}

/// `x - 0.01 * (v*0.9 + g)` over `[rows, cols]` (a momentum-SGD-like update: 4 cheap ops).
fn update_chain(e: &mut CpuEngine, rows: usize, cols: usize, iters: usize) -> Result<Workload> {
    let x = randn(e, &[rows, cols], 6)?;
    let v = randn(e, &[rows, cols], 7)?;
    let g = randn(e, &[rows, cols], 8)?;
    let shape = x.shape().clone();
    let c = |value| LoopNode::Const {
        value,
        dtype: DType::F32,
    };
    let spec = LoopSpec {
        inputs: vec![input(&x, &shape), input(&v, &shape), input(&g, &shape)],
        nodes: vec![
            LoopNode::Load(0),
            LoopNode::Load(1),
            LoopNode::Load(2),
            c(0.9),
            LoopNode::Binary(BinaryOp::Mul, 1, 3),
            LoopNode::Binary(BinaryOp::Add, 4, 2),
            c(0.01),
            LoopNode::Binary(BinaryOp::Mul, 6, 5),
            LoopNode::Binary(BinaryOp::Sub, 0, 7),
        ],
        outputs: vec![8],
        shape,
    };
    Ok(Workload {
        name: "x-0.01*(v*0.9+g)",
        inputs: vec![x, v, g],
        spec,
        iters,
        eager: |e, t| {
            let scaled = |scalar, scalar_left| Op::BinaryScalar {
                op: BinaryOp::Mul,
                scalar,
                scalar_left,
            };
            let m = e.execute(&scaled(0.9, false), &[&t[1]])?;
            let a = e.execute(&Op::Binary(BinaryOp::Add), &[&m, &t[2]])?;
            let s = e.execute(&scaled(0.01, true), &[&a])?;
            Ok(e.execute(&Op::Binary(BinaryOp::Sub), &[&t[0], &s])?)
        },
    })
}

/// `sigmoid(x*w + b) * x` over `[rows, cols]` with `b` a `[cols]` row.
fn gate_chain(e: &mut CpuEngine, rows: usize, cols: usize, iters: usize) -> Result<Workload> {
    let x = randn(e, &[rows, cols], 3)?;
    let w = randn(e, &[rows, cols], 4)?;
    let b = randn(e, &[cols], 5)?;
    let shape = x.shape().clone();
    let spec = LoopSpec {
        inputs: vec![input(&x, &shape), input(&w, &shape), input(&b, &shape)],
        nodes: vec![
            LoopNode::Load(0),
            LoopNode::Load(1),
            LoopNode::Load(2),
            LoopNode::Binary(BinaryOp::Mul, 0, 1),
            LoopNode::Binary(BinaryOp::Add, 3, 2),
            LoopNode::Unary(UnaryOp::Sigmoid, 4),
            LoopNode::Binary(BinaryOp::Mul, 5, 0),
        ],
        outputs: vec![6],
        shape,
    };
    Ok(Workload {
        name: "sigmoid(x*w+b)*x",
        inputs: vec![x, w, b],
        spec,
        iters,
        eager: |e, t| {
            let m = e.execute(&Op::Binary(BinaryOp::Mul), &[&t[0], &t[1]])?;
            let a = e.execute(&Op::Binary(BinaryOp::Add), &[&m, &t[2]])?;
            let s = e.execute(&Op::Unary(UnaryOp::Sigmoid), &[&a])?;
            Ok(e.execute(&Op::Binary(BinaryOp::Mul), &[&s, &t[0]])?)
        },
    })
}

/// Milliseconds per iteration of `f`: the best of three batches of `iters` (after one warm-up
/// call), so a noisy neighbour inflates no figure.
fn time(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..iters {
            f()?;
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e3 / iters as f64);
    }
    Ok(best)
}

/// Elements below which a fused loop stays on the calling thread (like the engine's kernels:
/// starting a thread costs tens of microseconds).
const PAR_MIN: usize = 1 << 19;

/// Runs `k` over the whole space into `out`, split into `threads` contiguous ranges when large.
fn run_kernel(k: &dyn LoopKernel, ins: &[*const u8], out: &mut [u8], numel: usize, threads: usize) {
    let threads = if numel < PAR_MIN { 1 } else { threads.max(1) };
    let chunk = numel.div_ceil(threads).max(1);
    let out_ptr = out.as_mut_ptr() as usize;
    let ins: Vec<usize> = ins.iter().map(|&p| p as usize).collect();
    std::thread::scope(|s| {
        let mut start = 0;
        while start < numel {
            let end = (start + chunk).min(numel);
            let ins = &ins;
            let go = move || {
                let ins: Vec<*const u8> = ins.iter().map(|&p| p as *const u8).collect();
                // SAFETY: inputs are live engine tensors the spec was built from; the output
                // holds `numel` f32 elements and the ranges are disjoint.
                unsafe { k.run(&ins, &[out_ptr as *mut u8], start..end) };
            };
            if end == numel {
                go();
            } else {
                s.spawn(go);
            }
            start = end;
        }
    });
}

fn measure(e: &mut CpuEngine, w: &Workload, threads: usize) -> Result<Row> {
    let numel = w.spec.shape.numel();
    let eager_ms = time(w.iters, || {
        std::hint::black_box((w.eager)(e, &w.inputs)?);
        Ok(())
    })?;
    let result = (w.eager)(e, &w.inputs)?;
    let want = e.download(&result).bytes;

    let t = Instant::now();
    let compiles = 20;
    let mut jitted: Option<Arc<dyn LoopKernel>> = None;
    for _ in 0..compiles {
        jitted = Some(jit(&w.spec).context("JIT compile")?);
    }
    let compile_ms = t.elapsed().as_secs_f64() * 1e3 / compiles as f64;
    let jitted = jitted.context("compiled at least once")?;
    let interp = interpret(&w.spec)?;

    let ins: Vec<*const u8> = w
        .inputs
        .iter()
        .map(|t| t.storage().as_slice::<u8>().as_ptr())
        .collect();
    let mut out = vec![0u8; numel * 4];
    let mut fused = |k: &dyn LoopKernel| -> Result<(f64, bool)> {
        let ms = time(w.iters, || {
            run_kernel(k, &ins, &mut out, numel, threads);
            Ok(())
        })?;
        Ok((ms, out == want))
    };
    let (interp_ms, interp_ok) = fused(&*interp)?;
    let (jit_ms, jit_ok) = fused(&*jitted)?;
    Ok(Row {
        name: w.name,
        elements: numel,
        eager_ms,
        interp_ms,
        jit_ms,
        compile_ms,
        identical: interp_ok && jit_ok,
    })
}

pub fn run(json: bool, threads: usize) -> Result<()> {
    let threads = threads.max(1);
    let mut e = CpuEngine::new(threads);
    let workloads = [
        relu_chain(&mut e, 4096, 4096, 5)?,
        update_chain(&mut e, 64, 64, 2000)?,
        update_chain(&mut e, 256, 1024, 50)?,
        gate_chain(&mut e, 64, 64, 2000)?,
        gate_chain(&mut e, 256, 1024, 50)?,
    ];
    let mut rows = Vec::new();
    for w in &workloads {
        if !json {
            eprintln!("  measuring {} over {}…", w.name, w.spec.shape);
        }
        rows.push(measure(&mut e, w, threads)?);
    }
    if json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "workload": r.name,
                    "elements": r.elements,
                    "eager_ms": r.eager_ms,
                    "interpreter_ms": r.interp_ms,
                    "jit_ms": r.jit_ms,
                    "jit_speedup_vs_eager": r.eager_ms / r.jit_ms,
                    "jit_speedup_vs_interpreter": r.interp_ms / r.jit_ms,
                    "compile_ms": r.compile_ms,
                    "bit_identical": r.identical,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "threads": threads, "workloads": out })
        );
    } else {
        println!("gt bench jit: fused loops vs eager kernels, {threads} thread(s), ms per iteration (best of 3 batches)");
        println!(
            "{:<20} {:>9} {:>10} {:>10} {:>10} {:>9} {:>9} {:>11} {:>9}",
            "workload",
            "elements",
            "eager",
            "interp",
            "jit",
            "jit/eag",
            "jit/int",
            "compile ms",
            "identical"
        );
        for r in &rows {
            println!(
                "{:<20} {:>9} {:>10.4} {:>10.4} {:>10.4} {:>8.2}x {:>8.2}x {:>11.3} {:>9}",
                r.name,
                r.elements,
                r.eager_ms,
                r.interp_ms,
                r.jit_ms,
                r.eager_ms / r.jit_ms,
                r.interp_ms / r.jit_ms,
                r.compile_ms,
                if r.identical { "yes" } else { "NO" }
            );
        }
    }
    if rows.iter().any(|r| !r.identical) {
        bail!("a fused result differs from the eager kernels");
    }
    Ok(())
}
