//! Every node kind against the eager kernel it replaces, at every dtype it accepts, on
//! contiguous, transposed, sliced (offset) and broadcast inputs full of NaN, ±inf and ±0.

use super::*;
use gt_ops::{BinaryOp, CompareOp, UnaryOp};

#[test]
fn unary_nodes_match_eager() {
    let mut e = CpuEngine::new(1);
    for dtype in FLOATS {
        for (kind, x) in variants(&mut e, dtype, 1) {
            for op in UnaryOp::ALL {
                let spec = spec_of(
                    x.shape(),
                    &[&x],
                    vec![LoopNode::Load(0), LoopNode::Unary(op, 0)],
                    vec![1],
                );
                let want = e.execute(&Op::Unary(op), &[&x]).unwrap();
                let want = vec![e.download(&want).bytes];
                check_against(
                    &spec,
                    &[&x],
                    &want,
                    &format!("{} {dtype} {kind}", op.name()),
                );
            }
        }
    }
}

#[test]
fn binary_nodes_match_eager() {
    let mut e = CpuEngine::new(1);
    for dtype in FLOATS {
        let vb = variants(&mut e, dtype, 10);
        // A column broadcast along the other axis than the "broadcast" variant's.
        let col = exact(&mut e, &[5, 1], dtype, &special_values(5, 40));
        for (ka, a) in variants(&mut e, dtype, 20) {
            let bs = vb.iter().map(|(k, b)| (*k, b)).chain([("column", &col)]);
            for (kb, b) in bs {
                for op in BinaryOp::ALL {
                    let what = format!("{} {dtype} {ka} with {kb}", op.name());
                    let want = e.execute(&Op::Binary(op), &[&a, b]).unwrap();
                    let want = vec![e.download(&want).bytes];
                    let nodes = vec![
                        LoopNode::Load(0),
                        LoopNode::Load(1),
                        LoopNode::Binary(op, 0, 1),
                    ];
                    let spec = spec_of(a.shape(), &[&a, b], nodes, vec![2]);
                    check_against(&spec, &[&a, b], &want, &what);
                }
            }
        }
    }
}

/// Tensor-scalar ops lower to a `Const` of the tensor's dtype (the eager kernel rounds the f64
/// scalar to it) on either side of a `Binary`.
#[test]
fn binary_scalar_nodes_match_eager() {
    let mut e = CpuEngine::new(1);
    let scalars = [0.1, -2.5, 0.0, -0.0, f64::NAN, f64::INFINITY, 3.0, 1e300];
    for dtype in FLOATS {
        for (kind, x) in variants(&mut e, dtype, 30) {
            for op in BinaryOp::ALL {
                for scalar in scalars {
                    for scalar_left in [false, true] {
                        let eop = Op::BinaryScalar {
                            op,
                            scalar,
                            scalar_left,
                        };
                        let want = e.execute(&eop, &[&x]).unwrap();
                        let want = vec![e.download(&want).bytes];
                        let (a, b) = if scalar_left { (1, 0) } else { (0, 1) };
                        let nodes = vec![
                            LoopNode::Load(0),
                            LoopNode::Const {
                                value: scalar,
                                dtype,
                            },
                            LoopNode::Binary(op, a, b),
                        ];
                        let spec = spec_of(x.shape(), &[&x], nodes, vec![2]);
                        check_against(&spec, &[&x], &want, &format!("{eop} {dtype} {kind}"));
                    }
                }
            }
        }
    }
}

#[test]
fn compare_nodes_match_eager() {
    let mut e = CpuEngine::new(1);
    for dtype in ALL_DTYPES {
        let va = variants(&mut e, dtype, 50);
        let vb = variants(&mut e, dtype, 50);
        for (ka, a) in &va {
            for (kb, b) in &vb {
                for op in CompareOp::ALL {
                    let what = format!("{} {dtype} {ka} with {kb}", op.name());
                    let want = e.execute(&Op::Compare(op), &[a, b]).unwrap();
                    let want = vec![e.download(&want).bytes];
                    let nodes = vec![
                        LoopNode::Load(0),
                        LoopNode::Load(1),
                        LoopNode::Compare(op, 0, 1),
                    ];
                    let spec = spec_of(a.shape(), &[a, b], nodes, vec![2]);
                    check_against(&spec, &[a, b], &want, &what);
                }
            }
        }
    }
}

