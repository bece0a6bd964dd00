//! Vector-Jacobian products: one rule per op, written once against the small [`Graph`] trait so
//! the same table drives the client's autograd (which emits the gradient ops into the stream)
//! and the finite-difference tests (which evaluate them on the float64 reference).
//!
//! A rule receives the op, its inputs, its output and the output's gradient, and returns one
//! optional gradient per input (`None`: not differentiable there, e.g. indices and conditions).
//! Broadcasting is undone by [`sum_to`].

use crate::infer::Meta;
use crate::op::{BinaryOp, CompareOp, Op, ReduceOp, SliceSpec, UnaryOp};
use gt_core::{DType, Result, Shape};
use smallvec::SmallVec;

/// Whatever can apply ops to tensors: the client's stream, or the reference evaluator.
pub trait Graph {
    /// A tensor handle.
    type T: Clone;
    /// `op(inputs)`.
    fn apply(&self, op: Op, inputs: &[&Self::T]) -> Result<Self::T>;
    /// Shape and dtype of `t`.
    fn meta(&self, t: &Self::T) -> Meta;
}

/// One optional gradient per input.
pub type Grads<T> = SmallVec<[Option<T>; 3]>;

/// Whether gradients flow into input `i` of `op` (only float data inputs do).
pub fn differentiable(op: &Op, i: usize) -> bool {
    match op {
        Op::Full { .. } | Op::Arange { .. } | Op::Random { .. } => false,
        Op::Compare(_) | Op::CompareScalar { .. } | Op::ArgReduce { .. } => false,
        Op::Unary(_)
        | Op::Binary(_)
        | Op::BinaryScalar { .. }
        | Op::MatMul
        | Op::Reduce { .. }
        | Op::Reshape { .. }
        | Op::Permute { .. }
        | Op::Slice { .. }
        | Op::Expand { .. }
        | Op::Cast { .. }
        | Op::Cat { .. }
        | Op::SliceAssign { .. } => true,
        Op::Where => i > 0,
        Op::IndexSelect { .. } | Op::Gather { .. } => i == 0,
        Op::IndexAdd { .. } | Op::ScatterAdd { .. } => i != 1,
    }
}

struct B<'g, G: Graph>(&'g G);

impl<G: Graph> B<'_, G> {
    fn ap(&self, op: Op, ins: &[&G::T]) -> Result<G::T> {
        self.0.apply(op, ins)
    }
    fn un(&self, op: UnaryOp, x: &G::T) -> Result<G::T> {
        self.ap(Op::Unary(op), &[x])
    }
    fn bin(&self, op: BinaryOp, a: &G::T, b: &G::T) -> Result<G::T> {
        self.ap(Op::Binary(op), &[a, b])
    }
    fn sc(&self, op: BinaryOp, x: &G::T, s: f64) -> Result<G::T> {
        self.ap(
            Op::BinaryScalar {
                op,
                scalar: s,
                scalar_left: false,
            },
            &[x],
        )
    }
    fn meta(&self, t: &G::T) -> Meta {
        self.0.meta(t)
    }
    fn zeros(&self, shape: &Shape, dtype: DType) -> Result<G::T> {
        self.ap(
            Op::Full {
                shape: shape.clone(),
                value: 0.0,
                dtype,
            },
            &[],
        )
    }
    /// `cond ? x : 0`
    fn keep(&self, cond: &G::T, x: &G::T) -> Result<G::T> {
        let z = self.zeros(&Shape::scalar(), self.meta(x).dtype)?;
        self.ap(Op::Where, &[cond, x, &z])
    }
    fn reshape(&self, x: &G::T, shape: &Shape) -> Result<G::T> {
        if &self.meta(x).shape == shape {
            return Ok(x.clone());
        }
        self.ap(
            Op::Reshape {
                shape: shape.clone(),
            },
            &[x],
        )
    }
    fn transpose_last(&self, x: &G::T) -> Result<G::T> {
        let r = self.meta(x).shape.rank();
        let mut perm: SmallVec<[usize; 6]> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.ap(Op::Permute { perm }, &[x])
    }
    /// Gradient of `max(a, b)` with respect to `a`: all of it where `a` wins, half on ties.
    fn extreme_share(&self, a: &G::T, b: &G::T, gy: &G::T, max: bool) -> Result<G::T> {
        let win = self.ap(
            Op::Compare(if max { CompareOp::Gt } else { CompareOp::Lt }),
            &[a, b],
        )?;
        let tie = self.ap(Op::Compare(CompareOp::Eq), &[a, b])?;
        let half = self.sc(BinaryOp::Mul, gy, 0.5)?;
        let tied = self.keep(&tie, &half)?;
        let z = self.zeros(&Shape::scalar(), self.meta(gy).dtype)?;
        let won = self.ap(Op::Where, &[&win, gy, &z])?;
        self.bin(BinaryOp::Add, &won, &tied)
    }
}

