//! Sharding end to end through embedded runtimes of 1, 2 and 3 workers: every op kind on every
//! placement gives the unsharded result (float64, 1e-6 relative), the work really runs on each
//! worker (worker ops_by_name and the dispatcher's sharding stats), reads return shard order,
//! frees free every part, autograd works through sharded ops, and configs are validated.

use gt::runtime::Embedded;
use gt::{DType, Session, ShardConfig, ShardSpec, SignalConfig, Tensor};

/// (signal, axis, replicated, workers)
type SignalRow<'a> = (&'a str, Option<usize>, bool, Option<Vec<u32>>);

fn config(signals: &[SignalRow]) -> ShardConfig {
    let mut c = ShardConfig::default();
    for (name, axis, replicated, workers) in signals {
        c = c.signal(
            name,
            SignalConfig {
                shard: Some(ShardSpec {
                    axis: axis.unwrap_or(0),
                    workers: workers.clone(),
                    replicated: *replicated,
                }),
                ..Default::default()
            },
        );
    }
    c
}

/// The standard signals: `row`/`col` shard axis 0/1, `rep` replicates, over every worker.
/// `row`'s gradient ops place what they create like `row` itself.
fn standard() -> ShardConfig {
    let mut c = config(&[
        ("row", Some(0), false, None),
        ("col", Some(1), false, None),
        ("ax2", Some(2), false, None),
        ("rep", None, true, None),
    ]);
    c.signals.get_mut("row").unwrap().backward = Some("row".into());
    c
}

fn runtime(workers: usize, cfg: ShardConfig) -> Embedded {
    let c = gt::config::Config {
        sharding: std::sync::Arc::new(cfg),
        ..Default::default()
    };
    Embedded::start(workers, 1, &c).unwrap()
}

/// Creates a tensor of `shape` with deterministic values inside signal `scope` (if any).
fn make(s: &Session, scope: Option<&str>, shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| (((i as u64 * 7919 + seed * 104729) % 1000) as f64) / 250.0 - 2.0)
        .collect();
    if let Some(sc) = scope {
        s.scope_enter(sc);
    }
    let t = s.try_tensor_f64(&v, shape.to_vec()).unwrap();
    if scope.is_some() {
        s.scope_exit();
    }
    t
}

fn close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 * w.abs().max(1e-3),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

type Body = fn(&Session, &dyn Fn(&str) -> Option<String>) -> Vec<Tensor>;

