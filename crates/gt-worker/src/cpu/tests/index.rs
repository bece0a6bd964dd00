//! Concatenation, indexing, scatter and slice assignment against the float64 reference: every
//! dtype they accept, strided inputs, repeated and negative indices and out-of-range index
//! errors; and thread-count independence of all the newer ops.

use super::*;
use gt_ops::{ArgOp, CompareOp};

/// Asserts `r` is an invalid-argument error about an index out of range.
fn assert_index_error(r: Result<CpuTensor>, what: &str) {
    match r {
        Err(Error::Invalid { msg, .. }) => assert!(msg.contains("out of range"), "{what}: {msg}"),
        other => panic!("{what}: expected an index error, got {other:?}"),
    }
}

#[test]
fn cat_matches_reference() {
    let mut e = CpuEngine::new(1);
    for dtype in ALL_DTYPES {
        // Three inputs along a middle axis: contiguous, transposed, expanded; then sliced.
        let a = ints(&mut e, &[2, 3, 4], dtype, 1, -9, 9);
        let b = ints(&mut e, &[4, 1, 2], dtype, 2, -9, 9);
        let b = permute(&mut e, &b, &[2, 1, 0]);
        let c = ints(&mut e, &[2, 1, 4], dtype, 3, -9, 9);
        let c = expand(&mut e, &c, &[2, 5, 4]);
        let big = ints(&mut e, &[5, 7, 9], dtype, 4, -9, 9);
        let d = slice(&mut e, &big, &[(1, 2, 3), (0, 2, 3), (1, 4, 2)]);
        let z = ints(&mut e, &[2, 0, 4], dtype, 5, -9, 9);
        let cat = |axis| Op::Cat { axis };
        let w = format!("{dtype}");
        let r = check(&mut e, &cat(1), &[&a, &b, &c], 0.0, &w);
        assert!(r.is_contiguous() && r.dtype() == dtype);
        check(&mut e, &cat(1), &[&d, &z, &a, &b, &z], 0.0, &w);
        check(&mut e, &cat(1), &[&b], 0.0, &w);
        check(&mut e, &cat(1), &[&z, &z], 0.0, &w);
        // First and last axes.
        let p = permute(&mut e, &a, &[1, 0, 2]);
        let one = slice(&mut e, &big, &[(0, 1, 1), (0, 2, 1), (0, 4, 1)]);
        check(&mut e, &cat(0), &[&p, &p, &one], 0.0, &w);
        let q = ints(&mut e, &[2, 3, 1], dtype, 6, -9, 9);
        let q3 = expand(&mut e, &q, &[2, 3, 3]);
        check(&mut e, &cat(2), &[&a, &q, &q3, &a], 0.0, &w);
    }
    let a = input(&mut e, &[2, 3], DType::F32, 1, 0.0, 1.0);
    let b = input(&mut e, &[2, 3], DType::F64, 2, 0.0, 1.0);
    assert!(e.execute(&Op::Cat { axis: 0 }, &[&a, &b]).is_err());
    assert!(e.execute(&Op::Cat { axis: 0 }, &[]).is_err());
}

