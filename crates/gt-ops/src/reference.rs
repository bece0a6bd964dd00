//! A slow, obviously-correct float64 evaluator of every op: the oracle for the op-table-driven
//! tests. It works on contiguous row-major data and plain index arithmetic, sharing nothing with
//! the fast kernels except the per-element semantics of [`crate::scalar`].

use crate::infer::{infer, Meta};
use crate::op::{ArgOp, Dist, Op, ReduceOp};
use crate::{random, scalar};
use gt_core::{DType, Result, Shape};

/// A contiguous float64 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct RefTensor {
    /// Its shape.
    pub shape: Shape,
    /// Row-major values.
    pub data: Vec<f64>,
}

impl RefTensor {
    /// A tensor from parts; `data.len()` must equal the shape's element count.
    pub fn new(shape: impl Into<Shape>, data: Vec<f64>) -> RefTensor {
        let shape = shape.into();
        assert_eq!(
            shape.numel(),
            data.len(),
            "reference tensor data does not fit {shape}"
        );
        RefTensor { shape, data }
    }
}

/// Multi-index of flat row-major position `flat` in `dims`.
pub fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for i in (0..dims.len()).rev() {
        if dims[i] > 0 {
            idx[i] = flat % dims[i];
            flat /= dims[i];
        }
    }
    idx
}

/// Flat row-major position of `idx` in `dims`.
pub fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// Reads `t` at the broadcast index `idx` of a larger shape.
fn at_broadcast(t: &RefTensor, idx: &[usize]) -> f64 {
    let dims = t.shape.dims();
    let off = idx.len() - dims.len();
    let own: Vec<usize> = dims
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 1 { 0 } else { idx[off + i] })
        .collect();
    t.data[ravel(&own, dims)]
}

