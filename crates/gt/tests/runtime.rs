//! The public API through the embedded runtime (client → dispatcher → worker, in-process):
//! every op against the float64 reference, client-side lowering (transpose, indexing,
//! unsqueeze), call-site errors, printing, poisoning, and the buffer pool staying flat.

use gt::runtime::Embedded;
use gt::{BinaryOp, DType, Idx, ReduceOp, Session, Tensor, UnaryOp};
use gt_ops::reference::{eval, RefTensor};
use gt_ops::Op;

fn rt(workers: usize) -> Embedded {
    Embedded::start(workers, 1, &gt::config::Config::default()).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * (1.0 + w.abs());
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// A random input and its reference twin (same values).
fn input(s: &Session, shape: &[usize], dtype: DType, positive: bool) -> (Tensor, RefTensor) {
    let t = s.try_randn(shape.to_vec(), dtype).unwrap();
    let t = if positive { t.try_exp().unwrap() } else { t };
    let r = RefTensor::new(shape.to_vec(), values(&t));
    (t, r)
}

#[test]
fn every_elementwise_and_reduction_op_matches_the_reference() {
    let rt = rt(1);
    let s = rt.session("ops").unwrap();
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        for op in UnaryOp::ALL {
            let (x, rx) = input(
                &s,
                &[3, 5],
                dtype,
                matches!(op, UnaryOp::Log | UnaryOp::Sqrt),
            );
            // Non-contiguous input: a transpose.
            let xt = x.transpose(0, 1);
            let rxt = eval(
                &Op::Permute {
                    perm: [1, 0].into_iter().collect(),
                },
                &[&rx],
            )
            .unwrap();
            let got = xt.op_unary(op);
            let want = eval(&Op::Unary(op), &[&rxt]).unwrap();
            close(&values(&got), &want.data, tol, op.name());
        }
        for op in BinaryOp::ALL {
            let (a, ra) = input(&s, &[4, 1, 3], dtype, matches!(op, BinaryOp::Pow));
            let (b, rb) = input(&s, &[5, 1], dtype, true);
            let got = a.op_binary(op, &b);
            assert_eq!(got.dims(), &[4, 5, 3]);
            let want = eval(&Op::Binary(op), &[&ra, &rb]).unwrap();
            close(&values(&got), &want.data, tol, op.name());
            // Scalars on either side.
            let left = a.try_scalar_lhs(op, 2.5).unwrap();
            let want = eval(
                &Op::BinaryScalar {
                    op,
                    scalar: 2.5,
                    scalar_left: true,
                },
                &[&ra],
            )
            .unwrap();
            close(&values(&left), &want.data, tol, op.name());
        }
        for op in ReduceOp::ALL {
            let (x, rx) = input(&s, &[2, 3, 4], dtype, false);
            for (axes, keep) in [
                (vec![0isize], false),
                (vec![-1, 0], true),
                (vec![1, 2], false),
            ] {
                let got = match op {
                    ReduceOp::Sum => x.sum_dims(&axes, keep),
                    ReduceOp::Mean => x.mean_dims(&axes, keep),
                    ReduceOp::Max => x.max_dims(&axes, keep),
                    ReduceOp::Min => x.min_dims(&axes, keep),
                };
                let mut norm: Vec<usize> = axes.iter().map(|&a| a.rem_euclid(3) as usize).collect();
                norm.sort();
                let want = eval(
                    &Op::Reduce {
                        op,
                        axes: norm.into_iter().collect(),
                        keepdim: keep,
                    },
                    &[&rx],
                )
                .unwrap();
                assert_eq!(got.shape(), &want.shape, "{} {axes:?}", op.name());
                close(&values(&got), &want.data, tol, op.name());
            }
        }
    }
}

trait Apply {
    fn op_unary(&self, op: UnaryOp) -> Tensor;
    fn op_binary(&self, op: BinaryOp, other: &Tensor) -> Tensor;
}