/// Runs `body` unsharded on one worker and with placements on `workers` workers; every output
/// must agree. Returns the sharded session's dispatcher stats and worker stats.
fn check(name: &str, workers: usize, body: Body) -> (gt::DispatcherStats, Vec<gt::WorkerStats>) {
    let plain = runtime(1, ShardConfig::default());
    let ps = plain.session("plain").unwrap();
    let want: Vec<Vec<f64>> = body(&ps, &|_| None)
        .iter()
        .map(|t| t.to_vec_f64().unwrap())
        .collect();
    let rt = runtime(workers, standard());
    let s = rt.session("sharded").unwrap();
    let got = body(&s, &|sc| Some(sc.to_string()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        close(
            &g.to_vec_f64().unwrap(),
            w,
            &format!("{name} on {workers} workers, output {i}"),
        );
    }
    (s.dispatcher_stats().unwrap(), s.worker_stats().unwrap())
}

fn ran_on_every_worker(ws: &[gt::WorkerStats], op: &str, what: &str) {
    for w in ws {
        let n = w
            .ops_by_name
            .iter()
            .find(|(k, _)| k == op)
            .map(|(_, v)| *v)
            .unwrap_or(0);
        assert!(
            n > 0,
            "{what}: worker {} ran no {op}: {:?}",
            w.worker,
            w.ops_by_name
        );
    }
}

fn mk(
    s: &Session,
    sc: &dyn Fn(&str) -> Option<String>,
    scope: &str,
    shape: &[usize],
    seed: u64,
) -> Tensor {
    make(s, sc(scope).as_deref(), shape, seed)
}

#[test]
fn elementwise_on_shards_runs_per_shard_even_and_uneven() {
    for workers in [1, 2, 3] {
        let (st, ws) = check("elementwise", workers, |s, sc| {
            let a = mk(s, sc, "row", &[7, 5], 1);
            let b = mk(s, sc, "row", &[7, 5], 2);
            let bias = mk(s, sc, "rep", &[5], 3);
            let plain = make(s, None, &[7, 1], 4);
            let c = (&a * &b + &bias).relu();
            let d = c.try_sub(&plain).unwrap().exp().neg();
            let e = a.try_gt(&b).unwrap().to_dtype(DType::F64);
            let w = gt::where_(&a.try_gt(&b).unwrap(), &a, &b);
            let scal = a.try_mul_scalar(3.0).unwrap().try_div_scalar(2.0).unwrap();
            vec![c, d, e, w, scal]
        });
        assert!(st.shard.sharded_ops >= 5, "{st:?}");
        if workers > 1 {
            ran_on_every_worker(&ws, "relu", "elementwise");
        }
    }
}

#[test]
fn matmul_data_tensor_and_contraction_parallel() {
    for workers in [1, 2, 3] {
        let (st, ws) = check("matmul", workers, |s, sc| {
            let x = mk(s, sc, "row", &[7, 6], 1);
            let w = mk(s, sc, "rep", &[6, 5], 2);
            let wc = mk(s, sc, "col", &[6, 5], 3);
            let xk = mk(s, sc, "col", &[7, 6], 4);
            let wk = mk(s, sc, "row", &[6, 5], 5);
            let dp = x.matmul(&w); // rows of lhs
            let tp = make(s, None, &[7, 6], 6).matmul(&wc); // columns of rhs
            let kp = xk.matmul(&wk); // contraction dim → partial → read sums
            let kp2 = (&kp + &kp).relu(); // partial + partial stays partial; relu all-reduces
            let bx = mk(s, sc, "row", &[4, 3, 6], 7);
            let bm = bx.matmul(&w); // batch dim
            vec![dp, tp, kp, kp2, bm]
        });
        if workers > 1 {
            ran_on_every_worker(&ws, "matmul", "matmul");
            assert!(st.shard.all_reduces >= 1, "{st:?}");
            assert!(st.shard.transfers > 0 && st.shard.bytes_moved > 0, "{st:?}");
        }
    }
}

#[test]
fn reductions_over_sharded_and_other_axes() {
    for workers in [1, 2, 3] {
        let (st, _) = check("reduce", workers, |s, sc| {
            let a = mk(s, sc, "row", &[7, 4], 1);
            let c = mk(s, sc, "col", &[3, 5], 2);
            vec![
                a.sum_dims(&[0], false),
                a.sum_dims(&[1], true),
                a.mean_dims(&[0], true),
                a.mean(),
                a.max_dims(&[0], false),
                a.max(),
                a.try_min_dims(&[0], false).unwrap(),
                c.sum_dims(&[0], false),
                c.mean_dims(&[1], false),
                a.try_argmax(1, false).unwrap().to_dtype(DType::F64),
            ]
        });
        if workers > 1 {
            assert!(st.shard.sharded_ops >= 10, "{st:?}");
        }
    }
}

#[test]
fn views_keep_or_move_the_shard_axis() {
    for workers in [1, 2, 3] {
        let (st, _) = check("views", workers, |s, sc| {
            let a = mk(s, sc, "row", &[6, 4], 1);
            let b3 = mk(s, sc, "row", &[4, 3, 2], 2);
            let c = mk(s, sc, "col", &[3, 4], 3);
            vec![
                a.t(),                 // shard axis moves to 1
                a.reshape(&[6, 2, 2]), // kept
                b3.reshape(&[12, 2]),  // merged into the outer axis
                a.reshape(&[3, 8]),    // split (gathers when uneven)
                a.unsqueeze(0).expand([2, 6, 4]).sum_dims(&[0], false),
                a.slice(1, 1, 3, 1), // slice along another axis
                a.slice(0, 1, 4, 1), // slice along the shard axis
                c.matmul(&a.t()),    // contraction against moved shards
                gt::cat(&[&a, &a], 1),
                gt::cat(&[&a, &a], 0),
            ]
        });
        assert!(st.shard.sharded_ops >= 5, "{st:?}");
    }
}

#[test]
fn reads_free_and_moves() {
    let rt = runtime(3, standard());
    let s = rt.session("rw").unwrap();
    let v: Vec<f32> = (0..20).map(|i| i as f32).collect();
    s.scope_enter("row");
    let a = s.try_tensor(&v, [10, 2]).unwrap();
    let r = s.try_randn([5, 4], DType::F32).unwrap();
    let ar = s.try_arange(0.0, 10.0, 1.0, DType::F32).unwrap();
    s.scope_exit();
    assert_eq!(a.to_vec().unwrap(), v, "shard order");
    assert_eq!(
        ar.to_vec().unwrap(),
        (0..10).map(|i| i as f32).collect::<Vec<_>>()
    );
    // Random values do not depend on placement.
    let plain = runtime(1, ShardConfig::default());
    let ps = plain.session("p").unwrap();
    let r1 = ps.try_randn([5, 4], DType::F32).unwrap();
    assert_eq!(r.to_vec().unwrap(), r1.to_vec().unwrap());
    let moved = a.to_worker(2);
    assert_eq!(moved.to_vec().unwrap(), v);
    let before = s.worker_stats().unwrap();
    assert!(before.iter().all(|w| w.live_tensors > 0), "{before:?}");
    drop((a, r, ar, moved));
    s.sync().unwrap();
    let after = s.worker_stats().unwrap();
    assert!(after.iter().all(|w| w.live_tensors == 0), "{after:?}");
}

#[test]
fn uneven_configs_on_worker_subsets() {
    let cfg = config(&[("two", Some(0), false, Some(vec![2, 0]))]);
    let rt = runtime(3, cfg);
    let s = rt.session("subset").unwrap();
    let v: Vec<f64> = (0..15).map(|i| i as f64).collect();
    s.scope_enter("two");
    let a = s.try_tensor_f64(&v, [5, 3]).unwrap();
    s.scope_exit();
    let b = (&a + &a).sum_dims(&[1], false);
    assert_eq!(b.to_vec_f64().unwrap(), vec![6.0, 24.0, 42.0, 60.0, 78.0]);
    let ws = s.worker_stats().unwrap();
    assert!(ws[1].ops_by_name.iter().all(|(k, _)| k != "add"), "{ws:?}");
    assert!(ws[0].ops_by_name.iter().any(|(k, _)| k == "add"));
    assert!(ws[2].ops_by_name.iter().any(|(k, _)| k == "add"));
}

#[test]
fn config_errors_are_clear() {
    let bad = config(&[("x", Some(0), false, Some(vec![0, 5]))]);
    let c = gt::config::Config {
        sharding: std::sync::Arc::new(bad.clone()),
        ..Default::default()
    };
    let e = Embedded::start(2, 1, &c).err().unwrap().to_string();
    assert!(
        e.contains("worker index 5 is out of range (2 workers)"),
        "{e}"
    );
    let rt = runtime(2, ShardConfig::default());
    let s = rt.session("cfg").unwrap();
    let e = s.configure(&bad.to_yaml()).unwrap_err().to_string();
    assert!(e.contains("worker index 5"), "{e}");
    let e = s
        .configure("x:\n  shard:\n    axis: 0\n    replica: true\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("replica"), "{e}");
    // A valid config sent later takes effect; an axis beyond the rank poisons with its name.
    s.configure("deep:\n  shard:\n    axis: 3\n").unwrap();
    s.scope_enter("deep");
    let t = s.try_full([4, 4], 1.0, DType::F32).unwrap();
    s.scope_exit();
    let e = t.to_vec().unwrap_err().to_string();
    assert!(e.contains("deep") && e.contains("axis 3"), "{e}");
}

#[test]
fn autograd_through_sharded_ops() {
    for workers in [2, 3] {
        check("grad", workers, |s, sc| {
            let x = mk(s, sc, "row", &[7, 4], 1);
            let w = mk(s, sc, "rep", &[4, 3], 2).requires_grad_(true).unwrap();
            let b = mk(s, sc, "rep", &[3], 3).requires_grad_(true).unwrap();
            let y = (x.matmul(&w) + &b).tanh();
            let loss = (&y * &y).mean();
            loss.backward().unwrap();
            vec![loss.clone(), w.grad().unwrap(), b.grad().unwrap()]
        });
    }
}

/// Losses of `steps` SGD steps of a 2-layer MLP; `dp` puts the batch in `row` (sharded) and the
/// weights in `rep` (replicated).
fn train(s: &Session, dp: bool, steps: usize) -> Vec<f64> {
    let scope = |name: &'static str| if dp { Some(name) } else { None };
    let x = make(s, scope("row"), &[10, 4], 1);
    let y = make(s, scope("row"), &[10, 2], 2);
    let mut w1 = make(s, scope("rep"), &[4, 8], 3)
        .try_mul_scalar(0.3)
        .unwrap();
    let mut b1 = make(s, scope("rep"), &[8], 4).try_mul_scalar(0.1).unwrap();
    let mut w2 = make(s, scope("rep"), &[8, 2], 5)
        .try_mul_scalar(0.3)
        .unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (a, b, c) = (
            w1.requires_grad_(true).unwrap(),
            b1.requires_grad_(true).unwrap(),
            w2.requires_grad_(true).unwrap(),
        );
        let h = (x.matmul(&a) + &b).relu();
        let d = h.matmul(&c) - &y;
        let loss = (&d * &d).mean();
        // Outside every scope: the gradient ops use the placement of `row`'s `backward:`
        // signal (the region entered last), so the loss gradient's seed is replicated.
        loss.backward().unwrap();
        let upd = |p: &Tensor| p.detach() - p.grad().unwrap().try_mul_scalar(0.1).unwrap();
        (w1, b1, w2) = (upd(&a), upd(&b), upd(&c));
        losses.push(loss.item().unwrap());
    }
    losses
}

#[test]
fn data_parallel_training_matches_single_worker_losses() {
    let plain = runtime(1, ShardConfig::default());
    let want = train(&plain.session("plain").unwrap(), false, 20);
    assert!(want[19] < want[0], "the MLP learns: {want:?}");
    for workers in [2, 3] {
        let rt = runtime(workers, standard());
        let s = rt.session("dp").unwrap();
        let got = train(&s, true, 20);
        close(&got, &want, &format!("losses on {workers} workers"));
        let st = s.dispatcher_stats().unwrap();
        assert!(st.shard.all_reduces >= 20, "gradients all-reduced: {st:?}");
        assert_eq!(st.shard.gathered_ops, 0, "nothing fell back: {st:?}");
        assert_eq!(
            st.shard.scatters, 0,
            "the seed was created replicated: {st:?}"
        );
        ran_on_every_worker(&s.worker_stats().unwrap(), "matmul", "dp training");
    }
}

#[test]
fn injected_movement_is_logged_as_modifier_inject() {
    let path = std::env::temp_dir().join(format!("gt-shard-log-{}.log", std::process::id()));
    let c = gt::config::Config {
        sharding: std::sync::Arc::new(standard()),
        instruction_log: Some(path.clone()),
        ..Default::default()
    };
    {
        let rt = Embedded::start(2, 1, &c).unwrap();
        let s = rt.session("log").unwrap();
        let x = make(&s, Some("row"), &[4, 3], 1);
        let w = make(&s, Some("col"), &[3, 4], 2);
        // Rows of x against columns of w: w is all-gathered worker to worker.
        let y = x.matmul(&w).sum();
        assert!(y.item().unwrap().is_finite());
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let injected: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("MODIFIER_INJECT"))
        .collect();
    assert!(injected.iter().any(|l| l.contains("| Send")), "{text}");
    assert!(injected.iter().any(|l| l.contains("| Recv")), "{text}");
    assert!(injected.iter().any(|l| l.contains("op=cat")), "{text}");
    // The client's own op runs once per worker and is logged as a plain send.
    let matmuls = text
        .lines()
        .filter(|l| l.contains("WORKER_SEND") && l.contains("op=matmul"))
        .count();
    assert_eq!(matmuls, 2, "{text}");
}

#[test]
fn auto_shard_splits_large_creations_along_axis_0() {
    let c = gt::config::Config {
        auto_shard: true,
        shard_threshold: 64,
        ..Default::default()
    };
    let rt = Embedded::start(3, 1, &c).unwrap();
    let s = rt.session("auto").unwrap();
    let big = s.try_full([10, 8], 2.0, DType::F64).unwrap();
    let small = s.try_full([2, 4], 1.0, DType::F64).unwrap();
    let r = (&big * &big).sum_dims(&[1], false);
    assert_eq!(r.to_vec_f64().unwrap(), vec![32.0; 10]);
    assert_eq!(small.to_vec_f64().unwrap(), vec![1.0; 8]);
    let st = s.dispatcher_stats().unwrap();
    assert_eq!(st.shard.placed_creations, 1, "{st:?}");
    ran_on_every_worker(&s.worker_stats().unwrap(), "mul", "auto shard");
}
