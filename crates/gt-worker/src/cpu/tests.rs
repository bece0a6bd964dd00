//! Table-driven tests of the CPU engine against the float64 reference (`gt_ops::reference`):
//! every op variant, in f32 and f64, on contiguous, broadcast and strided inputs; plus the
//! buffer pool, views sharing storage, casts, uploads and thread-count independence.

use super::*;
use gt_ops::reference::{eval, RefTensor};
use gt_ops::{random, ReduceOp, SliceSpec, UnaryOp};
use smallvec::smallvec;

const FLOATS: [DType; 2] = [DType::F32, DType::F64];

fn rtol(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-5,
        DType::F64 | DType::I64 | DType::Bool => 1e-12,
    }
}

/// A deterministic tensor with values in `[lo, hi)`.
fn input(e: &mut CpuEngine, shape: &[usize], dtype: DType, seed: u64, lo: f64, hi: f64) -> CpuTensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|i| lo + (hi - lo) * random::uniform(seed, 7, i as u64)).collect();
    let data = match dtype {
        DType::F32 => TensorData::from_f32(shape, &v.iter().map(|&x| x as f32).collect::<Vec<_>>()),
        DType::F64 => TensorData::from_f64(shape, &v),
        DType::I64 => TensorData {
            dtype,
            shape: shape.into(),
            bytes: v.iter().flat_map(|&x| (x.round() as i64).to_le_bytes()).collect(),
        },
        DType::Bool => TensorData { dtype, shape: shape.into(), bytes: v.iter().map(|&x| (x > 0.0) as u8).collect() },
    };
    e.upload(&data).unwrap()
}

fn to_ref(e: &mut CpuEngine, t: &CpuTensor) -> RefTensor {
    let d = e.download(t);
    RefTensor::new(d.shape.clone(), d.to_f64_vec())
}