/// Evaluates `op` on `inputs` (all treated as `dtype`-agnostic float64 values).
pub fn eval(op: &Op, inputs: &[&RefTensor]) -> Result<RefTensor> {
    // The reference computes in float64 whatever the dtypes; conditions and indices are given
    // the dtypes inference expects of them.
    let metas: Vec<Meta> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| Meta::new(t.shape.clone(), reference_dtype(op, i)))
        .collect();
    let meta_refs: Vec<&Meta> = metas.iter().collect();
    let out = infer(op, &meta_refs)?;
    let dims = out.shape.dims().to_vec();
    let n = out.shape.numel();
    let each = |f: &dyn Fn(&[usize]) -> f64| -> Vec<f64> {
        (0..n).map(|i| f(&unravel(i, &dims))).collect()
    };
    let data = match op {
        Op::Full { value, .. } => vec![*value; n],
        Op::Arange { start, step, .. } => (0..n).map(|i| start + step * i as f64).collect(),
        Op::Random {
            dist, seed, stream, ..
        } => (0..n as u64)
            .map(|i| match dist {
                Dist::Uniform => random::uniform(*seed, *stream, i),
                Dist::Normal => random::normal(*seed, *stream, i),
            })
            .collect(),
        Op::Unary(u) => inputs[0]
            .data
            .iter()
            .map(|&x| scalar::unary(*u, x))
            .collect(),
        Op::Binary(b) => each(&|idx| {
            scalar::binary(
                *b,
                at_broadcast(inputs[0], idx),
                at_broadcast(inputs[1], idx),
            )
        }),
        Op::BinaryScalar {
            op: b,
            scalar: s,
            scalar_left,
        } => inputs[0]
            .data
            .iter()
            .map(|&x| {
                if *scalar_left {
                    scalar::binary(*b, *s, x)
                } else {
                    scalar::binary(*b, x, *s)
                }
            })
            .collect(),
        Op::MatMul => matmul(inputs[0], inputs[1], &dims),
        Op::Reduce {
            op: r,
            axes,
            keepdim,
        } => {
            let x = inputs[0];
            let xd = x.shape.dims();
            let reduced = |i: usize| axes.is_empty() || axes.contains(&i);
            let mut acc = vec![Vec::new(); n];
            for (flat, &v) in x.data.iter().enumerate() {
                let idx = unravel(flat, xd);
                let oidx: Vec<usize> = idx
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &j)| match (reduced(i), keepdim) {
                        (false, _) => Some(j),
                        (true, true) => Some(0),
                        (true, false) => None,
                    })
                    .collect();
                acc[ravel(&oidx, &dims)].push(v);
            }
            acc.iter()
                .map(|vals| match r {
                    ReduceOp::Sum => vals.iter().sum(),
                    ReduceOp::Mean => vals.iter().sum::<f64>() / vals.len() as f64,
                    ReduceOp::Max => vals
                        .iter()
                        .copied()
                        .fold(f64::NEG_INFINITY, scalar::max_nan),
                    ReduceOp::Min => vals.iter().copied().fold(f64::INFINITY, scalar::min_nan),
                })
                .collect()
        }
        Op::Reshape { .. } | Op::Cast { .. } => inputs[0].data.clone(),
        Op::Permute { perm } => each(&|idx| {
            let mut src = vec![0; idx.len()];
            for (o, &p) in perm.iter().enumerate() {
                src[p] = idx[o];
            }
            inputs[0].data[ravel(&src, inputs[0].shape.dims())]
        }),
        Op::Slice { specs } => each(&|idx| {
            let src: Vec<usize> = idx
                .iter()
                .zip(specs)
                .map(|(&i, s)| s.start + i * s.step)
                .collect();
            inputs[0].data[ravel(&src, inputs[0].shape.dims())]
        }),
        Op::Expand { .. } => each(&|idx| at_broadcast(inputs[0], idx)),
        Op::Compare(c) => each(&|idx| {
            scalar::compare(
                *c,
                at_broadcast(inputs[0], idx),
                at_broadcast(inputs[1], idx),
            ) as u8 as f64
        }),
        Op::CompareScalar { op: c, scalar: v } => inputs[0]
            .data
            .iter()
            .map(|&x| scalar::compare(*c, x, *v) as u8 as f64)
            .collect(),
        Op::Where => each(&|idx| {
            if at_broadcast(inputs[0], idx) != 0.0 {
                at_broadcast(inputs[1], idx)
            } else {
                at_broadcast(inputs[2], idx)
            }
        }),
        Op::ArgReduce { op: a, axis, .. } => {
            let x = inputs[0];
            let xd = x.shape.dims();
            let mut outer = xd.to_vec();
            outer[*axis] = 1;
            (0..n)
                .map(|i| {
                    let mut idx = unravel(i, &outer);
                    let mut best = (0usize, f64::NAN);
                    for j in 0..xd[*axis] {
                        idx[*axis] = j;
                        let v = x.data[ravel(&idx, xd)];
                        let better = match a {
                            ArgOp::ArgMax => v > best.1 || (v.is_nan() && !best.1.is_nan()),
                            ArgOp::ArgMin => v < best.1 || (v.is_nan() && !best.1.is_nan()),
                        };
                        if j == 0 || (better && !best.1.is_nan()) {
                            best = (j, v);
                        }
                    }
                    best.0 as f64
                })
                .collect()
        }
        Op::Cat { axis } => each(&|idx| {
            let mut k = idx[*axis];
            for t in inputs {
                let d = t.shape.dims()[*axis];
                if k < d {
                    let mut src = idx.to_vec();
                    src[*axis] = k;
                    return t.data[ravel(&src, t.shape.dims())];
                }
                k -= d;
            }
            unreachable!("checked by infer")
        }),
        Op::IndexSelect { axis } => {
            let (x, ix) = (inputs[0], inputs[1]);
            let rows = checked_indices(op.name(), &ix.data, x.shape.dims()[*axis])?;
            each(&|idx| {
                let mut src = idx.to_vec();
                src[*axis] = rows[idx[*axis]];
                x.data[ravel(&src, x.shape.dims())]
            })
        }
        Op::Gather { axis } => {
            let (x, ix) = (inputs[0], inputs[1]);
            let pos = checked_indices(op.name(), &ix.data, x.shape.dims()[*axis])?;
            each(&|idx| {
                let mut src = idx.to_vec();
                src[*axis] = pos[ravel(idx, ix.shape.dims())];
                x.data[ravel(&src, x.shape.dims())]
            })
        }
        Op::IndexAdd { axis } | Op::ScatterAdd { axis } => {
            let (base, ix, src) = (inputs[0], inputs[1], inputs[2]);
            let pos = checked_indices(op.name(), &ix.data, base.shape.dims()[*axis])?;
            let mut out = base.data.clone();
            for (flat, &v) in src.data.iter().enumerate() {
                let mut idx = unravel(flat, src.shape.dims());
                idx[*axis] = match op {
                    Op::IndexAdd { .. } => pos[idx[*axis]],
                    _ => pos[flat],
                };
                out[ravel(&idx, base.shape.dims())] += v;
            }
            out
        }
        Op::SliceAssign { specs } => {
            let (x, value) = (inputs[0], inputs[1]);
            let mut out = x.data.clone();
            for (flat, &v) in value.data.iter().enumerate() {
                let idx = unravel(flat, value.shape.dims());
                let dst: Vec<usize> = idx
                    .iter()
                    .zip(specs)
                    .map(|(&i, s)| s.start + i * s.step)
                    .collect();
                out[ravel(&dst, x.shape.dims())] = v;
            }
            out
        }
    };
    Ok(RefTensor {
        shape: out.shape,
        data,
    })
}