#[test]
fn index_select_matches_reference() {
    let mut e = CpuEngine::new(1);
    for dtype in ALL_DTYPES {
        let x = ints(&mut e, &[5, 4, 3], dtype, 1, -9, 9);
        let t = ints(&mut e, &[3, 4, 5], dtype, 2, -9, 9);
        let t = permute(&mut e, &t, &[2, 1, 0]);
        let big = ints(&mut e, &[11, 5, 7], dtype, 3, -9, 9);
        let s = slice(&mut e, &big, &[(0, 5, 2), (1, 4, 1), (0, 3, 3)]);
        let row = ints(&mut e, &[1, 4, 3], dtype, 4, -9, 9);
        let ex = expand(&mut e, &row, &[5, 4, 3]);
        // Repeated and negative indices, valid for every axis (sizes 3..5).
        let idx = exact(
            &mut e,
            &[7],
            DType::I64,
            &[2.0, -1.0, 0.0, 0.0, -3.0, 1.0, 2.0],
        );
        let long = exact(&mut e, &[5], DType::I64, &[1.0, 9.0, -2.0, 9.0, 0.0]);
        let stepped = slice(&mut e, &long, &[(0, 3, 2)]);
        let empty = exact(&mut e, &[0], DType::I64, &[]);
        for axis in 0..3 {
            let o = Op::IndexSelect { axis };
            for (kind, v) in [
                ("contiguous", &x),
                ("transposed", &t),
                ("sliced", &s),
                ("expanded", &ex),
            ] {
                for ix in [&idx, &stepped, &empty] {
                    check(
                        &mut e,
                        &o,
                        &[v, ix],
                        0.0,
                        &format!("{dtype} {kind} axis {axis}"),
                    );
                }
            }
        }
        for bad in [5.0, -6.0] {
            let ix = exact(&mut e, &[3], DType::I64, &[0.0, bad, 1.0]);
            let r = e.execute(&Op::IndexSelect { axis: 0 }, &[&x, &ix]);
            assert_index_error(r, &format!("index_select {bad}"));
        }
    }
    // The message names the index, the axis and the size.
    let x = input(&mut e, &[5, 2], DType::F32, 1, 0.0, 1.0);
    let ix = exact(&mut e, &[2], DType::I64, &[1.0, 7.0]);
    let err = e
        .execute(&Op::IndexSelect { axis: 0 }, &[&x, &ix])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("index 7 is out of range for axis 0 of size 5"),
        "{err}"
    );
    // A float index is a dtype error.
    let fx = input(&mut e, &[2], DType::F32, 1, 0.0, 1.0);
    assert!(matches!(
        e.execute(&Op::IndexSelect { axis: 0 }, &[&x, &fx]),
        Err(Error::DType { .. })
    ));
}

#[test]
fn gather_matches_reference() {
    let mut e = CpuEngine::new(1);
    for dtype in ALL_DTYPES {
        let x = ints(&mut e, &[4, 5, 3], dtype, 1, -9, 9);
        let t = ints(&mut e, &[3, 5, 4], dtype, 2, -9, 9);
        let t = permute(&mut e, &t, &[2, 1, 0]);
        for axis in 0..3 {
            let size = [4, 5, 3][axis] as i64;
            // Index dims no larger than x's off the axis; any length along it.
            let mut dims = [3, 4, 2];
            dims[axis] = 6;
            let idx = ints(&mut e, &dims, DType::I64, 3 + axis as u64, -size, size - 1);
            let mut rev = dims;
            rev.reverse();
            let it = ints(&mut e, &rev, DType::I64, 9 + axis as u64, -size, size - 1);
            let it = permute(&mut e, &it, &[2, 1, 0]);
            let o = Op::Gather { axis };
            for (kx, v) in [("contiguous", &x), ("transposed", &t)] {
                for (ki, ix) in [("contiguous", &idx), ("transposed", &it)] {
                    let w = format!("{dtype} axis {axis}: x {kx}, index {ki}");
                    check(&mut e, &o, &[v, ix], 0.0, &w);
                }
            }
            let mut bad = vec![0.0; dims.iter().product()];
            bad[5] = size as f64;
            let ix = exact(&mut e, &dims, DType::I64, &bad);
            assert_index_error(e.execute(&o, &[&x, &ix]), "gather");
        }
    }
}

#[test]
fn index_add_matches_reference() {
    let mut e = CpuEngine::new(1);
    for dtype in [DType::F32, DType::F64, DType::I64] {
        let tol = rtol(dtype);
        for axis in 0..3 {
            let mut bd = [3, 4, 5];
            let size = bd[axis];
            // Repeated and negative indices accumulate.
            let idx = exact(&mut e, &[6], DType::I64, &[0.0, 2.0, 0.0, -1.0, 2.0, 2.0]);
            let base = ints(&mut e, &bd, dtype, 1, -9, 9);
            let mut sd = bd;
            sd[axis] = 6;
            let src = ints(&mut e, &sd, dtype, 2, -9, 9);
            let mut rev = sd;
            rev.reverse();
            let st = ints(&mut e, &rev, dtype, 3, -9, 9);
            let st = permute(&mut e, &st, &[2, 1, 0]);
            bd.reverse();
            let bt = ints(&mut e, &bd, dtype, 4, -9, 9);
            let bt = permute(&mut e, &bt, &[2, 1, 0]);
            let o = Op::IndexAdd { axis };
            for (kb, b) in [("contiguous", &base), ("transposed", &bt)] {
                for (ks, s) in [("contiguous", &src), ("transposed", &st)] {
                    let w = format!("{dtype} axis {axis}: base {kb}, src {ks}");
                    let r = check(&mut e, &o, &[b, &idx, s], tol, &w);
                    assert!(r.is_contiguous());
                }
            }
            let bad = exact(
                &mut e,
                &[6],
                DType::I64,
                &[0.0, 1.0, 0.0, -(size as f64) - 1.0, 0.0, 0.0],
            );
            assert_index_error(e.execute(&o, &[&base, &bad, &src]), "index_add");
        }
        // Non-integer float values: the sums are applied in index order.
        if dtype.is_float() {
            let base = input(&mut e, &[4, 3], dtype, 5, -1.0, 1.0);
            let idx = exact(&mut e, &[5], DType::I64, &[1.0, 1.0, 3.0, 1.0, -3.0]);
            let src = input(&mut e, &[5, 3], dtype, 6, -1.0, 1.0);
            check(
                &mut e,
                &Op::IndexAdd { axis: 0 },
                &[&base, &idx, &src],
                tol,
                "floats",
            );
        }
    }
}

