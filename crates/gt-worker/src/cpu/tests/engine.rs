//! Engine-level behaviour: creation ops, casts between all dtypes, upload/download, errors,
//! the buffer pool, thread-count independence and the benchmark entry point.

use super::*;

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CpuTensor>();
    send_sync::<CpuEngine>();
    send_sync::<Pool>();
}

#[test]
fn tensors_stay_small() {
    // Under 128 bytes a move is inline vector stores, not a `memmove` call (see `Strides`).
    assert!(
        std::mem::size_of::<CpuTensor>() < 128,
        "{}",
        std::mem::size_of::<CpuTensor>()
    );
}

#[test]
fn rank0_tensors() {
    let mut e = CpuEngine::new(1);
    for dtype in FLOATS {
        let x = input(&mut e, &[], dtype, 1, 0.5, 2.0);
        let y = input(&mut e, &[], dtype, 2, 0.5, 2.0);
        let tol = rtol(dtype);
        check(
            &mut e,
            &Op::Binary(BinaryOp::Div),
            &[&x, &y],
            tol,
            "scalar / scalar",
        );
        check(&mut e, &Op::Unary(UnaryOp::Log), &[&x], tol, "log scalar");
        for op in ReduceOp::ALL {
            for keepdim in [false, true] {
                let r = Op::Reduce {
                    op,
                    axes: smallvec![],
                    keepdim,
                };
                check(&mut e, &r, &[&x], tol, "reduce scalar");
            }
        }
        check(
            &mut e,
            &Op::Reshape {
                shape: Shape::new([1, 1]),
            },
            &[&x],
            tol,
            "reshape scalar",
        );
        check(
            &mut e,
            &Op::Expand {
                shape: Shape::new([2, 3]),
            },
            &[&x],
            tol,
            "expand scalar",
        );
        check(
            &mut e,
            &Op::Permute { perm: smallvec![] },
            &[&x],
            tol,
            "permute scalar",
        );
    }
}

#[test]
fn creation_ops() {
    let mut e = CpuEngine::new(1);
    let exact = |dtype: DType, w: f64| match dtype {
        DType::F32 => w as f32 as f64,
        DType::F64 => w,
        DType::I64 => w as i64 as f64,
        DType::Bool => (w != 0.0) as u8 as f64,
    };
    let mut ops = Vec::new();
    for dtype in [DType::F32, DType::F64, DType::I64, DType::Bool] {
        ops.push(Op::Full {
            shape: Shape::new([2, 3]),
            value: -2.75,
            dtype,
        });
        ops.push(Op::Full {
            shape: Shape::new([0, 3]),
            value: 1.0,
            dtype,
        });
        ops.push(Op::Arange {
            start: -1.5,
            step: 0.7,
            len: 11,
            dtype,
        });
    }
    for dtype in FLOATS {
        for dist in [Dist::Uniform, Dist::Normal] {
            ops.push(Op::Random {
                dist,
                shape: Shape::new([3, 50]),
                dtype,
                seed: 42,
                stream: 3,
            });
        }
    }
    for op in &ops {
        let got = e.execute(op, &[]).unwrap();
        let want = eval(op, &[]).unwrap();
        let dtype = got.dtype();
        let want = RefTensor::new(
            want.shape,
            want.data.iter().map(|&w| exact(dtype, w)).collect(),
        );
        assert_eq!(to_ref(&mut e, &got), want, "{op}");
    }
    assert!(e
        .execute(
            &Op::Random {
                dist: Dist::Uniform,
                shape: Shape::new([2]),
                dtype: DType::I64,
                seed: 0,
                stream: 0
            },
            &[]
        )
        .is_err());
}