fn reference_dtype(op: &Op, input: usize) -> DType {
    match (op, input) {
        (Op::Where, 0) => DType::Bool,
        (
            Op::IndexSelect { .. }
            | Op::Gather { .. }
            | Op::IndexAdd { .. }
            | Op::ScatterAdd { .. },
            1,
        ) => DType::I64,
        _ => DType::F64,
    }
}

/// Index values as positions, or the error naming the first one out of range.
fn checked_indices(op: &str, values: &[f64], size: usize) -> Result<Vec<usize>> {
    values
        .iter()
        .map(|&v| {
            let i = v as i64;
            let i = if i < 0 { i + size as i64 } else { i };
            if i < 0 || i >= size as i64 {
                Err(gt_core::Error::invalid(
                    op,
                    format!("index {v} is out of range for size {size}"),
                ))
            } else {
                Ok(i as usize)
            }
        })
        .collect()
}

fn matmul(a: &RefTensor, b: &RefTensor, out_dims: &[usize]) -> Vec<f64> {
    // Promote 1-d operands like NumPy, then broadcast batch dims.
    let mut ad = a.shape.dims().to_vec();
    let mut bd = b.shape.dims().to_vec();
    if ad.len() == 1 {
        ad.insert(0, 1);
    }
    if bd.len() == 1 {
        bd.push(1);
    }
    let (m, k, n) = (ad[ad.len() - 2], ad[ad.len() - 1], bd[bd.len() - 1]);
    let batch = Shape::broadcast(
        &Shape::new(&ad[..ad.len() - 2]),
        &Shape::new(&bd[..bd.len() - 2]),
    )
    .expect("checked by infer");
    let a3 = RefTensor::new(ad.clone(), a.data.clone());
    let b3 = RefTensor::new(bd.clone(), b.data.clone());
    let mut out = Vec::with_capacity(out_dims.iter().product());
    for bi in 0..batch.numel() {
        let bidx = unravel(bi, batch.dims());
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for kk in 0..k {
                    let mut ia = bidx.clone();
                    ia.extend([i, kk]);
                    let mut ib = bidx.clone();
                    ib.extend([kk, j]);
                    s += at_broadcast(&a3, &ia) * at_broadcast(&b3, &ib);
                }
                out.push(s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{BinaryOp, SliceSpec};
    use smallvec::smallvec;

    #[test]
    fn small_known_values() {
        let a = RefTensor::new([2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let b = RefTensor::new([2], vec![10.0, 20.0]);
        let s = eval(&Op::Binary(BinaryOp::Add), &[&a, &b]).unwrap();
        assert_eq!(s.data, vec![11.0, 22.0, 13.0, 24.0]);
        let mm = eval(&Op::MatMul, &[&a, &a]).unwrap();
        assert_eq!(mm.data, vec![7.0, 10.0, 15.0, 22.0]);
        let t = eval(
            &Op::Permute {
                perm: smallvec![1, 0],
            },
            &[&a],
        )
        .unwrap();
        assert_eq!(t.data, vec![1.0, 3.0, 2.0, 4.0]);
        let r = Op::Reduce {
            op: ReduceOp::Sum,
            axes: smallvec![0],
            keepdim: false,
        };
        assert_eq!(eval(&r, &[&a]).unwrap().data, vec![4.0, 6.0]);
        let sl = Op::Slice {
            specs: vec![
                SliceSpec {
                    start: 1,
                    len: 1,
                    step: 1,
                },
                SliceSpec {
                    start: 0,
                    len: 2,
                    step: 1,
                },
            ]
            .into(),
        };
        assert_eq!(eval(&sl, &[&a]).unwrap().data, vec![3.0, 4.0]);
    }
}