#[test]
fn scatter_add_matches_reference() {
    let mut e = CpuEngine::new(1);
    for dtype in [DType::F32, DType::F64, DType::I64] {
        let tol = rtol(dtype);
        for axis in 0..2 {
            let size = [4, 5][axis] as i64;
            let base = input(&mut e, &[4, 5], dtype, 1, -4.0, 4.0);
            let bt = input(&mut e, &[5, 4], dtype, 2, -4.0, 4.0);
            let bt = permute(&mut e, &bt, &[1, 0]);
            // More index rows than the axis holds: indices repeat.
            let mut dims = [3, 4];
            dims[axis] = 7;
            let idx = ints(&mut e, &dims, DType::I64, 3 + axis as u64, -size, size - 1);
            let src = input(&mut e, &dims, dtype, 4, -4.0, 4.0);
            let st = input(&mut e, &[dims[1], dims[0]], dtype, 5, -4.0, 4.0);
            let st = permute(&mut e, &st, &[1, 0]);
            let it = ints(&mut e, &[dims[1], dims[0]], DType::I64, 6, -size, size - 1);
            let it = permute(&mut e, &it, &[1, 0]);
            let o = Op::ScatterAdd { axis };
            for (kb, b) in [("contiguous", &base), ("transposed", &bt)] {
                for (ks, s, ix) in [("contiguous", &src, &idx), ("transposed", &st, &it)] {
                    let w = format!("{dtype} axis {axis}: base {kb}, src and index {ks}");
                    check(&mut e, &o, &[b, ix, s], tol, &w);
                }
            }
            let mut bad = vec![0.0; dims.iter().product()];
            bad[7] = -(size as f64) - 1.0;
            let ix = exact(&mut e, &dims, DType::I64, &bad);
            assert_index_error(e.execute(&o, &[&base, &ix, &src]), "scatter_add");
        }
    }
}

#[test]
fn slice_assign_matches_reference() {
    let mut e = CpuEngine::new(1);
    let spec = |start, len, step| SliceSpec { start, len, step };
    for dtype in ALL_DTYPES {
        let x = ints(&mut e, &[6, 7], dtype, 1, -9, 9);
        let xt = ints(&mut e, &[7, 6], dtype, 2, -9, 9);
        let xt = permute(&mut e, &xt, &[1, 0]);
        // A stepped slice on both axes, with contiguous and transposed values.
        let specs: gt_ops::SliceSpecs = vec![spec(1, 3, 2), spec(0, 3, 3)].into();
        let v = ints(&mut e, &[3, 3], dtype, 3, -9, 9);
        let vt = ints(&mut e, &[3, 3], dtype, 4, -9, 9);
        let vt = permute(&mut e, &vt, &[1, 0]);
        let row = ints(&mut e, &[1, 3], dtype, 5, -9, 9);
        let vx = expand(&mut e, &row, &[3, 3]);
        let o = Op::SliceAssign { specs };
        for (kx, xx) in [("contiguous", &x), ("transposed", &xt)] {
            for (kv, vv) in [("contiguous", &v), ("transposed", &vt), ("expanded", &vx)] {
                let r = check(
                    &mut e,
                    &o,
                    &[xx, vv],
                    0.0,
                    &format!("{dtype} x {kx}, value {kv}"),
                );
                assert!(r.is_contiguous() && !Arc::ptr_eq(r.storage(), xx.storage()));
            }
        }
        // Whole rows of a 3-d tensor, and an empty slice.
        let y = ints(&mut e, &[2, 4, 3], dtype, 6, -9, 9);
        let specs: gt_ops::SliceSpecs = vec![spec(1, 1, 1), spec(0, 4, 1), spec(0, 3, 1)].into();
        let w = ints(&mut e, &[1, 4, 3], dtype, 7, -9, 9);
        check(&mut e, &Op::SliceAssign { specs }, &[&y, &w], 0.0, "rows");
        let specs: gt_ops::SliceSpecs = vec![spec(0, 0, 1), spec(0, 4, 1), spec(0, 3, 1)].into();
        let w = ints(&mut e, &[0, 4, 3], dtype, 8, -9, 9);
        check(&mut e, &Op::SliceAssign { specs }, &[&y, &w], 0.0, "empty");
    }
    // Value shape and dtype must fit the slice.
    let x = input(&mut e, &[4], DType::F32, 1, 0.0, 1.0);
    let v = input(&mut e, &[2], DType::F64, 2, 0.0, 1.0);
    let o = Op::SliceAssign {
        specs: vec![spec(0, 2, 2)].into(),
    };
    assert!(matches!(e.execute(&o, &[&x, &v]), Err(Error::DType { .. })));
    let v = input(&mut e, &[3], DType::F32, 2, 0.0, 1.0);
    assert!(matches!(e.execute(&o, &[&x, &v]), Err(Error::Shape { .. })));
}