impl Apply for Tensor {
    fn op_unary(&self, op: UnaryOp) -> Tensor {
        match op {
            UnaryOp::Neg => -self,
            UnaryOp::Exp => self.exp(),
            UnaryOp::Log => self.log(),
            UnaryOp::Sqrt => self.sqrt(),
            UnaryOp::Relu => self.relu(),
            UnaryOp::Sigmoid => self.sigmoid(),
            UnaryOp::Tanh => self.tanh(),
            UnaryOp::Abs => self.abs(),
            UnaryOp::Sign => self.sign(),
            UnaryOp::Erf => self.erf(),
        }
    }
    fn op_binary(&self, op: BinaryOp, other: &Tensor) -> Tensor {
        match op {
            BinaryOp::Add => self + other,
            BinaryOp::Sub => self - other,
            BinaryOp::Mul => self * other,
            BinaryOp::Div => self / other,
            BinaryOp::Pow => self.pow(other),
            BinaryOp::Maximum => self.maximum(other),
            BinaryOp::Minimum => self.minimum(other),
        }
    }
}

#[test]
fn matmul_views_and_indexing() {
    let rt = rt(1);
    let s = rt.session("views").unwrap();
    let (a, ra) = input(&s, &[2, 1, 3, 4], DType::F64, false);
    let (b, rb) = input(&s, &[5, 2, 4], DType::F64, false);
    // Batched with broadcast batch dims, rhs transposed (non-contiguous).
    let bt = b.transpose(-1, -2);
    let rbt = eval(
        &Op::Permute {
            perm: [0, 2, 1].into_iter().collect(),
        },
        &[&rb],
    )
    .unwrap();
    let got = a.matmul(&bt);
    assert_eq!(got.dims(), &[2, 5, 3, 2]);
    let want = eval(&Op::MatMul, &[&ra, &rbt]).unwrap();
    assert_eq!(got.shape(), &want.shape);
    close(&values(&got), &want.data, 1e-12, "batched matmul");

    let g = s
        .try_arange(0.0, 24.0, 1.0, DType::F32)
        .unwrap()
        .reshape(&[2, 3, 4]);
    let picked = g.index(&[
        Idx::At(-1),
        Idx::step(0..3, 2),
        Idx::Range {
            start: Some(1),
            end: None,
            step: 2,
        },
    ]);
    assert_eq!(picked.dims(), &[2, 2]);
    assert_eq!(picked.to_vec().unwrap(), vec![13.0, 15.0, 21.0, 23.0]);
    let u = g.unsqueeze(1).squeeze(1).reshape(&[-1, 8]).t();
    assert_eq!(u.dims(), &[8, 3]);
    assert_eq!(u.to_vec().unwrap()[..4], [0.0, 8.0, 16.0, 1.0]);
    // A reshape of a non-contiguous view copies correctly.
    let flat = g.transpose(0, 2).reshape(&[-1]);
    assert_eq!(flat.to_vec().unwrap()[..4], [0.0, 12.0, 4.0, 16.0]);
    assert_eq!(g.sum().item().unwrap(), 276.0);
    assert_eq!(g.max().item().unwrap(), 23.0);
    assert_eq!(g.mean().item().unwrap(), 11.5);
}

#[test]
fn errors_name_the_op_and_shapes_at_the_call_site() {
    let rt = rt(1);
    let s = rt.session("errors").unwrap();
    let a = s.try_full([2, 3], 1.0, DType::F32).unwrap();
    let b = s.try_full([4, 5], 1.0, DType::F32).unwrap();
    let e = a.try_matmul(&b).unwrap_err().to_string();
    assert!(
        e.contains("matmul") && e.contains("[2, 3]") && e.contains("[4, 5]"),
        "{e}"
    );
    let e = a.try_add(&b).unwrap_err().to_string();
    assert!(
        e.contains("add") && e.contains("[2, 3]") && e.contains("[4, 5]"),
        "{e}"
    );
    let e = a.try_sum_dims(&[2], false).unwrap_err().to_string();
    assert!(e.contains("sum") && e.contains("axis 2"), "{e}");
    let e = a.try_reshape(&[-1, -1]).unwrap_err().to_string();
    assert!(e.contains("reshape"), "{e}");
    let e = a.try_index(&[Idx::At(5)]).unwrap_err().to_string();
    assert!(e.contains("out of bounds"), "{e}");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.matmul(&b)));
    let msg = caught.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("matmul"), "{msg}");
    // The session is still fine after errors.
    assert_eq!(a.sum().item().unwrap(), 6.0);
}

