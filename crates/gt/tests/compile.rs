//! Trace-JIT footguns (in the spirit of tinygrad's): every loop runs on an embedded runtime with
//! compilation off and again with it on, and every value read must be bit-for-bit the same —
//! changed shapes, changed scalar constants, a branch taken differently once, outputs fed into
//! the next iteration, `item()` in the middle of a sequence, two clients interleaving the same
//! pattern, kernels that fail inside a compiled trace, and MLP training with SGD and Adam.

use gt::config::Config;
use gt::config::HotPathConfig;
use gt::nn::Param;
use gt::optim::{Adam, Optimizer, Sgd};
use gt::runtime::Embedded;
use gt::{DType, Session, Tensor, WorkerStats};

fn config(compile: bool) -> Config {
    Config {
        hotpath: HotPathConfig {
            auto_compile: compile,
            threshold: 2,
            compile_inline: true,
            // These tests check the compiled path's results, so it must run whatever the
            // regression guard would measure on a busy test machine.
            keep_slower: true,
            ..Default::default()
        },
        ..Config::default()
    }
}

fn stats(s: &Session) -> WorkerStats {
    s.worker_stats().unwrap().remove(0)
}

/// Runs `body(session, iteration)` for `iters` iterations with compilation off and on; returns
/// what each read (values or error text) and the compiled runtime's final stats.
fn both<F>(iters: usize, body: F) -> WorkerStats
where
    F: Fn(&Session, &mut State, usize) -> Vec<String>,
{
    let mut outs = Vec::new();
    let mut last = None;
    for on in [false, true] {
        let rt = Embedded::start(1, 1, &config(on)).unwrap();
        let s = rt.session("footgun").unwrap();
        s.manual_seed(7);
        let mut st = State::default();
        let mut got = Vec::new();
        for i in 0..iters {
            got.push(body(&s, &mut st, i));
        }
        outs.push(got);
        last = Some(stats(&s));
    }
    for (i, (off, on)) in outs[0].iter().zip(&outs[1]).enumerate() {
        assert_eq!(off, on, "iteration {i}: eager and compiled differ");
    }
    let st = last.unwrap();
    assert!(st.hotpath.enabled);
    st
}

/// Tensors carried between iterations.
#[derive(Default)]
struct State {
    t: Vec<Tensor>,
}