/// Scalar comparisons widen each element to f64 and compare with the f64 constant: a `Cast` to
/// f64 and a f64 `Const` (a no-op cast for f64 inputs).
#[test]
fn compare_scalar_nodes_match_eager() {
    let mut e = CpuEngine::new(1);
    let scalars = [0.0, -0.0, 0.5, -2.5, 1.0, f64::NAN, f64::INFINITY, 0.1];
    for dtype in ALL_DTYPES {
        for (kind, x) in variants(&mut e, dtype, 60) {
            for op in CompareOp::ALL {
                for scalar in scalars {
                    let eop = Op::CompareScalar { op, scalar };
                    let want = e.execute(&eop, &[&x]).unwrap();
                    let want = vec![e.download(&want).bytes];
                    let nodes = vec![
                        LoopNode::Load(0),
                        LoopNode::Cast(DType::F64, 0),
                        LoopNode::Const {
                            value: scalar,
                            dtype: DType::F64,
                        },
                        LoopNode::Compare(op, 1, 2),
                    ];
                    let spec = spec_of(x.shape(), &[&x], nodes, vec![3]);
                    check_against(&spec, &[&x], &want, &format!("{eop} {dtype} {kind}"));
                }
            }
        }
    }
}

#[test]
fn where_nodes_match_eager() {
    let mut e = CpuEngine::new(1);
    let conds = variants(&mut e, DType::Bool, 70);
    for dtype in ALL_DTYPES {
        let va = variants(&mut e, dtype, 80);
        let vb = variants(&mut e, dtype, 90);
        for (i, (kc, c)) in conds.iter().enumerate() {
            // Each condition layout with two pairings of branch layouts keeps this quick.
            for (ka, a) in [&va[i], &va[(i + 1) % 4]].map(|(k, t)| (*k, t)) {
                let (kb, b) = (vb[(i + 2) % 4].0, &vb[(i + 2) % 4].1);
                let what = format!("where {dtype}: cond {kc}, {ka}, {kb}");
                let want = e.execute(&Op::Where, &[c, a, b]).unwrap();
                let want = vec![e.download(&want).bytes];
                let nodes = vec![
                    LoopNode::Load(0),
                    LoopNode::Load(1),
                    LoopNode::Load(2),
                    LoopNode::Where(0, 1, 2),
                ];
                let spec = spec_of(c.shape(), &[c, a, b], nodes, vec![3]);
                check_against(&spec, &[c, a, b], &want, &what);
            }
        }
    }
}

#[test]
fn cast_nodes_match_eager() {
    let mut e = CpuEngine::new(1);
    for from in ALL_DTYPES {
        for (kind, x) in variants(&mut e, from, 100) {
            for to in ALL_DTYPES {
                let want = e.execute(&Op::Cast { dtype: to }, &[&x]).unwrap();
                let want = vec![e.download(&want).bytes];
                let nodes = vec![LoopNode::Load(0), LoopNode::Cast(to, 0)];
                let spec = spec_of(x.shape(), &[&x], nodes, vec![1]);
                check_against(&spec, &[&x], &want, &format!("cast {from} -> {to} {kind}"));
            }
        }
    }
}

/// Constants of every dtype stored directly, converted like the eager `full`.
#[test]
fn const_nodes_match_eager_full() {
    let mut e = CpuEngine::new(1);
    let x = exact(&mut e, &[3, 4], DType::F32, &special_values(12, 5));
    for dtype in ALL_DTYPES {
        for value in [
            0.0,
            -0.0,
            1.7,
            -2.5,
            f64::NAN,
            f64::NEG_INFINITY,
            1e300,
            -3e19,
        ] {
            let op = Op::Full {
                shape: x.shape().clone(),
                value,
                dtype,
            };
            let want = e.execute(&op, &[]).unwrap();
            let want = vec![e.download(&want).bytes];
            let spec = spec_of(
                x.shape(),
                &[&x],
                vec![LoopNode::Const { value, dtype }],
                vec![0],
            );
            check_against(&spec, &[&x], &want, &format!("const {value} {dtype}"));
        }
    }
}
