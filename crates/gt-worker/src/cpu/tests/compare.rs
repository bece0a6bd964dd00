//! Comparisons (tensor and scalar), `where` and argmax/argmin against the float64 reference:
//! every dtype, mixed dtypes, broadcast and strided inputs, ties and NaN.

use super::*;
use gt_ops::{ArgOp, CompareOp};

#[test]
fn compare_ops_match_reference() {
    let mut e = CpuEngine::new(1);
    let pairs = [
        (DType::F32, DType::F32),
        (DType::F64, DType::F64),
        (DType::I64, DType::I64),
        (DType::Bool, DType::Bool),
        (DType::F32, DType::F64),
        (DType::I64, DType::F32),
        (DType::Bool, DType::I64),
        (DType::F64, DType::Bool),
    ];
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[3, 1, 4], &[5, 1]),
        (&[2, 3], &[2, 3]),
        (&[4], &[]),
        (&[2, 3, 4], &[3, 4]),
    ];
    for op in CompareOp::ALL {
        for (da, db) in pairs {
            let what = format!("{da} {} {db}", op.name());
            for (sa, sb) in shapes {
                let a = ints(&mut e, sa, da, 1, -2, 2);
                let b = ints(&mut e, sb, db, 2, -2, 2);
                let r = check(&mut e, &Op::Compare(op), &[&a, &b], 0.0, &what);
                assert_eq!(r.dtype(), DType::Bool);
                check(&mut e, &Op::Compare(op), &[&b, &a], 0.0, &what);
            }
            let va = int_variants(&mut e, da, 20);
            let vb = int_variants(&mut e, db, 30);
            for (ka, a) in &va {
                for (kb, b) in &vb {
                    let w = format!("{what}: {ka} with {kb}");
                    check(&mut e, &Op::Compare(op), &[a, b], 0.0, &w);
                }
            }
        }
        // NaN is unordered: only `ne` holds.
        for dtype in FLOATS {
            let a = exact(&mut e, &[4], dtype, &[f64::NAN, 1.0, f64::NAN, 2.0]);
            let b = exact(&mut e, &[4], dtype, &[f64::NAN, f64::NAN, 1.0, 2.0]);
            let r = check(&mut e, &Op::Compare(op), &[&a, &b], 0.0, "NaN");
            let want = op == CompareOp::Ne;
            let got = e.download(&r).bytes;
            assert_eq!(&got[..3], &[want as u8; 3], "{op:?} with NaN");
        }
    }
}

#[test]
fn compare_scalar_matches_reference() {
    let mut e = CpuEngine::new(1);
    for op in CompareOp::ALL {
        for dtype in ALL_DTYPES {
            for scalar in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
                for (kind, x) in int_variants(&mut e, dtype, 40) {
                    let o = Op::CompareScalar { op, scalar };
                    let r = check(&mut e, &o, &[&x], 0.0, &format!("{dtype} {kind} {scalar}"));
                    assert_eq!(r.dtype(), DType::Bool);
                }
            }
        }
        // Elements are widened to f64: 0.1f32 is not 0.1.
        let x = exact(&mut e, &[2], DType::F32, &[0.1, 0.5]);
        let o = Op::CompareScalar { op, scalar: 0.1 };
        check(&mut e, &o, &[&x], 0.0, "f32 widened");
    }
}