/// Sums `t` down to `shape` (undoing NumPy broadcasting).
pub fn sum_to<G: Graph>(g: &G, t: &G::T, shape: &Shape) -> Result<G::T> {
    let have = g.meta(t).shape;
    if &have == shape {
        return Ok(t.clone());
    }
    let lead = have.rank() - shape.rank();
    let mut axes: SmallVec<[usize; 4]> = (0..lead).collect();
    for (i, &d) in shape.dims().iter().enumerate() {
        if d == 1 && have.dims()[lead + i] != 1 {
            axes.push(lead + i);
        }
    }
    let summed = if axes.is_empty() {
        t.clone()
    } else {
        g.apply(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes,
                keepdim: true,
            },
            &[t],
        )?
    };
    B(g).reshape(&summed, shape)
}

/// The gradients of `op`'s inputs given the gradient `gy` of its output `y`.
pub fn vjp<G: Graph>(g: &G, op: &Op, x: &[&G::T], y: &G::T, gy: &G::T) -> Result<Grads<G::T>> {
    vjp_needed(g, op, x, y, gy, &[])
}

/// Like [`vjp`], but only for the inputs `need` marks (`need[i]`; inputs past its end are
/// needed): the others get `None` and no ops are emitted for them. Autograd passes which inputs
/// require gradients, so `data @ w` with a constant `data` does not compute `grad @ wᵀ` — the
/// largest product of a linear layer's backward pass, wasted in eager mode.
pub fn vjp_needed<G: Graph>(
    g: &G,
    op: &Op,
    x: &[&G::T],
    y: &G::T,
    gy: &G::T,
    need: &[bool],
) -> Result<Grads<G::T>> {
    let want = |i: usize| need.get(i).copied().unwrap_or(true);
    let b = B(g);
    let shape = |i: usize| g.meta(x[i]).shape;
    let mut out: Grads<G::T> = SmallVec::new();
    match op {
        Op::Full { .. } | Op::Arange { .. } | Op::Random { .. } => {}
        Op::Compare(_) => out.extend([None, None]),
        Op::CompareScalar { .. } | Op::ArgReduce { .. } => out.push(None),
        Op::Unary(u) => out.push(Some(match u {
            UnaryOp::Neg => b.un(UnaryOp::Neg, gy)?,
            UnaryOp::Exp => b.bin(BinaryOp::Mul, gy, y)?,
            UnaryOp::Log => b.bin(BinaryOp::Div, gy, x[0])?,
            UnaryOp::Sqrt => b.bin(BinaryOp::Div, gy, &b.sc(BinaryOp::Mul, y, 2.0)?)?,
            UnaryOp::Relu => b.keep(
                &b.ap(
                    Op::CompareScalar {
                        op: CompareOp::Gt,
                        scalar: 0.0,
                    },
                    &[x[0]],
                )?,
                gy,
            )?,
            UnaryOp::Sigmoid => {
                let one_minus = b.ap(
                    Op::BinaryScalar {
                        op: BinaryOp::Sub,
                        scalar: 1.0,
                        scalar_left: true,
                    },
                    &[y],
                )?;
                b.bin(BinaryOp::Mul, gy, &b.bin(BinaryOp::Mul, y, &one_minus)?)?
            }
            UnaryOp::Tanh => {
                let sq = b.bin(BinaryOp::Mul, y, y)?;
                let d = b.ap(
                    Op::BinaryScalar {
                        op: BinaryOp::Sub,
                        scalar: 1.0,
                        scalar_left: true,
                    },
                    &[&sq],
                )?;
                b.bin(BinaryOp::Mul, gy, &d)?
            }
            UnaryOp::Abs => b.bin(BinaryOp::Mul, gy, &b.un(UnaryOp::Sign, x[0])?)?,
            UnaryOp::Sign => b.zeros(&shape(0), g.meta(x[0]).dtype)?,
            UnaryOp::Erf => {
                let sq = b.bin(BinaryOp::Mul, x[0], x[0])?;
                let e = b.un(UnaryOp::Exp, &b.un(UnaryOp::Neg, &sq)?)?;
                let d = b.sc(BinaryOp::Mul, &e, std::f64::consts::FRAC_2_SQRT_PI)?;
                b.bin(BinaryOp::Mul, gy, &d)?
            }
        })),
        Op::Binary(op) => {
            // Each side is built only when wanted (`Div`'s second side reuses the first).
            let (wa, wb) = (want(0), want(1));
            let (ga, gb) = match op {
                BinaryOp::Add => (wa.then(|| gy.clone()), wb.then(|| gy.clone())),
                BinaryOp::Sub => (
                    wa.then(|| gy.clone()),
                    wb.then(|| b.un(UnaryOp::Neg, gy)).transpose()?,
                ),
                BinaryOp::Mul => (
                    wa.then(|| b.bin(BinaryOp::Mul, gy, x[1])).transpose()?,
                    wb.then(|| b.bin(BinaryOp::Mul, gy, x[0])).transpose()?,
                ),
                BinaryOp::Div => {
                    let ga = b.bin(BinaryOp::Div, gy, x[1])?;
                    let gb = wb
                        .then(|| b.un(UnaryOp::Neg, &b.bin(BinaryOp::Mul, &ga, y)?))
                        .transpose()?;
                    (wa.then_some(ga), gb)
                }
                BinaryOp::Pow => {
                    let da = || -> Result<G::T> {
                        let bm1 = b.sc(BinaryOp::Sub, x[1], 1.0)?;
                        let d = b.bin(BinaryOp::Mul, x[1], &b.bin(BinaryOp::Pow, x[0], &bm1)?)?;
                        b.bin(BinaryOp::Mul, gy, &d)
                    };
                    let db = || -> Result<G::T> {
                        let d = b.bin(BinaryOp::Mul, y, &b.un(UnaryOp::Log, x[0])?)?;
                        b.bin(BinaryOp::Mul, gy, &d)
                    };
                    (wa.then(da).transpose()?, wb.then(db).transpose()?)
                }
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    let max = matches!(op, BinaryOp::Maximum);
                    (
                        wa.then(|| b.extreme_share(x[0], x[1], gy, max))
                            .transpose()?,
                        wb.then(|| b.extreme_share(x[1], x[0], gy, max))
                            .transpose()?,
                    )
                }
            };
            out.push(ga.map(|t| sum_to(g, &t, &shape(0))).transpose()?);
            out.push(gb.map(|t| sum_to(g, &t, &shape(1))).transpose()?);
        }
        Op::BinaryScalar {
            op,
            scalar: s,
            scalar_left,
        } => out.push(Some(match (op, scalar_left) {
            (BinaryOp::Add, _) | (BinaryOp::Sub, false) => gy.clone(),
            (BinaryOp::Sub, true) => b.un(UnaryOp::Neg, gy)?,
            (BinaryOp::Mul, _) => b.sc(BinaryOp::Mul, gy, *s)?,
            (BinaryOp::Div, false) => b.sc(BinaryOp::Div, gy, *s)?,
            (BinaryOp::Div, true) => b.un(
                UnaryOp::Neg,
                &b.bin(BinaryOp::Mul, gy, &b.bin(BinaryOp::Div, y, x[0])?)?,
            )?,
            (BinaryOp::Pow, false) => {
                let d = b.sc(BinaryOp::Mul, &b.sc(BinaryOp::Pow, x[0], s - 1.0)?, *s)?;
                b.bin(BinaryOp::Mul, gy, &d)?
            }
            (BinaryOp::Pow, true) => b.sc(BinaryOp::Mul, &b.bin(BinaryOp::Mul, gy, y)?, s.ln())?,
            (BinaryOp::Maximum | BinaryOp::Minimum, _) => {
                // The constant takes no gradient, so `x` keeps all of it wherever it is the
                // result, ties included (PyTorch's `clamp` rule).
                let c = if matches!(op, BinaryOp::Maximum) {
                    CompareOp::Ge
                } else {
                    CompareOp::Le
                };
                b.keep(&b.ap(Op::CompareScalar { op: c, scalar: *s }, &[x[0]])?, gy)?
            }
        })),
        Op::MatMul => {
            let (sa, sb) = (shape(0), shape(1));
            // Promote 1-d operands like the forward did, so both products are batched 2-d.
            let a2 = if sa.rank() == 1 {
                b.reshape(x[0], &Shape::new([1, sa.dims()[0]]))?
            } else {
                x[0].clone()
            };
            let b2 = if sb.rank() == 1 {
                b.reshape(x[1], &Shape::new([sb.dims()[0], 1]))?
            } else {
                x[1].clone()
            };
            let mut gdims = g.meta(gy).shape.dims().to_vec();
            if sa.rank() == 1 {
                gdims.insert(gdims.len() - usize::from(sb.rank() != 1), 1);
            }
            if sb.rank() == 1 {
                gdims.push(1);
            }
            let g2 = b.reshape(gy, &Shape::new(gdims))?;
            let ga = || -> Result<G::T> {
                let ga = b.ap(Op::MatMul, &[&g2, &b.transpose_last(&b2)?])?;
                b.reshape(&sum_to(g, &ga, &g.meta(&a2).shape)?, &sa)
            };
            let gb = || -> Result<G::T> {
                let gb = b.ap(Op::MatMul, &[&b.transpose_last(&a2)?, &g2])?;
                b.reshape(&sum_to(g, &gb, &g.meta(&b2).shape)?, &sb)
            };
            out.push(want(0).then(ga).transpose()?);
            out.push(want(1).then(gb).transpose()?);
        }
        Op::Reduce { op, axes, .. } => {
            let xs = shape(0);
            let mut keep = xs.dims().to_vec();
            for (i, d) in keep.iter_mut().enumerate() {
                if axes.is_empty() || axes.contains(&i) {
                    *d = 1;
                }
            }
            let keep = Shape::new(keep);
            let gk = b.reshape(gy, &keep)?;
            let full = |t: &G::T| b.ap(Op::Expand { shape: xs.clone() }, &[t]);
            out.push(Some(match op {
                ReduceOp::Sum => full(&gk)?,
                ReduceOp::Mean => {
                    let n = (xs.numel() / keep.numel().max(1)).max(1);
                    full(&b.sc(BinaryOp::Div, &gk, n as f64)?)?
                }
                ReduceOp::Max | ReduceOp::Min => {
                    // Ties share the gradient evenly (PyTorch's amax/amin rule).
                    let yk = b.reshape(y, &keep)?;
                    let hit = b.ap(Op::Compare(CompareOp::Eq), &[x[0], &yk])?;
                    let mask = b.ap(
                        Op::Cast {
                            dtype: g.meta(x[0]).dtype,
                        },
                        &[&hit],
                    )?;
                    let count = b.ap(
                        Op::Reduce {
                            op: ReduceOp::Sum,
                            axes: axes.clone(),
                            keepdim: true,
                        },
                        &[&mask],
                    )?;
                    b.bin(BinaryOp::Mul, &mask, &b.bin(BinaryOp::Div, &gk, &count)?)?
                }
            }));
        }
        Op::Reshape { .. } => out.push(Some(b.reshape(gy, &shape(0))?)),
        Op::Permute { perm } => {
            let mut inv: SmallVec<[usize; 6]> = SmallVec::from_elem(0, perm.len());
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            out.push(Some(b.ap(Op::Permute { perm: inv }, &[gy])?));
        }
        Op::Slice { specs } => {
            let z = b.zeros(&shape(0), g.meta(x[0]).dtype)?;
            out.push(Some(b.ap(
                Op::SliceAssign {
                    specs: specs.clone(),
                },
                &[&z, gy],
            )?));
        }
        Op::Expand { .. } => out.push(Some(sum_to(g, gy, &shape(0))?)),
        Op::Cast { .. } => {
            let dt = g.meta(x[0]).dtype;
            out.push(if dt.is_float() {
                Some(b.ap(Op::Cast { dtype: dt }, &[gy])?)
            } else {
                None
            });
        }
        Op::Where => {
            let z = b.zeros(&Shape::scalar(), g.meta(gy).dtype)?;
            let side = |i: usize| -> Result<Option<G::T>> {
                if !want(i) {
                    return Ok(None);
                }
                let picked = match i {
                    1 => b.ap(Op::Where, &[x[0], gy, &z])?,
                    _ => b.ap(Op::Where, &[x[0], &z, gy])?,
                };
                Ok(Some(sum_to(g, &picked, &shape(i))?))
            };
            out.extend([None, side(1)?, side(2)?]);
        }
        Op::Cat { axis } => {
            let mut start = 0;
            for i in 0..x.len() {
                let s = shape(i);
                let specs = g
                    .meta(gy)
                    .shape
                    .dims()
                    .iter()
                    .enumerate()
                    .map(|(d, &n)| match d == *axis {
                        true => SliceSpec {
                            start,
                            len: s.dims()[d],
                            step: 1,
                        },
                        false => SliceSpec {
                            start: 0,
                            len: n,
                            step: 1,
                        },
                    })
                    .collect();
                start += s.dims()[*axis];
                out.push(
                    want(i)
                        .then(|| b.ap(Op::Slice { specs }, &[gy]))
                        .transpose()?,
                );
            }
        }
        Op::IndexSelect { axis } => {
            let gx = || -> Result<G::T> {
                let z = b.zeros(&shape(0), g.meta(x[0]).dtype)?;
                b.ap(Op::IndexAdd { axis: *axis }, &[&z, x[1], gy])
            };
            out.extend([want(0).then(gx).transpose()?, None]);
        }
        Op::Gather { axis } => {
            let gx = || -> Result<G::T> {
                let z = b.zeros(&shape(0), g.meta(x[0]).dtype)?;
                b.ap(Op::ScatterAdd { axis: *axis }, &[&z, x[1], gy])
            };
            out.extend([want(0).then(gx).transpose()?, None]);
        }
        Op::IndexAdd { axis } => {
            out.extend([
                want(0).then(|| gy.clone()),
                None,
                want(2)
                    .then(|| b.ap(Op::IndexSelect { axis: *axis }, &[gy, x[1]]))
                    .transpose()?,
            ]);
        }
        Op::ScatterAdd { axis } => {
            out.extend([
                want(0).then(|| gy.clone()),
                None,
                want(2)
                    .then(|| b.ap(Op::Gather { axis: *axis }, &[gy, x[1]]))
                    .transpose()?,
            ]);
        }
        Op::SliceAssign { specs } => {
            let gx = || -> Result<G::T> {
                let z = b.zeros(&shape(1), g.meta(x[1]).dtype)?;
                let specs = specs.clone();
                b.ap(Op::SliceAssign { specs }, &[gy, &z])
            };
            let gv = || {
                let specs = specs.clone();
                b.ap(Op::Slice { specs }, &[gy])
            };
            out.extend([want(0).then(gx).transpose()?, want(1).then(gv).transpose()?]);
        }
    }
    Ok(out)
}