#[test]
fn new_ops_do_not_depend_on_threads() {
    let mut e1 = CpuEngine::new(1);
    let mut e2 = CpuEngine::new(2);
    // Sizes above the parallel threshold (2^19 weighted elements).
    let run = |e: &mut CpuEngine| -> Vec<TensorData> {
        let a = input(e, &[700, 1000], DType::F32, 1, -1.0, 1.0);
        let at = permute(e, &a, &[1, 0]);
        let a2 = input(e, &[1000, 700], DType::F32, 6, -1.0, 1.0);
        let a2 = permute(e, &a2, &[1, 0]);
        let b = input(e, &[1000], DType::F32, 2, -1.0, 1.0);
        let c = e.execute(&Op::Compare(CompareOp::Gt), &[&a, &b]).unwrap();
        let idx = ints(e, &[700, 1000], DType::I64, 3, -1000, 999);
        let rows = ints(e, &[900], DType::I64, 4, -700, 699);
        let small = input(e, &[900, 1000], DType::F32, 5, -1.0, 1.0);
        let ops: Vec<(Op, Vec<&CpuTensor>)> = vec![
            (Op::Compare(CompareOp::Le), vec![&a2, &a]),
            (
                Op::CompareScalar {
                    op: CompareOp::Lt,
                    scalar: 0.25,
                },
                vec![&at],
            ),
            (Op::Where, vec![&c, &a2, &b]),
            (
                Op::ArgReduce {
                    op: ArgOp::ArgMax,
                    axis: 0,
                    keepdim: false,
                },
                vec![&a],
            ),
            (
                Op::ArgReduce {
                    op: ArgOp::ArgMin,
                    axis: 1,
                    keepdim: true,
                },
                vec![&at],
            ),
            (
                Op::Reduce {
                    op: ReduceOp::Min,
                    axes: smallvec![0],
                    keepdim: false,
                },
                vec![&a],
            ),
            (Op::Gather { axis: 1 }, vec![&a2, &idx]),
            (Op::IndexSelect { axis: 0 }, vec![&a, &rows]),
            (Op::IndexAdd { axis: 0 }, vec![&a, &rows, &small]),
            (Op::ScatterAdd { axis: 1 }, vec![&a, &idx, &a2]),
            (Op::Cat { axis: 1 }, vec![&a, &a2, &a]),
            (Op::Unary(UnaryOp::Erf), vec![&at]),
            (Op::Binary(BinaryOp::Pow), vec![&a, &b]),
        ];
        ops.into_iter()
            .map(|(op, ins)| {
                let r = e
                    .execute(&op, &ins)
                    .unwrap_or_else(|err| panic!("{op}: {err}"));
                e.download(&r)
            })
            .collect()
    };
    let (r1, r2) = (run(&mut e1), run(&mut e2));
    for (i, (x, y)) in r1.iter().zip(&r2).enumerate() {
        assert_eq!(x, y, "output {i}");
    }
}
