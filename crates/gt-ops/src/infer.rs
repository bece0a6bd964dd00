//! Shape and dtype inference: the single place that decides whether an op fits its inputs. The
//! client runs it at the call site, so a bad op fails where it was written, with the op name and
//! the shapes in the message; workers trust instructions that passed it.

use crate::op::{Op, ReduceOp};
use gt_core::shape::Dims;
use gt_core::{DType, Error, Result, Shape};

/// What is known about a tensor without its data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Meta {
    /// Its shape.
    pub shape: Shape,
    /// Its element type.
    pub dtype: DType,
}

impl Meta {
    /// A meta from parts.
    pub fn new(shape: impl Into<Shape>, dtype: DType) -> Meta {
        Meta {
            shape: shape.into(),
            dtype,
        }
    }
}

/// The largest number of elements one tensor may have (keeps a hostile or mistaken request
/// from asking a worker for exabytes).
pub const MAX_ELEMENTS: usize = 1 << 40;

/// Output meta of `op` applied to `inputs`, or the error a user should see.
pub fn infer(op: &Op, inputs: &[&Meta]) -> Result<Meta> {
    let name = op.name();
    match op.arity() {
        Some(n) if inputs.len() != n => {
            return Err(Error::invalid(
                name,
                format!("expected {n} inputs, got {}", inputs.len()),
            ))
        }
        None if inputs.is_empty() => return Err(Error::invalid(name, "needs at least one input")),
        _ => {}
    }
    let out = match op {
        Op::Full { shape, dtype, .. } | Op::Random { shape, dtype, .. } => {
            if matches!(op, Op::Random { .. }) && !dtype.is_float() {
                return Err(Error::dtype(
                    name,
                    format!("needs a float dtype, got {dtype}"),
                ));
            }
            Meta::new(shape.clone(), *dtype)
        }
        Op::Arange {
            start,
            step,
            len,
            dtype,
        } => {
            if *step == 0.0 || !start.is_finite() || !step.is_finite() {
                return Err(Error::invalid(name, "step must be finite and non-zero"));
            }
            Meta::new([*len], *dtype)
        }
        Op::Unary(_) | Op::BinaryScalar { .. } => {
            let x = inputs[0];
            float_only(name, x.dtype)?;
            x.clone()
        }
        Op::Binary(_) => {
            let (a, b) = (inputs[0], inputs[1]);
            let dtype = DType::promote(a.dtype, b.dtype);
            float_only(name, dtype)?;
            let shape = Shape::broadcast(&a.shape, &b.shape).ok_or_else(|| {
                Error::shape(
                    name,
                    format!(
                        "shapes {} and {} cannot be broadcast together",
                        a.shape, b.shape
                    ),
                )
            })?;
            Meta::new(shape, dtype)
        }
        Op::MatMul => matmul(inputs[0], inputs[1])?,
        Op::Reduce {
            op: r,
            axes,
            keepdim,
        } => {
            let x = inputs[0];
            float_only(name, x.dtype)?;
            check_axes(name, axes, x.shape.rank())?;
            if matches!(r, ReduceOp::Max | ReduceOp::Min) && x.shape.numel() == 0 {
                return Err(Error::shape(
                    name,
                    format!("cannot take max of empty tensor {}", x.shape),
                ));
            }
            let mut dims = Dims::new();
            for (i, &d) in x.shape.dims().iter().enumerate() {
                let reduced = axes.is_empty() || axes.contains(&i);
                match (reduced, keepdim) {
                    (false, _) => dims.push(d),
                    (true, true) => dims.push(1),
                    (true, false) => {}
                }
            }
            Meta::new(dims, x.dtype)
        }
        Op::Reshape { shape } => {
            let x = inputs[0];
            if shape.numel() != x.shape.numel() {
                return Err(Error::shape(
                    name,
                    format!(
                        "cannot reshape {} ({} elements) to {}",
                        x.shape,
                        x.shape.numel(),
                        shape
                    ),
                ));
            }
            Meta::new(shape.clone(), x.dtype)
        }
        Op::Permute { perm } => {
            let x = inputs[0];
            let rank = x.shape.rank();
            let mut seen: smallvec::SmallVec<[bool; 8]> = smallvec::smallvec![false; rank];
            let valid = perm.len() == rank
                && perm
                    .iter()
                    .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true));
            if !valid {
                return Err(Error::axis(
                    name,
                    format!(
                        "{:?} is not a permutation of the axes of {}",
                        perm.as_slice(),
                        x.shape
                    ),
                ));
            }
            Meta::new(
                perm.iter().map(|&p| x.shape.dims()[p]).collect::<Dims>(),
                x.dtype,
            )
        }
        Op::Slice { specs } => {
            let x = inputs[0];
            if specs.len() != x.shape.rank() {
                return Err(Error::shape(
                    name,
                    format!(
                        "{} slice specs for a tensor of shape {}",
                        specs.len(),
                        x.shape
                    ),
                ));
            }
            for (axis, (s, &d)) in specs.iter().zip(x.shape.dims()).enumerate() {
                let last = s.start + s.len.saturating_sub(1) * s.step;
                if s.step == 0 || (s.len > 0 && last >= d) {
                    return Err(Error::shape(
                        name,
                        format!(
                            "axis {axis}: {} elements from {} step {} do not fit in size {d} (shape {})",
                            s.len, s.start, s.step, x.shape
                        ),
                    ));
                }
            }
            Meta::new(specs.iter().map(|s| s.len).collect::<Dims>(), x.dtype)
        }
        Op::Expand { shape } => {
            let x = inputs[0];
            if Shape::broadcast(&x.shape, shape).as_ref() != Some(shape) {
                return Err(Error::shape(
                    name,
                    format!("cannot expand {} to {}", x.shape, shape),
                ));
            }
            Meta::new(shape.clone(), x.dtype)
        }
        Op::Cast { dtype } => Meta::new(inputs[0].shape.clone(), *dtype),
        Op::Compare(_) => {
            let (a, b) = (inputs[0], inputs[1]);
            Meta::new(broadcast2(name, &a.shape, &b.shape)?, DType::Bool)
        }
        Op::CompareScalar { .. } => Meta::new(inputs[0].shape.clone(), DType::Bool),
        Op::Where => {
            let (c, a, b) = (inputs[0], inputs[1], inputs[2]);
            if c.dtype != DType::Bool {
                return Err(Error::dtype(
                    name,
                    format!("condition must be bool, got {}", c.dtype),
                ));
            }
            let ab = broadcast2(name, &a.shape, &b.shape)?;
            Meta::new(
                broadcast2(name, &c.shape, &ab)?,
                DType::promote(a.dtype, b.dtype),
            )
        }
        Op::ArgReduce { axis, keepdim, .. } => {
            let x = inputs[0];
            check_axes(name, &[*axis], x.shape.rank())?;
            if x.shape.dims()[*axis] == 0 {
                return Err(Error::shape(
                    name,
                    format!("axis {axis} of {} is empty", x.shape),
                ));
            }
            let mut dims = x.shape.0.clone();
            if *keepdim {
                dims[*axis] = 1;
            } else {
                dims.remove(*axis);
            }
            Meta::new(dims, DType::I64)
        }
        Op::Cat { axis } => {
            let first = inputs[0];
            check_axes(name, &[*axis], first.shape.rank())?;
            let mut dims = first.shape.0.clone();
            dims[*axis] = 0;
            for (i, t) in inputs.iter().enumerate() {
                let same_rest = t.shape.rank() == first.shape.rank()
                    && (0..dims.len())
                        .all(|d| d == *axis || t.shape.dims()[d] == first.shape.dims()[d]);
                if !same_rest {
                    return Err(Error::shape(
                        name,
                        format!("input {i} has shape {}, but input 0 has {} (only axis {axis} may differ)", t.shape, first.shape),
                    ));
                }
                if t.dtype != first.dtype {
                    return Err(Error::dtype(
                        name,
                        format!("input {i} is {}, input 0 is {}", t.dtype, first.dtype),
                    ));
                }
                dims[*axis] += t.shape.dims()[*axis];
            }
            Meta::new(dims, first.dtype)
        }
        Op::IndexSelect { axis } => {
            let (x, idx) = (inputs[0], inputs[1]);
            check_axes(name, &[*axis], x.shape.rank())?;
            index_dtype(name, idx)?;
            if idx.shape.rank() != 1 {
                return Err(Error::shape(
                    name,
                    format!("index must be 1-d, got shape {}", idx.shape),
                ));
            }
            let mut dims = x.shape.0.clone();
            dims[*axis] = idx.shape.dims()[0];
            Meta::new(dims, x.dtype)
        }
        Op::Gather { axis } => {
            let (x, idx) = (inputs[0], inputs[1]);
            check_axes(name, &[*axis], x.shape.rank())?;
            index_dtype(name, idx)?;
            let fits = idx.shape.rank() == x.shape.rank()
                && (0..x.shape.rank())
                    .all(|d| d == *axis || idx.shape.dims()[d] <= x.shape.dims()[d]);
            if !fits {
                return Err(Error::shape(
                    name,
                    format!(
                        "index shape {} does not fit input {} along axes other than {axis}",
                        idx.shape, x.shape
                    ),
                ));
            }
            Meta::new(idx.shape.clone(), x.dtype)
        }
        Op::IndexAdd { axis } | Op::ScatterAdd { axis } => {
            let (base, idx, src) = (inputs[0], inputs[1], inputs[2]);
            check_axes(name, &[*axis], base.shape.rank())?;
            index_dtype(name, idx)?;
            if src.dtype != base.dtype {
                return Err(Error::dtype(
                    name,
                    format!("source is {}, base is {}", src.dtype, base.dtype),
                ));
            }
            let ok = match op {
                Op::IndexAdd { .. } => {
                    let mut want = base.shape.0.clone();
                    want[*axis] = idx.shape.dims().first().copied().unwrap_or(0);
                    idx.shape.rank() == 1 && src.shape.dims() == want.as_slice()
                }
                _ => {
                    src.shape == idx.shape
                        && idx.shape.rank() == base.shape.rank()
                        && (0..base.shape.rank())
                            .all(|d| d == *axis || idx.shape.dims()[d] <= base.shape.dims()[d])
                }
            };
            if !ok {
                return Err(Error::shape(
                    name,
                    format!(
                        "base {}, index {}, source {} do not fit along axis {axis}",
                        base.shape, idx.shape, src.shape
                    ),
                ));
            }
            base.clone()
        }
        Op::SliceAssign { specs } => {
            let (x, value) = (inputs[0], inputs[1]);
            let sliced = infer(
                &Op::Slice {
                    specs: specs.clone(),
                },
                &[x],
            )
            .map_err(|e| match e {
                Error::Shape { msg, .. } => Error::shape(name, msg),
                other => other,
            })?;
            if value.shape != sliced.shape {
                return Err(Error::shape(
                    name,
                    format!(
                        "value of shape {} does not fill a slice of shape {}",
                        value.shape, sliced.shape
                    ),
                ));
            }
            if value.dtype != x.dtype {
                return Err(Error::dtype(
                    name,
                    format!("value is {}, tensor is {}", value.dtype, x.dtype),
                ));
            }
            x.clone()
        }
    };
    if out.shape.numel() > MAX_ELEMENTS {
        return Err(Error::shape(
            name,
            format!("result {} is too large", out.shape),
        ));
    }
    Ok(out)
}

