//! Run-ahead driven by hand: a worker core with the CPU engine is fed an SGD-like loop (a
//! random draw, the update of a parameter, a read of its sum) and, between iterations, given
//! the idle time the executor would give it. Every value read must equal eager execution's
//! bit for bit, whether the prediction holds or not.

use super::super::tests::NoPeers;
use crate::cpu::CpuEngine;
use crate::hotpath::HotPathConfig;
use crate::state::WorkerState;
use crate::test_util::{exec, key};
use gt_core::{DType, ReqId, WorkerId};
use gt_ops::{BinaryOp, Dist, Op, ReduceOp};
use gt_proto::{TensorData, WorkerMsg, WorkerReply, WorkerStats};

fn upload(out: u64, values: &[f32]) -> WorkerMsg {
    WorkerMsg::Upload {
        out: key(out),
        data: TensorData::from_f32([values.len()], values),
    }
}

/// What changes in one iteration of [`run`].
#[derive(Clone, Copy, Default)]
struct Twist {
    /// Read the other input tensor instead of the usual one.
    other_input: bool,
    /// Reset the random generator's seed first (as `manual_seed` does).
    reseed: bool,
}

/// Runs `iters` iterations of `w ← w − 0.5·(w·x + randn)`, reading `sum(w)` after each, with
/// hot-path compilation on or off; when `idle`, the worker gets its idle time between
/// iterations. Returns the bits read and the stats.
fn run(
    compile: bool,
    idle: bool,
    iters: u64,
    twist: impl Fn(u64) -> Twist,
) -> (Vec<u64>, WorkerStats) {
    let cfg = HotPathConfig {
        auto_compile: compile,
        threshold: 2,
        compile_inline: true,
        keep_slower: true,
        ..Default::default()
    };
    let mut w = WorkerState::with_hotpath(WorkerId(0), CpuEngine::new(1), &cfg);
    let mut out = Vec::new();
    let feed = |w: &mut WorkerState<CpuEngine>, m: WorkerMsg, out: &mut Vec<WorkerReply>| {
        w.handle(m, &mut NoPeers, out)
    };
    feed(&mut w, upload(1, &[0.5, -1.0, 2.0, 0.25]), &mut out);
    feed(&mut w, upload(2, &[1.5, 0.75, -0.5, 3.0]), &mut out);
    feed(&mut w, upload(3, &[0.1, 0.2, 0.3, 0.4]), &mut out);
    let (mut param, mut seed, mut stream) = (3u64, 7u64, 0u64);
    let (mut got, mut stats) = (Vec::new(), None);
    for i in 0..iters {
        let t = twist(i);
        if t.reseed {
            (seed, stream) = (seed + 1, 0);
        }
        let input = if t.other_input { 2 } else { 1 };
        let b = 100 * (i + 1);
        let random = Op::Random {
            dist: Dist::Normal,
            shape: [4].into(),
            dtype: DType::F32,
            seed,
            stream,
        };
        stream += 1;
        let half = Op::BinaryScalar {
            op: BinaryOp::Mul,
            scalar: 0.5,
            scalar_left: false,
        };
        let sum = Op::Reduce {
            op: ReduceOp::Sum,
            axes: Default::default(),
            keepdim: false,
        };
        for m in [
            exec(b, Op::Binary(BinaryOp::Mul), &[param, input]),
            exec(b + 1, random, &[]),
            exec(b + 2, Op::Binary(BinaryOp::Add), &[b, b + 1]),
            WorkerMsg::Free { key: key(b) },
            WorkerMsg::Free { key: key(b + 1) },
            exec(b + 3, half, &[b + 2]),
            WorkerMsg::Free { key: key(b + 2) },
            exec(b + 4, Op::Binary(BinaryOp::Sub), &[param, b + 3]),
            WorkerMsg::Free { key: key(b + 3) },
            exec(b + 5, sum, &[b + 4]),
        ] {
            feed(&mut w, m, &mut out);
        }
        feed(
            &mut w,
            WorkerMsg::Read {
                req: ReqId(i),
                key: key(b + 5),
            },
            &mut out,
        );
        match out.pop() {
            Some(WorkerReply::Data { result, .. }) => {
                let v = result.expect("read").to_f64_vec()[0];
                got.push(v.to_bits());
            }
            other => panic!("iteration {i}: {other:?}"),
        }
        if i + 1 == iters {
            // Asked right after the last read, as a client would: what waits for idle time
            // must be settled first.
            feed(&mut w, WorkerMsg::Stats { req: ReqId(i) }, &mut out);
            match out.pop() {
                Some(WorkerReply::Stats { stats: st, .. }) => stats = Some(*st),
                other => panic!("stats: {other:?}"),
            }
        }
        // After the sync point the client drops the old parameter and the loss.
        if param != 3 {
            feed(&mut w, WorkerMsg::Free { key: key(param) }, &mut out);
        }
        feed(&mut w, WorkerMsg::Free { key: key(b + 5) }, &mut out);
        param = b + 4;
        while idle && w.work_ahead() {}
    }
    (got, stats.expect("at least one iteration"))
}