#[test]
fn where_matches_reference() {
    let mut e = CpuEngine::new(1);
    let pairs = [
        (DType::F32, DType::F32),
        (DType::F64, DType::F64),
        (DType::I64, DType::I64),
        (DType::Bool, DType::Bool),
        (DType::F32, DType::F64),
        (DType::I64, DType::F32),
        (DType::Bool, DType::I64),
    ];
    for (da, db) in pairs {
        let what = format!("where {da}, {db}");
        let want = DType::promote(da, db);
        // Broadcast of all three.
        let c = input(&mut e, &[3, 1, 4], DType::Bool, 1, -1.0, 1.0);
        let a = ints(&mut e, &[5, 1], da, 2, -9, 9);
        let b = ints(&mut e, &[4], db, 3, -9, 9);
        let r = check(&mut e, &Op::Where, &[&c, &a, &b], 0.0, &what);
        assert_eq!(r.dtype(), want, "{what}");
        check(&mut e, &Op::Where, &[&c, &b, &a], 0.0, &what);
        // A scalar on either side (relu's backward: `where(x > 0, g, 0)`).
        let c = input(&mut e, &[4, 33], DType::Bool, 4, -1.0, 1.0);
        let a = ints(&mut e, &[4, 33], da, 5, -9, 9);
        let s = ints(&mut e, &[], db, 6, -9, 9);
        check(&mut e, &Op::Where, &[&c, &a, &s], 0.0, &what);
        check(&mut e, &Op::Where, &[&c, &s, &a], 0.0, &what);
        // Strided and expanded operands.
        let cs = int_variants(&mut e, DType::Bool, 50);
        let va = int_variants(&mut e, da, 60);
        let vb = int_variants(&mut e, db, 70);
        for (i, (kc, c)) in cs.iter().enumerate() {
            for (ka, a) in &va {
                let (kb, b) = &vb[(i + 1) % vb.len()];
                let w = format!("{what}: cond {kc}, a {ka}, b {kb}");
                check(&mut e, &Op::Where, &[c, a, b], 0.0, &w);
            }
        }
    }
    // A non-bool condition is a dtype error.
    let x = input(&mut e, &[3], DType::F32, 1, -1.0, 1.0);
    assert!(matches!(
        e.execute(&Op::Where, &[&x, &x, &x]),
        Err(Error::DType { .. })
    ));
}

#[test]
fn arg_reduce_matches_reference() {
    let mut e = CpuEngine::new(1);
    for dtype in ALL_DTYPES {
        let x = ints(&mut e, &[3, 4, 5], dtype, 1, -3, 3);
        let t = ints(&mut e, &[5, 3, 4], dtype, 2, -3, 3);
        let t = permute(&mut e, &t, &[1, 2, 0]);
        let big = ints(&mut e, &[4, 9, 11], dtype, 3, -3, 3);
        let s = slice(&mut e, &big, &[(1, 3, 1), (0, 4, 2), (1, 5, 2)]);
        // Wide kept rows: the accumulator-row traversal.
        let wide = ints(&mut e, &[6, 20, 16], dtype, 4, -3, 3);
        let col = ints(&mut e, &[3, 1, 5], dtype, 5, -3, 3);
        let ex = expand(&mut e, &col, &[3, 4, 5]);
        for op in [ArgOp::ArgMax, ArgOp::ArgMin] {
            for axis in 0..3 {
                for keepdim in [false, true] {
                    let a = Op::ArgReduce { op, axis, keepdim };
                    for (kind, v) in [
                        ("contiguous", &x),
                        ("transposed", &t),
                        ("sliced", &s),
                        ("wide", &wide),
                        ("expanded", &ex),
                    ] {
                        let r = check(&mut e, &a, &[v], 0.0, &format!("{dtype} {kind}"));
                        assert_eq!(r.dtype(), DType::I64);
                    }
                }
            }
        }
    }
    // NaN counts as the extreme (the first NaN wins), on both traversals.
    for dtype in FLOATS {
        let mut vals: Vec<f64> = (0..64).map(|i| ((i * 7) % 5) as f64).collect();
        for at in [3, 9, 17, 40, 41, 63] {
            vals[at] = f64::NAN;
        }
        let x = exact(&mut e, &[4, 16], dtype, &vals);
        let xt = permute(&mut e, &x, &[1, 0]);
        for op in [ArgOp::ArgMax, ArgOp::ArgMin] {
            for axis in 0..2 {
                let a = Op::ArgReduce {
                    op,
                    axis,
                    keepdim: false,
                };
                check(&mut e, &a, &[&x], 0.0, &format!("{dtype} NaN"));
                check(&mut e, &a, &[&xt], 0.0, &format!("{dtype} NaN transposed"));
            }
        }
    }
}
