//! Finite-difference checks of every gradient rule in [`crate::grad`], driven by the op table and
//! evaluated in float64 on the reference.

use crate::grad::{differentiable, vjp, vjp_needed, Graph};
use crate::infer::Meta;
use crate::op::{ArgOp, BinaryOp, CompareOp, Op, ReduceOp, SliceSpec, UnaryOp};
use crate::random;
use crate::reference::{eval, RefTensor};
use gt_core::{DType, Result, Shape};
use smallvec::smallvec;

/// The reference as a [`Graph`]; dtypes are tracked so casts and comparisons behave.
struct Ref;

#[derive(Clone, Debug)]
struct T(RefTensor, DType);

impl Graph for Ref {
    type T = T;
    fn apply(&self, op: Op, inputs: &[&T]) -> Result<T> {
        let metas: Vec<Meta> = inputs
            .iter()
            .map(|t| Meta::new(t.0.shape.clone(), t.1))
            .collect();
        let refs: Vec<&Meta> = metas.iter().collect();
        let m = crate::infer(&op, &refs)?;
        let raw: Vec<&RefTensor> = inputs.iter().map(|t| &t.0).collect();
        Ok(T(eval(&op, &raw)?, m.dtype))
    }
    fn meta(&self, t: &T) -> Meta {
        Meta::new(t.0.shape.clone(), t.1)
    }
}

fn rnd(shape: &[usize], seed: u64, positive: bool) -> T {
    let n: usize = shape.iter().product();
    let data = (0..n as u64)
        .map(|i| {
            let v = random::normal(seed, 99, i);
            if positive {
                0.5 + random::uniform(seed, 98, i) * 2.0
            } else {
                v
            }
        })
        .collect();
    T(RefTensor::new(shape.to_vec(), data), DType::F64)
}

fn index(values: &[i64], shape: &[usize]) -> T {
    T(
        RefTensor::new(shape.to_vec(), values.iter().map(|&v| v as f64).collect()),
        DType::I64,
    )
}

fn boolean(values: &[u8], shape: &[usize]) -> T {
    T(
        RefTensor::new(shape.to_vec(), values.iter().map(|&v| v as f64).collect()),
        DType::Bool,
    )
}

/// Checks `op` on `inputs`: analytic VJP against central differences of `sum(w * op(x))`.
fn check(op: Op, inputs: Vec<T>) {
    let g = Ref;
    let refs: Vec<&T> = inputs.iter().collect();
    let y = g
        .apply(op.clone(), &refs)
        .unwrap_or_else(|e| panic!("{op}: {e}"));
    let w = rnd(y.0.shape.dims(), 7, false);
    let grads = vjp(&g, &op, &refs, &y, &w).unwrap_or_else(|e| panic!("vjp of {op}: {e}"));
    assert_eq!(
        grads.len(),
        inputs.len(),
        "{op}: one gradient slot per input"
    );
    let loss = |ins: &[T]| -> f64 {
        let r: Vec<&T> = ins.iter().collect();
        let y = g.apply(op.clone(), &r).unwrap();
        y.0.data.iter().zip(&w.0.data).map(|(a, b)| a * b).sum()
    };
    for (i, gi) in grads.iter().enumerate() {
        if !differentiable(&op, i) || inputs[i].1 != DType::F64 {
            assert!(gi.is_none(), "{op}: input {i} should get no gradient");
            continue;
        }
        let gi = gi
            .as_ref()
            .unwrap_or_else(|| panic!("{op}: input {i} needs a gradient"));
        assert_eq!(gi.0.shape, inputs[i].0.shape, "{op}: gradient {i} shape");
        for k in 0..inputs[i].0.data.len() {
            let eps = 1e-6;
            let mut plus = inputs.clone();
            plus[i].0.data[k] += eps;
            let mut minus = inputs.clone();
            minus[i].0.data[k] -= eps;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * eps);
            let analytic = gi.0.data[k];
            assert!(
                (numeric - analytic).abs() <= 1e-5 * (1.0 + numeric.abs()),
                "{op}: d/d input {i}[{k}]: numeric {numeric}, analytic {analytic}"
            );
        }
    }
    // Asked for one input at a time, the rule gives exactly that gradient and no other.
    for i in 0..inputs.len() {
        let need: Vec<bool> = (0..inputs.len()).map(|j| j == i).collect();
        let only = vjp_needed(&g, &op, &refs, &y, &w, &need)
            .unwrap_or_else(|e| panic!("vjp of {op} for input {i}: {e}"));
        for (j, gj) in only.iter().enumerate() {
            match (j == i, gj, &grads[j]) {
                (true, Some(a), Some(b)) => assert_eq!(a.0, b.0, "{op}: input {i} alone"),
                (true, None, None) | (false, None, _) => {}
                _ => panic!("{op}: asked for input {i} only, got gradient slot {j} wrong"),
            }
        }
    }
}