fn assert_close(got: &RefTensor, want: &RefTensor, rtol: f64, what: &str) {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    for (i, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= rtol * w.abs().max(1.0)
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// Executes `op` on the engine and on the reference (fed the engine inputs' values) and
/// compares; also checks the result's meta against shape inference.
fn check(e: &mut CpuEngine, op: &Op, inputs: &[&CpuTensor], rtol: f64, what: &str) -> CpuTensor {
    let refs: Vec<RefTensor> = inputs.iter().map(|t| to_ref(e, t)).collect();
    let want = eval(op, &refs.iter().collect::<Vec<_>>()).unwrap();
    let got = e.execute(op, inputs).unwrap_or_else(|err| panic!("{what}: {err}"));
    let metas: Vec<Meta> = inputs.iter().map(|t| t.meta()).collect();
    assert_eq!(got.meta(), infer(op, &metas.iter().collect::<Vec<_>>()).unwrap(), "{what}: meta");
    assert_close(&to_ref(e, &got), &want, rtol, &format!("{what} ({op})"));
    got
}

fn permute(e: &mut CpuEngine, t: &CpuTensor, perm: &[usize]) -> CpuTensor {
    e.execute(&Op::Permute { perm: perm.into() }, &[t]).unwrap()
}

fn slice(e: &mut CpuEngine, t: &CpuTensor, specs: &[(usize, usize, usize)]) -> CpuTensor {
    let specs = specs.iter().map(|&(start, len, step)| SliceSpec { start, len, step }).collect();
    e.execute(&Op::Slice { specs }, &[t]).unwrap()
}

fn expand(e: &mut CpuEngine, t: &CpuTensor, shape: &[usize]) -> CpuTensor {
    e.execute(&Op::Expand { shape: shape.into() }, &[t]).unwrap()
}

/// Contiguous, transposed, stepped-slice and expanded variants of a `[4, 6]`-shaped input.
fn variants(e: &mut CpuEngine, dtype: DType, seed: u64, lo: f64, hi: f64) -> Vec<(&'static str, CpuTensor)> {
    let c = input(e, &[4, 6], dtype, seed, lo, hi);
    let t = input(e, &[6, 4], dtype, seed + 1, lo, hi);
    let t = permute(e, &t, &[1, 0]);
    let big = input(e, &[9, 13], dtype, seed + 2, lo, hi);
    let s = slice(e, &big, &[(1, 4, 2), (0, 6, 2)]);
    let row = input(e, &[1, 6], dtype, seed + 3, lo, hi);
    let x = expand(e, &row, &[4, 6]);
    vec![("contiguous", c), ("transposed", t), ("stepped slice", s), ("expanded", x)]
}

#[test]
fn unary_ops_match_reference() {
    let mut e = CpuEngine::new(1);
    for dtype in FLOATS {
        for op in UnaryOp::ALL {
            let (lo, hi) = match op {
                UnaryOp::Log | UnaryOp::Sqrt => (0.05, 4.0),
                _ => (-4.0, 4.0),
            };
            for (kind, x) in variants(&mut e, dtype, 10, lo, hi) {
                let r = check(&mut e, &Op::Unary(op), &[&x], rtol(dtype), &format!("{dtype} {kind}"));
                assert!(r.is_contiguous());
            }
        }
    }
}

#[test]
fn binary_ops_broadcast_and_strided() {
    let mut e = CpuEngine::new(1);
    let shapes: [(&[usize], &[usize]); 6] =
        [(&[3, 1, 4], &[5, 1]), (&[2, 3], &[2, 3]), (&[4], &[]), (&[], &[2, 2]), (&[2, 3, 4], &[3, 4]), (&[1], &[3, 1])];
    for dtype in FLOATS {
        for op in BinaryOp::ALL {
            let what = |s: &str| format!("{dtype} {} {s}", op.name());
            for (sa, sb) in shapes {
                let a = input(&mut e, sa, dtype, 1, -3.0, 3.0);
                let b = input(&mut e, sb, dtype, 2, 0.5, 2.0);
                check(&mut e, &Op::Binary(op), &[&a, &b], rtol(dtype), &what(&format!("{sa:?} {sb:?}")));
                check(&mut e, &Op::Binary(op), &[&b, &a], rtol(dtype), &what(&format!("{sb:?} {sa:?}")));
            }
            let vs = variants(&mut e, dtype, 20, 0.5, 2.0);
            for (ka, a) in &vs {
                for (kb, b) in &vs {
                    check(&mut e, &Op::Binary(op), &[a, b], rtol(dtype), &what(&format!("{ka} with {kb}")));
                }
            }
            // A transposed operand broadcast against a row.
            let row = input(&mut e, &[6], dtype, 3, 0.5, 2.0);
            check(&mut e, &Op::Binary(op), &[&vs[1].1, &row], rtol(dtype), &what("transposed with row"));
        }
    }
}

#[test]
fn mixed_dtypes_promote() {
    let mut e = CpuEngine::new(1);
    let a = input(&mut e, &[3, 4], DType::F32, 1, -2.0, 2.0);
    let b = input(&mut e, &[4], DType::F64, 2, 0.5, 2.0);
    let i = input(&mut e, &[3, 4], DType::I64, 3, -5.0, 5.0);
    let z = input(&mut e, &[3, 1], DType::Bool, 4, -1.0, 1.0);
    for op in BinaryOp::ALL {
        let r = check(&mut e, &Op::Binary(op), &[&a, &b], 1e-12, "f32 with f64");
        assert_eq!(r.dtype(), DType::F64);
        let r = check(&mut e, &Op::Binary(op), &[&i, &a], 1e-5, "i64 with f32");
        assert_eq!(r.dtype(), DType::F32);
        let r = check(&mut e, &Op::Binary(op), &[&b, &z], 1e-12, "f64 with bool");
        assert_eq!(r.dtype(), DType::F64);
    }
    let m = input(&mut e, &[4, 2], DType::F64, 5, -1.0, 1.0);
    let r = check(&mut e, &Op::MatMul, &[&a, &m], 1e-12, "f32 @ f64");
    assert_eq!(r.dtype(), DType::F64);
}

#[test]
fn scalar_ops_match_reference() {
    let mut e = CpuEngine::new(1);
    for dtype in FLOATS {
        for op in BinaryOp::ALL {
            for scalar_left in [false, true] {
                for scalar in [2.5, -0.1] {
                    for (kind, x) in variants(&mut e, dtype, 30, 0.5, 3.0) {
                        let o = Op::BinaryScalar { op, scalar, scalar_left };
                        check(&mut e, &o, &[&x], rtol(dtype), &format!("{dtype} {kind}"));
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_matches_reference() {
    let mut e = CpuEngine::new(1);
    let cases: [(&[usize], &[usize]); 8] = [
        (&[3, 4], &[4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[2, 1, 3, 4], &[5, 4, 6]),
        (&[4], &[4, 5]),
        (&[3, 4], &[4]),
        (&[4], &[4]),
        (&[2, 3, 4], &[4]),
        (&[3, 0], &[0, 2]),
    ];
    for dtype in FLOATS {
        let tol = rtol(dtype);
        for (sa, sb) in cases {
            let a = input(&mut e, sa, dtype, 1, -1.0, 1.0);
            let b = input(&mut e, sb, dtype, 2, -1.0, 1.0);
            check(&mut e, &Op::MatMul, &[&a, &b], tol, &format!("{dtype} {sa:?} @ {sb:?}"));
        }
        // Transposed operands, batched with broadcast batch dims.
        let a = input(&mut e, &[2, 1, 4, 3], dtype, 3, -1.0, 1.0);
        let a = permute(&mut e, &a, &[0, 1, 3, 2]);
        let b = input(&mut e, &[5, 4], dtype, 4, -1.0, 1.0);
        let b = permute(&mut e, &b, &[1, 0]);
        let b3 = expand(&mut e, &b, &[3, 4, 5]);
        check(&mut e, &Op::MatMul, &[&a, &b], tol, &format!("{dtype} transposed"));
        check(&mut e, &Op::MatMul, &[&a, &b3], tol, &format!("{dtype} transposed, expanded"));
        let big = input(&mut e, &[7, 9], dtype, 5, -1.0, 1.0);
        let s = slice(&mut e, &big, &[(1, 3, 2), (0, 4, 2)]);
        check(&mut e, &Op::MatMul, &[&s, &b], tol, &format!("{dtype} stepped slice"));
    }
}

#[test]
fn reductions_match_reference() {
    let mut e = CpuEngine::new(1);
    let axes_sets: [&[usize]; 7] = [&[], &[0], &[1], &[2], &[0, 2], &[1, 2], &[0, 1, 2]];
    for dtype in FLOATS {
        let x = input(&mut e, &[3, 4, 5], dtype, 1, -2.0, 2.0);
        let t = input(&mut e, &[5, 3, 4], dtype, 2, -2.0, 2.0);
        let t = permute(&mut e, &t, &[1, 2, 0]);
        let big = input(&mut e, &[4, 9, 11], dtype, 3, -2.0, 2.0);
        let s = slice(&mut e, &big, &[(1, 3, 1), (0, 4, 2), (1, 5, 2)]);
        let wide = input(&mut e, &[6, 20, 16], dtype, 4, -2.0, 2.0);
        for op in ReduceOp::ALL {
            for axes in axes_sets {
                for keepdim in [false, true] {
                    let r = Op::Reduce { op, axes: axes.into(), keepdim };
                    for (kind, v) in [("contiguous", &x), ("transposed", &t), ("sliced", &s), ("wide", &wide)] {
                        check(&mut e, &r, &[v], rtol(dtype), &format!("{dtype} {kind}"));
                    }
                }
            }
        }
        // NaN propagates through max (and sums).
        let mut vals = vec![1.0; 12];
        vals[5] = f64::NAN;
        let n = e.upload(&TensorData::from_f64([3, 4], &vals)).unwrap();
        let n = e.execute(&Op::Cast { dtype }, &[&n]).unwrap();
        for axes in [&[][..], &[0], &[1]] {
            let r = Op::Reduce { op: ReduceOp::Max, axes: axes.into(), keepdim: false };
            check(&mut e, &r, &[&n], 0.0, &format!("{dtype} max with NaN"));
        }
        // Empty reductions: sum is 0, mean is NaN.
        let z = input(&mut e, &[0, 3], dtype, 5, 0.0, 1.0);
        for op in [ReduceOp::Sum, ReduceOp::Mean] {
            check(&mut e, &Op::Reduce { op, axes: smallvec![0], keepdim: false }, &[&z], 0.0, "empty");
        }
    }
}

#[test]
fn views_share_storage_and_match_reference() {
    let mut e = CpuEngine::new(1);
    for dtype in FLOATS {
        let tol = rtol(dtype);
        let x = input(&mut e, &[4, 5], dtype, 1, -1.0, 1.0);
        let same = |a: &CpuTensor, b: &CpuTensor| Arc::ptr_eq(a.storage(), b.storage());
        let r = check(&mut e, &Op::Reshape { shape: Shape::new([2, 10]) }, &[&x], tol, "reshape");
        assert!(same(&r, &x));
        let p = check(&mut e, &Op::Permute { perm: smallvec![1, 0] }, &[&x], tol, "permute");
        assert!(same(&p, &x) && !p.is_contiguous());
        let specs = smallvec![SliceSpec { start: 1, len: 2, step: 1 }, SliceSpec { start: 0, len: 5, step: 1 }];
        let rows = check(&mut e, &Op::Slice { specs }, &[&x], tol, "row slice");
        assert!(same(&rows, &x) && rows.is_contiguous() && rows.layout().offset == 5);
        let r = check(&mut e, &Op::Reshape { shape: Shape::new([10]) }, &[&rows], tol, "reshape of offset view");
        assert!(same(&r, &x));
        let specs = smallvec![SliceSpec { start: 2, len: 2, step: 1 }, SliceSpec { start: 4, len: 0, step: 1 }];
        check(&mut e, &Op::Slice { specs }, &[&x], tol, "empty slice");
        let col = input(&mut e, &[4, 1], dtype, 2, -1.0, 1.0);
        let ex = check(&mut e, &Op::Expand { shape: Shape::new([2, 4, 3]) }, &[&col], tol, "expand");
        assert!(same(&ex, &col) && ex.layout().strides.as_slice() == [0, 1, 0]);
        // Reshape of non-contiguous views copies.
        for shape in [Shape::new([20]), Shape::new([2, 2, 5]), Shape::new([5, 4])] {
            let r = check(&mut e, &Op::Reshape { shape }, &[&p], tol, "reshape of transposed");
            assert!(!same(&r, &x) && r.is_contiguous());
        }
        let r = check(&mut e, &Op::Reshape { shape: Shape::new([24]) }, &[&ex], tol, "reshape of expanded");
        assert!(!same(&r, &col));
        check(&mut e, &Op::Permute { perm: smallvec![2, 0, 1] }, &[&ex], tol, "permute of expanded");
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
        ops.push(Op::Full { shape: Shape::new([2, 3]), value: -2.75, dtype });
        ops.push(Op::Full { shape: Shape::new([0, 3]), value: 1.0, dtype });
        ops.push(Op::Arange { start: -1.5, step: 0.7, len: 11, dtype });
    }
    for dtype in FLOATS {
        for dist in [Dist::Uniform, Dist::Normal] {
            ops.push(Op::Random { dist, shape: Shape::new([3, 50]), dtype, seed: 42, stream: 3 });
        }
    }
    for op in &ops {
        let got = e.execute(op, &[]).unwrap();
        let want = eval(op, &[]).unwrap();
        let dtype = got.dtype();
        let want = RefTensor::new(want.shape, want.data.iter().map(|&w| exact(dtype, w)).collect());
        assert_eq!(to_ref(&mut e, &got), want, "{op}");
    }
    assert!(e.execute(&Op::Random { dist: Dist::Uniform, shape: Shape::new([2]), dtype: DType::I64, seed: 0, stream: 0 }, &[]).is_err());
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
        assert_eq!(xv, vals.iter().map(|&v| conv(from, v)).collect::<Vec<_>>(), "to {from}");
        for to in all {
            let y = e.execute(&Op::Cast { dtype: to }, &[&x]).unwrap();
            assert_eq!(y.dtype(), to);
            let want: Vec<f64> = xv.iter().map(|&v| conv(to, v)).collect();
            assert_eq!(e.download(&y).to_f64_vec(), want, "{from} -> {to}");
            let yt = e.execute(&Op::Cast { dtype: to }, &[&xt]).unwrap();
            let want_t: Vec<f64> = (0..8).map(|i| want[(i % 2) * 4 + i / 2]).collect();
            assert_eq!(e.download(&yt).to_f64_vec(), want_t, "{from} -> {to} transposed");
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
    let b = e.upload(&TensorData { dtype: DType::Bool, shape: Shape::new([3]), bytes: vec![0, 2, 1] }).unwrap();
    assert_eq!(e.download(&b).bytes, vec![0, 1, 1]);
    let bad = TensorData { dtype: DType::F32, shape: Shape::new([3]), bytes: vec![0; 5] };
    assert!(e.upload(&bad).is_err());
}

#[test]
fn invalid_ops_are_errors() {
    let mut e = CpuEngine::new(1);
    let a = input(&mut e, &[2, 3], DType::F32, 1, 0.0, 1.0);
    let b = input(&mut e, &[4], DType::F32, 2, 0.0, 1.0);
    let i = input(&mut e, &[2, 3], DType::I64, 3, 0.0, 9.0);
    assert!(matches!(e.execute(&Op::Binary(BinaryOp::Add), &[&a, &b]), Err(Error::Shape { .. })));
    assert!(matches!(e.execute(&Op::Unary(UnaryOp::Exp), &[&i]), Err(Error::DType { .. })));
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
        assert!(buffer::size_class(c) == (i, c), "{w}: class {c} is its own class");
        assert!(i >= last.0 && (i == last.0) == (c == last.1), "{w}: index {i} class {c} after {last:?}");
        last = (i, c);
    }
}

#[test]
fn threads_do_not_change_results() {
    let mut e1 = CpuEngine::new(1);
    let mut e2 = CpuEngine::new(2);
    let run = |e: &mut CpuEngine| -> Vec<TensorData> {
        let a = input(e, &[256, 300], DType::F32, 1, -1.0, 1.0);
        let b = input(e, &[300], DType::F32, 2, 0.5, 1.0);
        let at = permute(e, &a, &[1, 0]);
        let m1 = input(e, &[128, 96], DType::F64, 3, -1.0, 1.0);
        let m2 = input(e, &[96, 128], DType::F64, 4, -1.0, 1.0);
        let bm = input(e, &[64, 16, 16], DType::F32, 5, -1.0, 1.0);
        let sq = input(e, &[16, 16], DType::F32, 6, -1.0, 1.0);
        let sum = |axes: &[usize]| Op::Reduce { op: ReduceOp::Sum, axes: axes.into(), keepdim: false };
        let rand = Op::Random { dist: Dist::Normal, shape: Shape::new([70_000]), dtype: DType::F32, seed: 5, stream: 1 };
        let outs = [
            e.execute(&Op::Binary(BinaryOp::Mul), &[&a, &a]),
            e.execute(&Op::Binary(BinaryOp::Add), &[&a, &b]),
            e.execute(&Op::Unary(UnaryOp::Tanh), &[&at]),
            e.execute(&sum(&[0]), &[&a]),
            e.execute(&sum(&[1]), &[&a]),
            e.execute(&sum(&[]), &[&at]),
            e.execute(&rand, &[]),
            e.execute(&Op::MatMul, &[&m1, &m2]),
            e.execute(&Op::MatMul, &[&bm, &sq]),
        ];
        outs.into_iter().map(|t| e.download(&t.unwrap())).collect()
    };
    let (r1, r2) = (run(&mut e1), run(&mut e2));
    for (i, (x, y)) in r1.iter().zip(&r2).enumerate() {
        if i < 7 {
            assert_eq!(x, y, "output {i}");
        } else {
            let (x, y) = (RefTensor::new(x.shape.clone(), x.to_f64_vec()), RefTensor::new(y.shape.clone(), y.to_f64_vec()));
            assert_close(&y, &x, 1e-5, &format!("matmul {i}"));
        }
    }
}

#[test]
fn bench_kernels_runs() {
    let (add, mm) = bench_kernels(10);
    assert!(add > 0.0 && mm > 0.0);
}
