//! Every op kernel against the float64 reference: unary, binary (broadcast, strided, mixed
//! dtypes), scalar, matmul, reductions and views, in f32 and f64.

use super::*;

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
                let r = check(
                    &mut e,
                    &Op::Unary(op),
                    &[&x],
                    rtol(dtype),
                    &format!("{dtype} {kind}"),
                );
                assert!(r.is_contiguous());
            }
        }
    }
}

#[test]
fn transposed_copies_walk_tiles_correctly() {
    // Several planes, partial tiles on both axes, on one and two threads (aligned chunks).
    for threads in [1, 2] {
        let mut e = CpuEngine::new(threads);
        for (shape, perm) in [
            ([3, 45, 70], [0, 2, 1]),
            ([2, 33, 5], [0, 2, 1]),
            ([130, 40, 101], [0, 2, 1]),
        ] {
            let x = input(&mut e, &shape, DType::F32, 4, -1.0, 1.0);
            let t = permute(&mut e, &x, &perm);
            let n = shape.iter().product::<usize>();
            let what = format!("{threads} threads, {shape:?}");
            check(
                &mut e,
                &Op::Reshape {
                    shape: Shape::new([n]),
                },
                &[&t],
                0.0,
                &what,
            );
            check(&mut e, &Op::Unary(UnaryOp::Neg), &[&t], 0.0, &what);
        }
    }
}