#[test]
fn casts_between_all_dtypes() {
    let mut e = CpuEngine::new(1);
    let vals = [-2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.7, 3.0];
    let all = [DType::F32, DType::F64, DType::I64, DType::Bool];
    let conv = |d: DType, v: f64| match d {
        DType::F32 => v as f32 as f64,
        DType::F64 => v,
        DType::I64 => v as i64 as f64,
        DType::Bool => (v != 0.0) as u8 as f64,
    };
    let src = e.upload(&TensorData::from_f64([2, 4], &vals)).unwrap();
    for from in all {
        let x = e.execute(&Op::Cast { dtype: from }, &[&src]).unwrap();
        let xt = permute(&mut e, &x, &[1, 0]);
        let xv = e.download(&x).to_f64_vec();
        assert_eq!(
            xv,
            vals.iter().map(|&v| conv(from, v)).collect::<Vec<_>>(),
            "to {from}"
        );
        for to in all {
            let y = e.execute(&Op::Cast { dtype: to }, &[&x]).unwrap();
            assert_eq!(y.dtype(), to);
            let want: Vec<f64> = xv.iter().map(|&v| conv(to, v)).collect();
            assert_eq!(e.download(&y).to_f64_vec(), want, "{from} -> {to}");
            let yt = e.execute(&Op::Cast { dtype: to }, &[&xt]).unwrap();
            let want_t: Vec<f64> = (0..8).map(|i| want[(i % 2) * 4 + i / 2]).collect();
            assert_eq!(
                e.download(&yt).to_f64_vec(),
                want_t,
                "{from} -> {to} transposed"
            );
        }
    }
}

#[test]
fn upload_download_round_trip() {
    let mut e = CpuEngine::new(1);
    for dtype in [DType::F32, DType::F64, DType::I64, DType::Bool] {
        let x = input(&mut e, &[3, 5], dtype, 9, -4.0, 4.0);
        let d = e.download(&x);
        assert_eq!(d.dtype, dtype);
        let y = e.upload(&d).unwrap();
        assert_eq!(e.download(&y), d);
        assert!(e.storage_bytes(&y) >= 15 * dtype.size());
    }
    let b = e
        .upload(&TensorData {
            dtype: DType::Bool,
            shape: Shape::new([3]),
            bytes: vec![0, 2, 1],
        })
        .unwrap();
    assert_eq!(e.download(&b).bytes, vec![0, 1, 1]);
    let bad = TensorData {
        dtype: DType::F32,
        shape: Shape::new([3]),
        bytes: vec![0; 5],
    };
    assert!(e.upload(&bad).is_err());
}

#[test]
fn invalid_ops_are_errors() {
    let mut e = CpuEngine::new(1);
    let a = input(&mut e, &[2, 3], DType::F32, 1, 0.0, 1.0);
    let b = input(&mut e, &[4], DType::F32, 2, 0.0, 1.0);
    let i = input(&mut e, &[2, 3], DType::I64, 3, 0.0, 9.0);
    assert!(matches!(
        e.execute(&Op::Binary(BinaryOp::Add), &[&a, &b]),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        e.execute(&Op::Unary(UnaryOp::Exp), &[&i]),
        Err(Error::DType { .. })
    ));
    assert!(e.execute(&Op::Binary(BinaryOp::Add), &[&a]).is_err());
    assert!(e.execute(&Op::MatMul, &[&a, &a]).is_err());
}

#[test]
fn pool_reuses_buffers_in_steady_loop() {
    let mut e = CpuEngine::new(1);
    let b = input(&mut e, &[16, 16], DType::F32, 1, 0.0, 1.0);
    let mut a = input(&mut e, &[16, 16], DType::F32, 2, 0.0, 1.0);
    let add = Op::Binary(BinaryOp::Add);
    for _ in 0..5 {
        a = e.execute(&add, &[&a, &b]).unwrap();
    }
    let warm = e.pool_stats();
    for _ in 0..10_000 {
        a = e.execute(&add, &[&a, &b]).unwrap();
    }
    let s = e.pool_stats();
    assert_eq!(s.misses, warm.misses, "{s:?}");
    assert!(s.hits >= warm.hits + 10_000, "{s:?}");
    assert_eq!(s.in_use_bytes, 2 * 16 * 16 * 4);
    drop((a, b));
    let s = e.pool_stats();
    assert!(s.in_use_bytes == 0 && s.cached_bytes >= 2048, "{s:?}");

    // A zero cap caches nothing.
    let mut e = CpuEngine::with_pool_cap(1, 0);
    let b = input(&mut e, &[16, 16], DType::F32, 1, 0.0, 1.0);
    let mut a = b.clone();
    for _ in 0..10 {
        a = e.execute(&add, &[&a, &b]).unwrap();
    }
    let s = e.pool_stats();
    assert_eq!((s.hits, s.cached_bytes), (0, 0), "{s:?}");
    drop(a);
}