#[test]
fn printing_looks_like_pytorch() {
    let rt = rt(1);
    let s = rt.session("print").unwrap();
    let t = s.try_tensor(&[1.0, 2.0, 3.0, 4.5], [2, 2]).unwrap();
    assert_eq!(
        t.to_string(),
        "tensor([[1.0000, 2.0000],\n        [3.0000, 4.5000]])"
    );
    let d = s.try_full([2], 1.0, DType::F64).unwrap();
    assert_eq!(d.to_string(), "tensor([1., 1.], dtype=float64)");
}

#[test]
fn random_values_do_not_depend_on_where_they_run() {
    let one = rt(1);
    let two = rt(2);
    let (s1, s2) = (one.session("a").unwrap(), two.session("b").unwrap());
    s1.manual_seed(42);
    s2.manual_seed(42);
    let a = s1.try_randn([50], DType::F32).unwrap();
    let b = s2.try_randn([50], DType::F32).unwrap().to_worker(1);
    assert_eq!(a.to_vec().unwrap(), b.to_vec().unwrap());
    let want = eval(
        &Op::Random {
            dist: gt_ops::Dist::Normal,
            shape: [50].into(),
            dtype: DType::F64,
            seed: 42,
            stream: 0,
        },
        &[],
    )
    .unwrap();
    close(&values(&a), &want.data, 1e-6, "randn");
}

#[test]
fn poisoned_results_carry_their_cause_to_dependents() {
    let rt = rt(2);
    let s = rt.session("poison").unwrap();
    let x = s.try_full([2], 1.0, DType::F32).unwrap();
    let bad = x.to_worker(9);
    let derived = bad.try_mul_scalar(3.0).unwrap().try_exp().unwrap();
    let e = derived.to_vec().unwrap_err().to_string();
    assert!(e.contains("no worker 9"), "{e}");
    assert_eq!(x.to_vec().unwrap(), vec![1.0, 1.0]);
}

#[test]
fn steady_loop_allocates_nothing_new_and_frees_everything() {
    let rt = rt(1);
    let s = rt.session("pool").unwrap();
    let b = s.try_full([16, 16], 1.0, DType::F32).unwrap();
    let mut a = s.try_zeros_like(&b).unwrap();
    for _ in 0..100 {
        a = a.try_add(&b).unwrap();
    }
    s.sync().unwrap();
    let before = s.worker_stats().unwrap()[0].clone();
    for _ in 0..10_000 {
        a = a.try_add(&b).unwrap();
    }
    assert_eq!(a.max().item().unwrap(), 10_100.0);
    let after = s.worker_stats().unwrap()[0].clone();
    assert!(
        after.pool_misses <= before.pool_misses + 2,
        "the loop allocated: {before:?} -> {after:?}"
    );
    assert!(after.pool_hits >= before.pool_hits + 10_000);
    assert_eq!(after.live_tensors, 2);
    // The executor's busy time counts the loop's work: 20,000 instructions took some.
    assert!(
        after.busy_ns > before.busy_ns && before.busy_ns > 0,
        "busy time {} -> {} ns",
        before.busy_ns,
        after.busy_ns
    );
    drop((a, b));
    s.sync().unwrap();
    assert_eq!(s.worker_stats().unwrap()[0].live_tensors, 0);
}

#[test]
fn tiny_batches_through_every_hand_off_keep_the_stream_in_order() {
    // Client batches of 3 and worker batches of 2 on two workers: every flush reuses a recycled
    // vector, every batch crosses the parking queues, and inputs move between workers. The
    // values must be those of one long stream.
    let cfg = gt::config::Config {
        client_batch: 3,
        worker_batch: Some(2),
        ..Default::default()
    };
    let rt = Embedded::start(2, 1, &cfg).unwrap();
    let s = rt.session("tiny-batches").unwrap();
    let mut a = s.try_full([4], 0.0, DType::F64).unwrap();
    let b = s.try_full([4], 1.0, DType::F64).unwrap().to_worker(1);
    let mut want = 0.0;
    for i in 0..200 {
        a = a.try_add(&b).unwrap().try_mul_scalar(0.5).unwrap();
        want = (want + 1.0) * 0.5;
        if i % 37 == 0 {
            assert_eq!(values(&a), vec![want; 4], "after step {i}");
        }
    }
    assert_eq!(values(&a), vec![want; 4]);
}