#[test]
fn binary_ops_broadcast_and_strided() {
    let mut e = CpuEngine::new(1);
    let shapes: [(&[usize], &[usize]); 6] = [
        (&[3, 1, 4], &[5, 1]),
        (&[2, 3], &[2, 3]),
        (&[4], &[]),
        (&[], &[2, 2]),
        (&[2, 3, 4], &[3, 4]),
        (&[1], &[3, 1]),
    ];
    for dtype in FLOATS {
        for op in BinaryOp::ALL {
            let what = |s: &str| format!("{dtype} {} {s}", op.name());
            // Pow gets positive bases (negative ones with fractional exponents are NaN).
            let lo = if op == BinaryOp::Pow { 0.5 } else { -3.0 };
            for (sa, sb) in shapes {
                let a = input(&mut e, sa, dtype, 1, lo, 3.0);
                let b = input(&mut e, sb, dtype, 2, 0.5, 2.0);
                check(
                    &mut e,
                    &Op::Binary(op),
                    &[&a, &b],
                    rtol(dtype),
                    &what(&format!("{sa:?} {sb:?}")),
                );
                check(
                    &mut e,
                    &Op::Binary(op),
                    &[&b, &a],
                    rtol(dtype),
                    &what(&format!("{sb:?} {sa:?}")),
                );
            }
            let vs = variants(&mut e, dtype, 20, 0.5, 2.0);
            for (ka, a) in &vs {
                for (kb, b) in &vs {
                    check(
                        &mut e,
                        &Op::Binary(op),
                        &[a, b],
                        rtol(dtype),
                        &what(&format!("{ka} with {kb}")),
                    );
                }
            }
            // A transposed operand broadcast against a row.
            let row = input(&mut e, &[6], dtype, 3, 0.5, 2.0);
            check(
                &mut e,
                &Op::Binary(op),
                &[&vs[1].1, &row],
                rtol(dtype),
                &what("transposed with row"),
            );
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
                        let o = Op::BinaryScalar {
                            op,
                            scalar,
                            scalar_left,
                        };
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
            check(
                &mut e,
                &Op::MatMul,
                &[&a, &b],
                tol,
                &format!("{dtype} {sa:?} @ {sb:?}"),
            );
        }
        // Transposed operands, batched with broadcast batch dims.
        let a = input(&mut e, &[2, 1, 4, 3], dtype, 3, -1.0, 1.0);
        let a = permute(&mut e, &a, &[0, 1, 3, 2]);
        let b = input(&mut e, &[5, 4], dtype, 4, -1.0, 1.0);
        let b = permute(&mut e, &b, &[1, 0]);
        let b3 = expand(&mut e, &b, &[3, 4, 5]);
        check(
            &mut e,
            &Op::MatMul,
            &[&a, &b],
            tol,
            &format!("{dtype} transposed"),
        );
        check(
            &mut e,
            &Op::MatMul,
            &[&a, &b3],
            tol,
            &format!("{dtype} transposed, expanded"),
        );
        let big = input(&mut e, &[7, 9], dtype, 5, -1.0, 1.0);
        let s = slice(&mut e, &big, &[(1, 3, 2), (0, 4, 2)]);
        check(
            &mut e,
            &Op::MatMul,
            &[&s, &b],
            tol,
            &format!("{dtype} stepped slice"),
        );
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
                    let r = Op::Reduce {
                        op,
                        axes: axes.into(),
                        keepdim,
                    };
                    for (kind, v) in [
                        ("contiguous", &x),
                        ("transposed", &t),
                        ("sliced", &s),
                        ("wide", &wide),
                    ] {
                        check(&mut e, &r, &[v], rtol(dtype), &format!("{dtype} {kind}"));
                    }
                }
            }
        }
        // NaN propagates through max and min (and sums), on both traversals.
        for (shape, at) in [([3, 4], 5), ([3, 16], 20), ([16, 3], 40)] {
            let mut vals: Vec<f64> = (0..48).map(|i| (i % 7) as f64 - 3.0).collect();
            vals.truncate(shape[0] * shape[1]);
            vals[at] = f64::NAN;
            let n = e.upload(&TensorData::from_f64(shape, &vals)).unwrap();
            let n = e.execute(&Op::Cast { dtype }, &[&n]).unwrap();
            let nt = permute(&mut e, &n, &[1, 0]);
            for op in [ReduceOp::Max, ReduceOp::Min, ReduceOp::Sum] {
                for axes in [&[][..], &[0], &[1]] {
                    let r = Op::Reduce {
                        op,
                        axes: axes.into(),
                        keepdim: false,
                    };
                    for v in [&n, &nt] {
                        check(&mut e, &r, &[v], 0.0, &format!("{dtype} {op:?} with NaN"));
                    }
                }
            }
        }
        // Empty reductions: sum is 0, mean is NaN.
        let z = input(&mut e, &[0, 3], dtype, 5, 0.0, 1.0);
        for op in [ReduceOp::Sum, ReduceOp::Mean] {
            check(
                &mut e,
                &Op::Reduce {
                    op,
                    axes: smallvec![0],
                    keepdim: false,
                },
                &[&z],
                0.0,
                "empty",
            );
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
        let r = check(
            &mut e,
            &Op::Reshape {
                shape: Shape::new([2, 10]),
            },
            &[&x],
            tol,
            "reshape",
        );
        assert!(same(&r, &x));
        let p = check(
            &mut e,
            &Op::Permute {
                perm: smallvec![1, 0],
            },
            &[&x],
            tol,
            "permute",
        );
        assert!(same(&p, &x) && !p.is_contiguous());
        let specs: gt_ops::SliceSpecs = vec![
            SliceSpec {
                start: 1,
                len: 2,
                step: 1,
            },
            SliceSpec {
                start: 0,
                len: 5,
                step: 1,
            },
        ]
        .into();
        let rows = check(&mut e, &Op::Slice { specs }, &[&x], tol, "row slice");
        assert!(same(&rows, &x) && rows.is_contiguous() && rows.layout().offset == 5);
        let r = check(
            &mut e,
            &Op::Reshape {
                shape: Shape::new([10]),
            },
            &[&rows],
            tol,
            "reshape of offset view",
        );
        assert!(same(&r, &x));
        let specs: gt_ops::SliceSpecs = vec![
            SliceSpec {
                start: 2,
                len: 2,
                step: 1,
            },
            SliceSpec {
                start: 4,
                len: 0,
                step: 1,
            },
        ]
        .into();
        check(&mut e, &Op::Slice { specs }, &[&x], tol, "empty slice");
        let col = input(&mut e, &[4, 1], dtype, 2, -1.0, 1.0);
        let ex = check(
            &mut e,
            &Op::Expand {
                shape: Shape::new([2, 4, 3]),
            },
            &[&col],
            tol,
            "expand",
        );
        assert!(same(&ex, &col) && ex.layout().strides.as_slice() == [0, 1, 0]);
        // Reshape of non-contiguous views copies.
        for shape in [Shape::new([20]), Shape::new([2, 2, 5]), Shape::new([5, 4])] {
            let r = check(
                &mut e,
                &Op::Reshape { shape },
                &[&p],
                tol,
                "reshape of transposed",
            );
            assert!(!same(&r, &x) && r.is_contiguous());
        }
        let r = check(
            &mut e,
            &Op::Reshape {
                shape: Shape::new([24]),
            },
            &[&ex],
            tol,
            "reshape of expanded",
        );
        assert!(!same(&r, &col));
        check(
            &mut e,
            &Op::Permute {
                perm: smallvec![2, 0, 1],
            },
            &[&ex],
            tol,
            "permute of expanded",
        );
    }
}