#[test]
fn size_classes_bound_slack() {
    let mut last = (0, 0);
    for w in 1..100_000 {
        let (i, c) = buffer::size_class(w);
        assert!(c >= w && c * 4 <= w * 5 + 3 * 4, "{w} -> {c}");
        assert!(
            buffer::size_class(c) == (i, c),
            "{w}: class {c} is its own class"
        );
        assert!(
            i >= last.0 && (i == last.0) == (c == last.1),
            "{w}: index {i} class {c} after {last:?}"
        );
        last = (i, c);
    }
}

#[test]
fn the_thread_pool_starts_with_the_first_large_op() {
    let mut e = CpuEngine::new(2);
    let small = input(&mut e, &[16, 16], DType::F32, 1, -1.0, 1.0);
    e.execute(&Op::Binary(BinaryOp::Add), &[&small, &small])
        .unwrap();
    assert!(
        e.rayon.get().is_none(),
        "a small op started the thread pool"
    );
    assert_eq!(e.threads(), 2);
    let big = input(&mut e, &[1024, 1024], DType::F32, 2, -1.0, 1.0);
    e.execute(&Op::Binary(BinaryOp::Add), &[&big, &big])
        .unwrap();
    assert!(matches!(e.rayon.get(), Some(Some(_))), "no thread pool");
    assert_eq!(e.threads(), 2);
}

#[test]
fn threads_do_not_change_results() {
    let mut e1 = CpuEngine::new(1);
    let mut e2 = CpuEngine::new(2);
    // Sizes are above the parallel thresholds (2^19 weighted elements, 2^22 for one gemm).
    let run = |e: &mut CpuEngine| -> Vec<TensorData> {
        let a = input(e, &[512, 1100], DType::F32, 1, -1.0, 1.0);
        let b = input(e, &[1100], DType::F32, 2, 0.5, 1.0);
        let at = permute(e, &a, &[1, 0]);
        let w = input(e, &[64, 9000], DType::F64, 7, -1.0, 1.0);
        let m1 = input(e, &[256, 128], DType::F64, 3, -1.0, 1.0);
        let m2 = input(e, &[128, 128], DType::F64, 4, -1.0, 1.0);
        let bm = input(e, &[256, 16, 16], DType::F32, 5, -1.0, 1.0);
        let sq = input(e, &[16, 16], DType::F32, 6, -1.0, 1.0);
        let sum = |axes: &[usize]| Op::Reduce {
            op: ReduceOp::Sum,
            axes: axes.into(),
            keepdim: false,
        };
        let rand = Op::Random {
            dist: Dist::Normal,
            shape: Shape::new([70_000]),
            dtype: DType::F32,
            seed: 5,
            stream: 1,
        };
        let outs = [
            e.execute(&Op::Binary(BinaryOp::Mul), &[&a, &a]),
            e.execute(&Op::Binary(BinaryOp::Add), &[&a, &b]),
            e.execute(&Op::Unary(UnaryOp::Tanh), &[&at]),
            e.execute(&sum(&[0]), &[&a]),
            e.execute(&sum(&[1]), &[&a]),
            e.execute(&sum(&[]), &[&at]),
            e.execute(&sum(&[0]), &[&w]),
            e.execute(&rand, &[]),
            e.execute(
                &Op::Reshape {
                    shape: Shape::new([563_200]),
                },
                &[&at],
            ),
            e.execute(&Op::MatMul, &[&m1, &m2]),
            e.execute(&Op::MatMul, &[&bm, &sq]),
        ];
        outs.into_iter().map(|t| e.download(&t.unwrap())).collect()
    };
    let (r1, r2) = (run(&mut e1), run(&mut e2));
    for (i, (x, y)) in r1.iter().zip(&r2).enumerate() {
        if i < 9 {
            assert_eq!(x, y, "output {i}");
        } else {
            let (x, y) = (
                RefTensor::new(x.shape.clone(), x.to_f64_vec()),
                RefTensor::new(y.shape.clone(), y.to_f64_vec()),
            );
            assert_close(&y, &x, 1e-5, &format!("matmul {i}"));
        }
    }
}

#[test]
fn bench_kernels_runs() {
    let (add, mm) = bench_kernels(10);
    assert!(add > 0.0 && mm > 0.0);
}