fn broadcast2(name: &str, a: &Shape, b: &Shape) -> Result<Shape> {
    Shape::broadcast(a, b).ok_or_else(|| {
        Error::shape(
            name,
            format!("shapes {a} and {b} cannot be broadcast together"),
        )
    })
}

fn index_dtype(name: &str, idx: &Meta) -> Result<()> {
    if idx.dtype == DType::I64 {
        Ok(())
    } else {
        Err(Error::dtype(
            name,
            format!("index must be int64, got {}", idx.dtype),
        ))
    }
}

fn float_only(name: &str, dtype: DType) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::dtype(
            name,
            format!("expected a float tensor, got {dtype}"),
        ))
    }
}

fn check_axes(name: &str, axes: &[usize], rank: usize) -> Result<()> {
    for (i, &a) in axes.iter().enumerate() {
        if a >= rank {
            return Err(Error::axis(
                name,
                format!("axis {a} is out of range for rank {rank}"),
            ));
        }
        if i > 0 && axes[i - 1] >= a {
            return Err(Error::axis(
                name,
                format!("axes {axes:?} must be sorted and unique"),
            ));
        }
    }
    Ok(())
}

/// NumPy `matmul` shape rule: 1-d operands are promoted (and the added axis removed afterwards),
/// batch dims broadcast.
fn matmul(a: &Meta, b: &Meta) -> Result<Meta> {
    let dtype = DType::promote(a.dtype, b.dtype);
    float_only("matmul", dtype)?;
    let err =
        |why: &str| Error::shape("matmul", format!("lhs {}, rhs {}: {why}", a.shape, b.shape));
    let (ra, rb) = (a.shape.rank(), b.shape.rank());
    if ra == 0 || rb == 0 {
        return Err(err("both operands need at least one dimension"));
    }
    let ad = a.shape.dims();
    let bd = b.shape.dims();
    let (m, k1) = if ra == 1 {
        (None, ad[0])
    } else {
        (Some(ad[ra - 2]), ad[ra - 1])
    };
    let (k2, n) = if rb == 1 {
        (bd[0], None)
    } else {
        (bd[rb - 2], Some(bd[rb - 1]))
    };
    if k1 != k2 {
        return Err(err(&format!("contraction sizes differ ({k1} vs {k2})")));
    }
    let batch_a = Shape::new(&ad[..ra.saturating_sub(2)]);
    let batch_b = Shape::new(&bd[..rb.saturating_sub(2)]);
    let batch = Shape::broadcast(&batch_a, &batch_b)
        .ok_or_else(|| err("batch dimensions cannot be broadcast"))?;
    let mut dims = batch.0;
    dims.extend(m);
    dims.extend(n);
    Ok(Meta::new(dims, dtype))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{BinaryOp, SliceSpec, UnaryOp};
    use smallvec::smallvec;

    fn m(d: &[usize]) -> Meta {
        Meta::new(d, DType::F32)
    }

    #[test]
    fn matmul_shapes() {
        let ok = |a: &[usize], b: &[usize]| infer(&Op::MatMul, &[&m(a), &m(b)]).map(|x| x.shape);
        assert_eq!(ok(&[2, 3], &[3, 4]).unwrap(), Shape::new([2, 4]));
        assert_eq!(ok(&[5, 2, 3], &[3, 4]).unwrap(), Shape::new([5, 2, 4]));
        assert_eq!(
            ok(&[5, 1, 2, 3], &[7, 3, 4]).unwrap(),
            Shape::new([5, 7, 2, 4])
        );
        assert_eq!(ok(&[3], &[3, 4]).unwrap(), Shape::new([4]));
        assert_eq!(ok(&[2, 3], &[3]).unwrap(), Shape::new([2]));
        let e = ok(&[2, 3], &[4, 5]).unwrap_err().to_string();
        assert!(
            e.contains("matmul") && e.contains("[2, 3]") && e.contains("[4, 5]"),
            "{e}"
        );
    }

    #[test]
    fn binary_broadcast_error_names_op_and_shapes() {
        let e = infer(&Op::Binary(BinaryOp::Add), &[&m(&[2, 3]), &m(&[4])]).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("add") && s.contains("[2, 3]") && s.contains("[4]"),
            "{s}"
        );
    }

    #[test]
    fn reduce_and_views() {
        let r = Op::Reduce {
            op: ReduceOp::Sum,
            axes: smallvec![0, 2],
            keepdim: false,
        };
        assert_eq!(infer(&r, &[&m(&[2, 3, 4])]).unwrap().shape, Shape::new([3]));
        let r = Op::Reduce {
            op: ReduceOp::Mean,
            axes: smallvec![1],
            keepdim: true,
        };
        assert_eq!(
            infer(&r, &[&m(&[2, 3, 4])]).unwrap().shape,
            Shape::new([2, 1, 4])
        );
        let r = Op::Reduce {
            op: ReduceOp::Max,
            axes: smallvec![],
            keepdim: false,
        };
        assert_eq!(infer(&r, &[&m(&[2, 3])]).unwrap().shape, Shape::scalar());
        let bad = Op::Reduce {
            op: ReduceOp::Sum,
            axes: smallvec![3],
            keepdim: false,
        };
        assert!(matches!(
            infer(&bad, &[&m(&[2, 3])]),
            Err(Error::Axis { .. })
        ));
        let p = Op::Permute {
            perm: smallvec![1, 0, 0],
        };
        assert!(matches!(
            infer(&p, &[&m(&[2, 3, 4])]),
            Err(Error::Axis { .. })
        ));
        let s = Op::Slice {
            specs: vec![SliceSpec {
                start: 1,
                len: 2,
                step: 2,
            }]
            .into(),
        };
        assert_eq!(infer(&s, &[&m(&[5])]).unwrap().shape, Shape::new([2]));
        let s = Op::Slice {
            specs: vec![SliceSpec {
                start: 1,
                len: 3,
                step: 2,
            }]
            .into(),
        };
        assert!(infer(&s, &[&m(&[5])]).is_err());
        let e = Op::Expand {
            shape: Shape::new([4, 3]),
        };
        assert!(infer(&e, &[&m(&[1, 3])]).is_ok());
        assert!(infer(&e, &[&m(&[2, 3])]).is_err());
    }

    #[test]
    fn dtype_rules() {
        let a = Meta::new([2], DType::F32);
        let b = Meta::new([2], DType::F64);
        assert_eq!(
            infer(&Op::Binary(BinaryOp::Mul), &[&a, &b]).unwrap().dtype,
            DType::F64
        );
        let i = Meta::new([2], DType::I64);
        assert!(matches!(
            infer(&Op::Unary(UnaryOp::Exp), &[&i]),
            Err(Error::DType { .. })
        ));
    }
}