#[test]
fn unary_rules() {
    for u in UnaryOp::ALL {
        let positive = matches!(u, UnaryOp::Log | UnaryOp::Sqrt);
        check(Op::Unary(u), vec![rnd(&[3, 4], 1, positive)]);
    }
}

#[test]
fn binary_rules_with_broadcasting_and_scalars() {
    for op in BinaryOp::ALL {
        let positive = matches!(op, BinaryOp::Pow | BinaryOp::Div);
        check(
            Op::Binary(op),
            vec![rnd(&[2, 1, 3], 2, positive), rnd(&[4, 1], 3, positive)],
        );
        for left in [false, true] {
            let s = if matches!(op, BinaryOp::Pow) {
                1.7
            } else {
                -0.3
            };
            check(
                Op::BinaryScalar {
                    op,
                    scalar: s,
                    scalar_left: left,
                },
                vec![rnd(&[5], 4, positive)],
            );
        }
    }
}

#[test]
fn matmul_rules() {
    let cases: [(&[usize], &[usize]); 5] = [
        (&[2, 3], &[3, 4]),
        (&[2, 1, 2, 3], &[5, 3, 2]),
        (&[3], &[3, 4]),
        (&[2, 3], &[3]),
        (&[3], &[3]),
    ];
    for (a, b) in cases {
        check(Op::MatMul, vec![rnd(a, 5, false), rnd(b, 6, false)]);
    }
}

#[test]
fn reduction_rules() {
    for op in ReduceOp::ALL {
        for (axes, keepdim) in [
            (smallvec![], false),
            (smallvec![1], true),
            (smallvec![0, 2], false),
        ] {
            check(
                Op::Reduce { op, axes, keepdim },
                vec![rnd(&[2, 3, 4], 8, false)],
            );
        }
    }
}

#[test]
fn view_and_index_rules() {
    let x = || rnd(&[3, 4], 9, false);
    check(
        Op::Reshape {
            shape: Shape::new([2, 6]),
        },
        vec![x()],
    );
    check(
        Op::Permute {
            perm: smallvec![1, 0],
        },
        vec![x()],
    );
    let specs: crate::op::SliceSpecs = vec![
        SliceSpec {
            start: 1,
            len: 2,
            step: 1,
        },
        SliceSpec {
            start: 0,
            len: 2,
            step: 2,
        },
    ]
    .into();
    check(
        Op::Slice {
            specs: specs.clone(),
        },
        vec![x()],
    );
    check(
        Op::SliceAssign { specs },
        vec![x(), rnd(&[2, 2], 10, false)],
    );
    check(
        Op::Expand {
            shape: Shape::new([2, 3, 4]),
        },
        vec![x()],
    );
    check(Op::Cast { dtype: DType::F64 }, vec![x()]);
    check(
        Op::Cat { axis: 1 },
        vec![x(), rnd(&[3, 2], 11, false), rnd(&[3, 1], 12, false)],
    );
    check(
        Op::IndexSelect { axis: 0 },
        vec![x(), index(&[2, 0, 2, -1], &[4])],
    );
    check(
        Op::Gather { axis: 1 },
        vec![x(), index(&[0, 3, 3, 1, 2, 0], &[3, 2])],
    );
    check(
        Op::IndexAdd { axis: 0 },
        vec![x(), index(&[1, 1], &[2]), rnd(&[2, 4], 13, false)],
    );
    check(
        Op::ScatterAdd { axis: 1 },
        vec![
            x(),
            index(&[0, 0, 1, 3, 2, 2], &[3, 2]),
            rnd(&[3, 2], 14, false),
        ],
    );
    check(
        Op::Where,
        vec![
            boolean(&[1, 0, 0, 1], &[4]),
            rnd(&[3, 4], 15, false),
            rnd(&[1], 16, false),
        ],
    );
}

#[test]
fn non_differentiable_ops_give_no_gradient() {
    let x = || rnd(&[3, 4], 17, false);
    check(Op::Compare(CompareOp::Lt), vec![x(), rnd(&[4], 18, false)]);
    check(
        Op::CompareScalar {
            op: CompareOp::Ge,
            scalar: 0.0,
        },
        vec![x()],
    );
    check(
        Op::ArgReduce {
            op: ArgOp::ArgMax,
            axis: 1,
            keepdim: false,
        },
        vec![x()],
    );
}