#[test]
fn a_predicted_instance_runs_ahead_and_reads_exactly_what_eager_reads() {
    let plain = |_| Twist::default();
    let (eager, eager_st) = run(false, false, 12, plain);
    let (streamed, st) = run(true, false, 12, plain);
    assert_eq!(eager, streamed);
    assert_eq!(st.compile.ahead_runs, 0, "no idle time, nothing runs ahead");
    // The last run's bookkeeping waited for idle time that never came; the stats request
    // settled it, so every run and instruction is counted.
    assert_eq!(st.compile.compiled_runs, 9, "{:?}", st.compile);
    assert_eq!(st.ops_executed, eager_st.ops_executed);
    assert_eq!(st.ops_by_name, eager_st.ops_by_name);
    let (ahead, st) = run(true, true, 12, plain);
    assert_eq!(eager, ahead);
    let c = &st.compile;
    // Iterations 4-12 stream through the plan; 4 and 5 teach the prediction, so 6-12 run ahead
    // as predicted (the stats are taken before the idle time that would prepare a 13th). The
    // parameter each iteration updates
    // was used by the iteration after 2, so the plan never defers it (a deferred one would be
    // computed on its own at its first use, and could not be predicted from).
    assert_eq!(c.compiled_runs, 9, "{c:?}");
    assert_eq!(
        (c.ahead_runs, c.ahead_hits, c.ahead_misses),
        (7, 7, 0),
        "{c:?}"
    );
    assert_eq!(c.deferred_forced, 0, "{c:?}");
}

#[test]
fn a_prediction_that_misses_recomputes_from_the_real_inputs() {
    // Iteration 6 reads another input than predicted, iteration 10 reseeds the generator.
    let twist = |i| Twist {
        other_input: i == 6,
        reseed: i == 10,
    };
    let (eager, _) = run(false, false, 14, twist);
    let (ahead, st) = run(true, true, 14, twist);
    assert_eq!(eager, ahead);
    let c = &st.compile;
    assert_eq!(c.ahead_misses, 2, "{c:?}");
    assert!(c.ahead_hits >= 3, "{c:?}");
}

/// Buffers a steady loop asks the pool for: eager execution one per op (six per iteration);
/// a compiled run only one per live-out (the new parameter and its sum), because each
/// internal value (the product, the draw, their sum and its half) is computed into the storage
/// the same node had in the run's last instance ([`crate::compile::program::Plan::recycles`]).
#[test]
fn a_steady_compiled_loop_computes_internal_values_into_the_storage_of_the_last_instances() {
    let plain = |_| Twist::default();
    let asked = |iters, compile| {
        let (bits, st) = run(compile, compile, iters, plain);
        (bits, st.pool_hits + st.pool_misses)
    };
    let (e20, c20) = (asked(20, false), asked(20, true));
    let (e30, c30) = (asked(30, false), asked(30, true));
    assert_eq!(e30.0, c30.0, "compiled values equal eager ones");
    assert_eq!(e30.1 - e20.1, 6 * 10);
    assert_eq!(c30.1 - c20.1, 2 * 10);
}