fn show(r: gt::Result<Vec<f64>>) -> String {
    match r {
        Ok(v) => format!("{:?}", v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
        Err(e) => format!("error: {e}"),
    }
}

fn read(t: &Tensor) -> String {
    show(t.to_vec_f64())
}

/// A small elementwise + matmul body on fresh random inputs.
fn body(s: &Session, n: usize, c: f64) -> Tensor {
    let a = s.try_randn([n, n], DType::F32).unwrap();
    let b = s.try_randn([n, n], DType::F32).unwrap();
    let x = a.matmul(&b).relu();
    let y = (&x * c + &a) * &b;
    y.sum_dims(&[1], false).mean()
}

#[test]
fn a_steady_loop_compiles_once_and_then_runs_compiled() {
    let st = both(20, |s, _, _| vec![read(&body(s, 8, 0.5))]);
    assert_eq!(st.compile.traces_compiled, 1, "{:?}", st.compile);
    assert_eq!(st.compile.fallbacks, 0);
    assert!(st.compile.compiled_runs >= 15, "{:?}", st.compile);
    assert!(st.hotpath.hot_sequences >= 1 && st.hotpath.hot_instructions > 0);
    assert!(st.compile.compiled_instructions > 0);
}

/// Warm-up: iteration 1 is seen, iteration 2 (the second sight, which makes the loop hot) is
/// recorded as it runs and compiled when it ends, and every iteration from the third runs
/// compiled. (The frees of iteration 1's values at the start of iteration 2 are not part of
/// the loop's sequence, so iteration 1 counts.)
#[test]
fn a_loop_runs_compiled_from_its_third_iteration() {
    let st = both(10, |s, _, _| vec![read(&body(s, 8, 0.5))]);
    assert_eq!(st.compile.traces_compiled, 1, "{:?}", st.compile);
    assert_eq!(st.compile.compiled_runs, 8, "{:?}", st.compile);
}

/// A program that moves on to a second loop starting like the first (the same random inputs
/// first): the second loop compiles and runs compiled too, instead of starting every instance
/// through the first loop's plan and falling back to eager.
#[test]
fn a_second_loop_that_begins_like_the_first_runs_compiled_too() {
    let runs = std::sync::Mutex::new(Vec::new());
    let second = |s: &Session, c: f64| {
        let a = s.try_randn([8, 8], DType::F32).unwrap();
        let b = s.try_randn([8, 8], DType::F32).unwrap();
        (a.matmul(&b) * c - &b).sum()
    };
    let st = both(40, |s, _, i| {
        if i == 20 || i == 39 {
            runs.lock().unwrap().push(stats(s).compile.compiled_runs);
        }
        let y = if i < 20 {
            body(s, 8, 0.5)
        } else {
            second(s, 0.5)
        };
        vec![read(&y)]
    });
    assert_eq!(st.compile.traces_compiled, 2, "{:?}", st.compile);
    let runs = runs.into_inner().unwrap();
    // The compiled side's counts are the last two pushed.
    let (at20, at39) = (runs[2], runs[3]);
    assert!(
        at39 - at20 >= 15,
        "the second loop ran compiled {} times of 19",
        at39 - at20
    );
}

#[test]
fn elementwise_runs_fuse_into_one_loop_with_identical_results() {
    // 128x128 is above the fusion threshold: relu, *c, +a, *b become one loop.
    let st = both(12, |s, _, _| vec![read(&body(s, 128, 0.5))]);
    assert_eq!(
        (st.compile.fused_loops, st.compile.fused_instructions),
        (1, 4),
        "{:?}",
        st.compile
    );
    assert!(st.compile.compiled_runs >= 8);
}

#[test]
fn changed_shapes_and_constants_are_other_programs() {
    let st = both(24, |s, _, i| {
        let n = if i == 12 { 6 } else { 8 };
        let c = if i >= 18 { 0.25 } else { 0.5 };
        vec![read(&body(s, n, c))]
    });
    // The 8x8/0.5 loop, and (once hot) the 8x8/0.25 one; the single 6x6 iteration deviates.
    assert_eq!(st.compile.traces_compiled, 2, "{:?}", st.compile);
    assert!(st.compile.deviations >= 1, "{:?}", st.compile);
}

#[test]
fn a_branch_taken_differently_once_runs_eagerly_and_matches() {
    let st = both(20, |s, _, i| {
        let a = s.try_randn([4, 4], DType::F32).unwrap();
        let mut x = (&a * 2.0).relu();
        if i == 13 {
            x = x.exp();
        }
        let y = (&x + &a).sum();
        vec![read(&y)]
    });
    assert!(st.compile.deviations >= 1, "{:?}", st.compile);
    assert!(st.compile.compiled_runs >= 10);
}

#[test]
fn outputs_feed_the_next_iteration() {
    both(20, |s, st, _| {
        if st.t.is_empty() {
            st.t.push(s.try_full([5, 5], 0.1, DType::F32).unwrap());
            st.t.push(s.try_randn([5, 5], DType::F32).unwrap());
        }
        let (a, b) = (st.t[0].clone(), st.t[1].clone());
        let next = (&(&a * 0.5) + &b).tanh();
        st.t[0] = next.clone();
        vec![read(&next.sum())]
    });
}

#[test]
fn item_in_the_middle_of_a_hot_sequence_flushes_and_does_not_deadlock() {
    let st = both(20, |s, _, i| {
        let a = s.try_randn([6, 6], DType::F32).unwrap();
        let h = (&a * 3.0).relu();
        let mut out = Vec::new();
        if i == 15 {
            // A read of a tensor made inside what the worker is buffering.
            out.push(show(h.item().map(|_| vec![]).or_else(|_| h.to_vec_f64())));
        }
        let y = (&h + &a).exp().sum();
        out.push(read(&y));
        out
    });
    assert!(st.compile.deviations >= 1, "{:?}", st.compile);
}

#[test]
fn two_clients_interleaving_the_same_pattern_keep_their_own_streams() {
    let mut results = Vec::new();
    for on in [false, true] {
        let rt = Embedded::start(1, 1, &config(on)).unwrap();
        let (s1, s2) = (rt.session("one").unwrap(), rt.session("two").unwrap());
        s1.manual_seed(1);
        s2.manual_seed(2);
        let mut got = Vec::new();
        for _ in 0..16 {
            // Half of one's step, all of two's, then the rest of one's.
            let a = s1.try_randn([4, 4], DType::F32).unwrap();
            let x = (&a * 2.0).relu();
            got.push(read(&body(&s2, 4, 0.5)));
            let y = (&x + &a).sum();
            got.push(read(&y));
        }
        let st = stats(&s1);
        if on {
            assert!(st.compile.compiled_runs > 0, "{:?}", st.compile);
            assert!(st.hotpath.hot_sequences >= 2, "{:?}", st.hotpath);
        }
        results.push(got);
    }
    assert_eq!(results[0], results[1]);
}

#[test]
fn a_kernel_failing_inside_a_compiled_trace_poisons_like_eager() {
    both(16, |s, _, i| {
        let x = s.try_randn([4, 3], DType::F32).unwrap();
        // Out of range on one iteration only: the index is data, so only the kernel can tell.
        let bad = if i == 11 { 9 } else { 1 };
        let idx = s.try_tensor_i64(&[0, bad], [2]).unwrap();
        let y = (&x * 2.0).index_select(0, &idx).relu();
        vec![read(&y.sum()), read(&x.sum())]
    });
}

fn mlp_losses(compile: bool, adam: bool) -> (Vec<u64>, WorkerStats, WorkerStats) {
    let rt = Embedded::start(1, 1, &config(compile)).unwrap();
    let s = rt.session("mlp").unwrap();
    s.manual_seed(3);
    let layer = |i: usize, o: usize| {
        let w = &s.try_randn([i, o], DType::F32).unwrap() * 0.1;
        (
            Param::new(w),
            Param::new(
                s.try_zeros_like(&s.try_randn([o], DType::F32).unwrap())
                    .unwrap(),
            ),
        )
    };
    let (l1, l2) = (layer(8, 16), layer(16, 4));
    let params = vec![l1.0.clone(), l1.1.clone(), l2.0.clone(), l2.1.clone()];
    let mut opt: Box<dyn Optimizer> = if adam {
        Box::new(Adam::new(params, 0.01))
    } else {
        Box::new(Sgd::new(params, 0.05))
    };
    let data = s.try_randn([6, 8], DType::F32).unwrap();
    let target = s.try_randn([6, 4], DType::F32).unwrap();
    let mut losses = Vec::new();
    let mut mid = None;
    for i in 0..20 {
        opt.zero_grad();
        let h = (data.matmul(&l1.0.get()) + l1.1.get()).relu();
        let pred = h.matmul(&l2.0.get()) + l2.1.get();
        let d = &pred - &target;
        let loss = (&d * &d).mean();
        loss.backward().unwrap();
        opt.step().unwrap();
        losses.push(loss.item().unwrap().to_bits());
        if i == 9 {
            mid = Some(stats(&s));
        }
    }
    (losses, mid.unwrap(), stats(&s))
}

#[test]
fn mlp_training_gives_identical_losses_and_stops_compiling_after_warmup() {
    for adam in [false, true] {
        let (eager, _, _) = mlp_losses(false, adam);
        let (compiled, mid, end) = mlp_losses(true, adam);
        assert_eq!(eager, compiled, "adam={adam}");
        assert!(
            end.compile.traces_compiled >= 1,
            "{:?} {:?}",
            end.compile,
            end.hotpath
        );
        assert_eq!(
            mid.compile.traces_compiled, end.compile.traces_compiled,
            "no new compilations after warm-up (adam={adam})"
        );
        assert!(
            end.compile.compiled_runs >= 8,
            "adam={adam}: {:?} {:?}",
            end.compile,
            end.hotpath
        );
        // `mean`'s backward seeds with `full` → `reshape` → `div` → `expand`, and `relu`'s with
        // a zero: constants, computed once per stream and reused in the losses above.
        assert!(end.compile.folded_instructions >= 4, "{:?}", end.compile);
        // Both layers' forward passes (matmul, bias add, relu) are matmul epilogues.
        assert!(end.compile.fused_loops >= 2, "{:?}", end.compile);
        // Run ahead: SGD steps are predicted right every time (how many run ahead depends on
        // the worker's idle time; `gt-worker`'s `state::ahead` tests count them exactly). Adam
        // uploads its step factors, which no earlier step predicts.
        let c = &end.compile;
        if adam {
            assert_eq!(c.ahead_runs, 0, "{c:?}");
        } else {
            assert_eq!(c.ahead_misses, 0, "{c:?}");
            assert!(c.ahead_hits + 1 >= c.ahead_runs, "{c:?}");
        }
    }
}

#[test]
fn gradients_nobody_reads_are_deferred_and_exact_when_read_later() {
    // Fresh leaves each step, backward, `item()` on the loss: the leaves' gradients are live
    // after the trace, so a compiled run defers them. Every fifth step reads them afterwards
    // (forcing the deferred work, possibly from an older iteration kept in `State`); the
    // values must be eager's to the bit, and the loop must keep running compiled.
    let st = both(30, |s, st, i| {
        let a = s
            .try_randn([6, 6], DType::F32)
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let b = s
            .try_randn([6, 6], DType::F32)
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let loss = a.matmul(&b).relu().matmul(&b).sum();
        loss.backward().unwrap();
        let mut out = vec![show(loss.item().map(|v| vec![v]))];
        if i % 5 == 4 {
            out.push(read(&a.grad().unwrap()));
            if let Some(old) = st.t.first() {
                out.push(read(old));
            }
        }
        if i % 7 == 3 {
            // Keep a gradient around unread for a while.
            st.t = vec![b.grad().unwrap()];
        }
        out
    });
    assert!(st.compile.compiled_runs >= 15, "{:?}", st.compile);
    assert_eq!(st.compile.fallbacks, 0);
    let c = &st.compile;
    assert!(c.deferred_values > 0 && c.deferred_dropped > 0, "{c:?}");
    assert!(c.deferred_forced > 0, "{c:?}");
    assert!(
        c.deferred_forced + c.deferred_dropped <= c.deferred_values,
        "{c:?}"
    );
}

#[test]
fn results_held_unread_for_many_steps_are_bounded_and_exact() {
    // A loop that keeps every loss tensor and reads them only at the end: deferred values
    // must not pile up (the oldest traces are computed), and every value must be eager's.
    let st = both(24, |s, st, i| {
        let a = s
            .try_randn([5, 5], DType::F32)
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let loss = (&a * &a).relu().sum();
        loss.backward().unwrap();
        let g = a.grad().unwrap();
        st.t.push(loss.clone());
        st.t.push(g);
        let mut out = vec![show(loss.item().map(|v| vec![v]))];
        if i == 23 {
            out.extend(st.t.iter().map(read));
        }
        out
    });
    assert!(st.compile.compiled_runs >= 15, "{:?}", st.compile);
}

#[test]
fn a_compile_true_region_compiles_at_first_sight() {
    // The threshold is far beyond the loop, so only the region's `compile: true` can compile
    // it: recorded the first time, streaming through its plan from the second.
    let yaml = "step:\n  compile: true\n";
    let mut outs = Vec::new();
    let mut last = None;
    for on in [false, true] {
        let cfg = Config {
            hotpath: HotPathConfig {
                auto_compile: on,
                threshold: 1000,
                compile_inline: true,
                keep_slower: true,
                ..Default::default()
            },
            sharding: std::sync::Arc::new(gt::ShardConfig::from_yaml(yaml).unwrap()),
            ..Config::default()
        };
        let rt = Embedded::start(1, 1, &cfg).unwrap();
        let s = rt.session("region").unwrap();
        s.manual_seed(3);
        let mut got = Vec::new();
        for _ in 0..6 {
            s.scope_enter("step");
            let y = body(&s, 8, 0.5);
            s.scope_exit();
            got.push(read(&y));
        }
        outs.push(got);
        last = Some(stats(&s));
    }
    assert_eq!(outs[0], outs[1], "eager and compiled differ");
    let st = last.unwrap();
    assert_eq!(st.compile.traces_compiled, 1, "{:?}", st.compile);
    assert!(st.compile.compiled_runs >= 4, "{:?}", st.compile);
}

#[test]
fn matmul_epilogues_match_eager_in_place_and_when_the_engine_declines() {
    // Three products with an add each, their sums read at once (so nothing outlives the trace
    // but the reads' inputs): a bias row with a relu (fused in place), a full-shape addend on
    // the left, and a transposed addend the CPU engine declines to fuse (the plan then runs
    // the ops one by one). Every value must be eager's to the bit.
    let st = both(12, |s, _, _| {
        let x = s.try_randn([5, 7], DType::F32).unwrap();
        let w = s.try_randn([7, 6], DType::F32).unwrap();
        let b = s.try_randn([6], DType::F32).unwrap();
        let full = s.try_randn([5, 6], DType::F32).unwrap();
        let tr = s.try_randn([6, 5], DType::F32).unwrap().t();
        let y = (x.matmul(&w) + &b).relu().sum();
        let z = (&full + x.matmul(&w)).sum();
        let v = (x.matmul(&w) + &tr).sum();
        vec![read(&y), read(&z), read(&v)]
    });
    assert!(st.compile.compiled_runs >= 8, "{:?}", st.compile);
    assert!(st.compile.fused_loops >= 3, "{:?}", st.compile);
}