#[test]
fn matmul_epilogues_equal_the_ops_one_by_one() {
    let mut e = CpuEngine::new(1);
    let bits = |e: &mut CpuEngine, t: &CpuTensor| e.download(t).bytes;
    for dtype in FLOATS {
        // (a, b, c): a bias row, a full addend, batched, a vector product, an empty reduction.
        let cases: [(&[usize], &[usize], &[usize]); 5] = [
            (&[6, 5], &[5, 7], &[7]),
            (&[6, 5], &[5, 7], &[6, 7]),
            (&[2, 3, 4], &[4, 5], &[5]),
            (&[4], &[4, 3], &[3]),
            (&[3, 0], &[0, 2], &[2]),
        ];
        for (sa, sb, sc) in cases {
            let a = input(&mut e, sa, dtype, 1, -1.0, 1.0);
            let b = input(&mut e, sb, dtype, 2, -1.0, 1.0);
            let b = if sb.len() == 2 && sb[0] > 0 {
                // A transposed view, as autograd's `x @ wᵀ` passes it.
                let t = input(&mut e, &[sb[1], sb[0]], dtype, 2, -1.0, 1.0);
                permute(&mut e, &t, &[1, 0])
            } else {
                b
            };
            let c = input(&mut e, sc, dtype, 3, -1.0, 1.0);
            let p = e.execute(&Op::MatMul, &[&a, &b]).unwrap();
            let meta = e.meta(&p);
            for (mm_left, relu) in [(true, false), (false, false), (true, true), (false, true)] {
                let what = format!("{dtype} {sa:?} @ {sb:?} + {sc:?} left={mm_left} relu={relu}");
                let add = Op::Binary(BinaryOp::Add);
                let s = if mm_left {
                    e.execute(&add, &[&p, &c]).unwrap()
                } else {
                    e.execute(&add, &[&c, &p]).unwrap()
                };
                let want = if relu {
                    e.execute(&Op::Unary(UnaryOp::Relu), &[&s]).unwrap()
                } else {
                    s
                };
                for keep in [false, true] {
                    let (got, product) = e
                        .matmul_add(&a, &b, &c, mm_left, relu, keep, &meta)
                        .expect("fused")
                        .unwrap();
                    assert_eq!(e.meta(&got), meta, "{what}");
                    assert_eq!(bits(&mut e, &got), bits(&mut e, &want), "{what}");
                    match product {
                        Some(y) => assert_eq!(bits(&mut e, &y), bits(&mut e, &p), "{what}"),
                        None => assert!(!keep, "{what}: the product was asked for"),
                    }
                }
            }
        }
        // Operands it cannot fuse are declined, not computed wrongly.
        let a = input(&mut e, &[3, 4], dtype, 1, -1.0, 1.0);
        let b = input(&mut e, &[4, 5], dtype, 2, -1.0, 1.0);
        let p = e.execute(&Op::MatMul, &[&a, &b]).unwrap();
        let meta = e.meta(&p);
        let col = input(&mut e, &[3, 1], dtype, 3, -1.0, 1.0);
        assert!(e
            .matmul_add(&a, &b, &col, true, false, false, &meta)
            .is_none());
        let c = input(&mut e, &[5, 3], dtype, 3, -1.0, 1.0);
        let ct = permute(&mut e, &c, &[1, 0]);
        assert!(e
            .matmul_add(&a, &b, &ct, true, false, true, &meta)
            .is_none());
    }
}
