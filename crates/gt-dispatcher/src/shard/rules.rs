//! Placement propagation: given an op, its input metas and where its inputs live, decide how to
//! run it — on every part at once (a [`Plan`]: the layout each input must be brought to, the
//! per-part op, the output layout) or on one worker. One exhaustive `match` on [`Op`]; ops
//! without a rule run on one worker after gathering their inputs (correct, slower).
//!
//! | op kind | input layouts | runs as | output |
//! |---|---|---|---|
//! | elementwise | a shard whose axis is not broadcast | per shard, others sliced or replicated | shard |
//! | neg, `x*c`, `x/c`, `a±b` | partial sums | per part (linear) | partial |
//! | matmul | lhs rows sharded | per shard, rhs replicated (data parallel) | shard(rows) |
//! | matmul | rhs columns sharded | per shard, lhs replicated (tensor parallel) | shard(cols) |
//! | matmul | contraction dim sharded | per shard on both | partial → all-reduce on use |
//! | matmul | batch dim sharded | per shard | shard(batch) |
//! | sum/mean | reduced axis sharded | per shard (mean divides by the full count) | partial |
//! | max/min | reduced axis sharded | per shard, then combined | replicate |
//! | reduce, argmax/argmin | other axis sharded | per shard | shard (axis renumbered) |
//! | reshape, permute, expand, slice | shard axis kept or moved | per shard | shard |
//! | cat, index_select | shard axis not the op's axis | per shard | shard |
//! | anything | only replicas | per replica | replicate |

use super::placement::{Dist, Layout};
use gt_core::{Shape, WorkerId};
use gt_ops::{BinaryOp, Meta, Op, ReduceOp, SliceSpec, UnaryOp};

/// Where one input of an op lives.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// On one worker.
    On(WorkerId),
    /// Spread over several.
    Dist(&'a Dist),
}

/// How to run an op on every part of a distribution at once.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The participating workers, in part order.
    pub workers: Vec<WorkerId>,
    /// The layout each input must have on `workers` before the op runs.
    pub inputs: Vec<Layout>,
    /// The op each part runs.
    pub ops: Vec<Op>,
    /// An op each part applies to its result afterwards (mean's division by the full count).
    pub post: Option<Op>,
    /// Combine the per-part results with this op into a replicated result (max/min over a
    /// sharded axis).
    pub combine: Option<BinaryOp>,
    /// The output's layout.
    pub out: Layout,
}

/// What to do with an op that has a distributed input.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Run on every part.
    Parts(Box<Plan>),
    /// Bring every input in full onto `worker` and run once there; `gathered` is false when
    /// that needed no shard to move (replicas are used where they are).
    One { worker: WorkerId, gathered: bool },
}

/// Decides how to run `op` on inputs `ins` (at least one distributed) with metas `metas`,
/// producing `out`.
pub fn decide(op: &Op, metas: &[&Meta], ins: &[Input], out: &Meta) -> Decision {
    let lead = ins
        .iter()
        .find_map(|i| match i {
            Input::Dist(d) => Some(*d),
            Input::On(_) => None,
        })
        .expect("decide needs a distributed input");
    let ctx = Ctx {
        workers: &lead.workers,
        metas,
        ins,
        out,
    };
    let layouts: Vec<Option<&Layout>> = (0..ins.len()).map(|i| ctx.layout(i)).collect();
    let spread = layouts
        .iter()
        .any(|l| matches!(l, Some(Layout::Shard { .. } | Layout::Partial)));
    if !spread {
        // Only replicas (and perhaps single-worker inputs): a single-worker input decides where
        // it runs; with replicas alone every replica computes its own copy.
        return match ins.iter().zip(&layouts).find(|(_, l)| l.is_none()) {
            Some((i, _)) => Decision::One {
                worker: home_of(i),
                gathered: false,
            },
            None => ctx.uniform(op, Layout::Replicate),
        };
    }
    let plan = match op {
        Op::Full { .. } | Op::Arange { .. } | Op::Random { .. } => None,
        Op::Unary(u) => ctx.elementwise(op, *u == UnaryOp::Neg, false),
        Op::BinaryScalar {
            op: b, scalar_left, ..
        } => {
            let linear = *b == BinaryOp::Mul || (*b == BinaryOp::Div && !scalar_left);
            ctx.elementwise(op, linear, false)
        }
        Op::Binary(b) => ctx.elementwise(op, false, matches!(b, BinaryOp::Add | BinaryOp::Sub)),
        Op::Cast { .. } | Op::CompareScalar { .. } | Op::Compare(_) | Op::Where => {
            ctx.elementwise(op, false, false)
        }
        Op::MatMul => ctx.matmul(op),
        Op::Reduce {
            op: r,
            axes,
            keepdim,
        } => ctx.reduce(op, *r, axes, *keepdim),
        Op::ArgReduce { axis, keepdim, .. } => match layouts[0] {
            Some(Layout::Shard { axis: a, extents }) if a != axis => {
                let oa = if *keepdim || a < axis { *a } else { a - 1 };
                Some(ctx.plan(op, vec![layouts[0].unwrap().clone()], shard(oa, extents)))
            }
            _ => None,
        },
        Op::Reshape { shape } => ctx.reshape(shape),
        Op::Permute { perm } => match layouts[0] {
            Some(Layout::Shard { axis, extents }) => {
                let b = perm.iter().position(|p| p == axis).expect("a permutation");
                Some(ctx.plan(op, vec![layouts[0].unwrap().clone()], shard(b, extents)))
            }
            Some(Layout::Partial) => Some(ctx.uniform_plan(op, Layout::Partial)),
            _ => None,
        },
        Op::Slice { specs } => ctx.slice(specs),
        Op::Expand { .. } => ctx.expand(),
        Op::Cat { axis } => match layouts.iter().flatten().next() {
            Some(l @ Layout::Shard { axis: a, .. }) if a != axis => {
                Some(ctx.plan(op, vec![(*l).clone(); ins.len()], (*l).clone()))
            }
            _ => None,
        },
        Op::IndexSelect { axis } => match layouts[0] {
            Some(l @ Layout::Shard { axis: a, .. }) if a != axis => {
                Some(ctx.plan(op, vec![l.clone(), Layout::Replicate], l.clone()))
            }
            _ => None,
        },
        Op::Gather { .. }
        | Op::IndexAdd { .. }
        | Op::ScatterAdd { .. }
        | Op::SliceAssign { .. } => None,
    };
    plan.map(|p| Decision::Parts(Box::new(p)))
        .unwrap_or(Decision::One {
            worker: lead.workers[0],
            gathered: true,
        })
}

fn home_of(i: &Input) -> WorkerId {
    match i {
        Input::On(w) => *w,
        Input::Dist(d) => d.workers[0],
    }
}

fn shard(axis: usize, extents: &[usize]) -> Layout {
    Layout::Shard {
        axis,
        extents: extents.to_vec(),
    }
}

struct Ctx<'a> {
    workers: &'a [WorkerId],
    metas: &'a [&'a Meta],
    ins: &'a [Input<'a>],
    out: &'a Meta,
}

impl Ctx<'_> {
    /// Input `i`'s layout if it is distributed over the lead's workers (others count as
    /// single-worker inputs and are moved).
    fn layout(&self, i: usize) -> Option<&Layout> {
        match self.ins[i] {
            Input::Dist(d) if d.workers == self.workers => Some(&d.layout),
            _ => None,
        }
    }

    fn dims(&self, i: usize) -> &[usize] {
        self.metas[i].shape.dims()
    }

    /// A plan running `op` unchanged on every part (shape attributes adjusted per part).
    fn plan(&self, op: &Op, inputs: Vec<Layout>, out: Layout) -> Plan {
        let ops = (0..self.workers.len())
            .map(|j| part_op(op, &out, &self.out.shape, j))
            .collect();
        Plan {
            workers: self.workers.to_vec(),
            inputs,
            ops,
            post: None,
            combine: None,
            out,
        }
    }

    fn uniform_plan(&self, op: &Op, l: Layout) -> Plan {
        self.plan(op, vec![l.clone(); self.ins.len()], l)
    }

    fn uniform(&self, op: &Op, l: Layout) -> Decision {
        Decision::Parts(Box::new(self.uniform_plan(op, l)))
    }

    fn elementwise(&self, op: &Op, unary_linear: bool, binary_linear: bool) -> Option<Plan> {
        let n_in = self.ins.len();
        let partial = |i: usize| self.layout(i) == Some(&Layout::Partial);
        if unary_linear && partial(0) {
            return Some(self.uniform_plan(op, Layout::Partial));
        }
        let same_shape = (0..n_in).all(|i| self.metas[i].shape == self.out.shape);
        if binary_linear && (0..n_in).all(partial) && same_shape {
            return Some(self.uniform_plan(op, Layout::Partial));
        }
        let ro = self.out.shape.rank();
        let od = self.out.shape.dims();
        // The first shard whose axis survives broadcasting sets the output's shard axis.
        let lead = (0..n_in).find_map(|i| match self.layout(i) {
            Some(Layout::Shard { axis, extents }) => {
                let oa = axis + ro - self.dims(i).len();
                (self.dims(i)[*axis] == od[oa]).then_some((oa, extents))
            }
            _ => None,
        });
        let Some((oa, ext)) = lead else {
            return Some(self.uniform_plan(op, Layout::Replicate));
        };
        let inputs = (0..n_in)
            .map(|i| {
                let r = self.dims(i).len();
                match (oa + r).checked_sub(ro) {
                    Some(ia) if self.dims(i)[ia] == od[oa] => shard(ia, ext),
                    _ => Layout::Replicate,
                }
            })
            .collect();
        Some(self.plan(op, inputs, shard(oa, ext)))
    }

    fn matmul(&self, op: &Op) -> Option<Plan> {
        let (ra, rb) = (self.dims(0).len(), self.dims(1).len());
        let ro = self.out.shape.rank();
        if ra < 2 || rb < 2 {
            return None;
        }
        let (la, lb) = (self.layout(0), self.layout(1));
        let r = Layout::Replicate;
        match (la, lb) {
            // Data parallel: rows of lhs.
            (Some(Layout::Shard { axis, extents }), _) if *axis == ra - 2 => {
                Some(self.plan(op, vec![shard(*axis, extents), r], shard(ro - 2, extents)))
            }
            // Tensor parallel: columns of rhs.
            (_, Some(Layout::Shard { axis, extents })) if *axis == rb - 1 => {
                Some(self.plan(op, vec![r, shard(*axis, extents)], shard(ro - 1, extents)))
            }
            // Contraction dimension: partial sums.
            (Some(Layout::Shard { axis, extents }), _) if *axis == ra - 1 => Some(self.plan(
                op,
                vec![shard(ra - 1, extents), shard(rb - 2, extents)],
                Layout::Partial,
            )),
            (_, Some(Layout::Shard { axis, extents })) if *axis == rb - 2 => Some(self.plan(
                op,
                vec![shard(ra - 1, extents), shard(rb - 2, extents)],
                Layout::Partial,
            )),
            // A batch dimension (of an operand that is not broadcast to the output's rank).
            (Some(Layout::Shard { axis, extents }), _) if ra == ro => {
                let other = self.batch_partner(1, *axis);
                Some(self.plan(
                    op,
                    vec![shard(*axis, extents), other(extents)],
                    shard(*axis, extents),
                ))
            }
            (_, Some(Layout::Shard { axis, extents })) if rb == ro => {
                let other = self.batch_partner(0, *axis);
                Some(self.plan(
                    op,
                    vec![other(extents), shard(*axis, extents)],
                    shard(*axis, extents),
                ))
            }
            // Linear in each operand: partial sums stay partial.
            (Some(Layout::Partial), None | Some(Layout::Replicate)) => {
                Some(self.plan(op, vec![Layout::Partial, r], Layout::Partial))
            }
            (None | Some(Layout::Replicate), Some(Layout::Partial)) => {
                Some(self.plan(op, vec![r, Layout::Partial], Layout::Partial))
            }
            _ => None,
        }
    }

    /// The layout operand `i` needs when the other operand is sharded on output batch axis `oa`.
    fn batch_partner(&self, i: usize, oa: usize) -> impl Fn(&[usize]) -> Layout + '_ {
        let ro = self.out.shape.rank();
        let r = self.dims(i).len();
        let od = self.out.shape.dims()[oa];
        move |ext: &[usize]| match (oa + r).checked_sub(ro) {
            Some(ia) if ia + 2 < r && self.dims(i)[ia] == od => shard(ia, ext),
            _ => Layout::Replicate,
        }
    }

    fn reduce(&self, op: &Op, r: ReduceOp, axes: &[usize], keepdim: bool) -> Option<Plan> {
        let reduced = |i: usize| axes.is_empty() || axes.contains(&i);
        match self.layout(0)? {
            Layout::Shard { axis, extents } if !reduced(*axis) => {
                let before = (0..*axis).filter(|&i| reduced(i)).count();
                let oa = if keepdim { *axis } else { axis - before };
                Some(self.plan(op, vec![shard(*axis, extents)], shard(oa, extents)))
            }
            l @ Layout::Shard { .. } => {
                let input = vec![l.clone()];
                match r {
                    ReduceOp::Sum => Some(self.plan(op, input, Layout::Partial)),
                    ReduceOp::Mean => {
                        let count: usize = self
                            .dims(0)
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| reduced(*i))
                            .map(|(_, d)| d)
                            .product();
                        let sum = Op::Reduce {
                            op: ReduceOp::Sum,
                            axes: axes.into(),
                            keepdim,
                        };
                        let mut p = self.plan(&sum, input, Layout::Partial);
                        p.post = Some(Op::BinaryScalar {
                            op: BinaryOp::Div,
                            scalar: count as f64,
                            scalar_left: false,
                        });
                        Some(p)
                    }
                    ReduceOp::Max | ReduceOp::Min => {
                        let mut p = self.plan(op, input, Layout::Replicate);
                        p.combine = Some(match r {
                            ReduceOp::Max => BinaryOp::Maximum,
                            _ => BinaryOp::Minimum,
                        });
                        Some(p)
                    }
                }
            }
            Layout::Partial if matches!(r, ReduceOp::Sum | ReduceOp::Mean) => {
                Some(self.uniform_plan(op, Layout::Partial))
            }
            Layout::Partial | Layout::Replicate => Some(self.uniform_plan(op, Layout::Replicate)),
        }
    }

    fn reshape(&self, out: &Shape) -> Option<Plan> {
        let op = Op::Reshape { shape: out.clone() };
        let (i, o) = (self.dims(0), out.dims());
        let (axis, extents) = match self.layout(0)? {
            Layout::Shard { axis, extents } => (*axis, extents),
            Layout::Partial => return Some(self.uniform_plan(&op, Layout::Partial)),
            Layout::Replicate => return Some(self.uniform_plan(&op, Layout::Replicate)),
        };
        let pre: usize = i[..axis].iter().product();
        for b in 0..o.len() {
            if o[..b].iter().product::<usize>() != pre {
                continue;
            }
            // The shard axis is the outer part of a merged output axis: extents scale up.
            if o[b] % i[axis] == 0 {
                let k = o[b] / i[axis];
                let ext: Vec<usize> = extents.iter().map(|e| e * k).collect();
                return Some(self.plan(&op, vec![shard(axis, extents)], shard(b, &ext)));
            }
            // The shard axis splits into output axes: every extent must cover whole blocks.
            if i[axis] % o[b] == 0 {
                let j = i[axis] / o[b];
                if extents.iter().all(|e| e % j == 0) {
                    let ext: Vec<usize> = extents.iter().map(|e| e / j).collect();
                    return Some(self.plan(&op, vec![shard(axis, extents)], shard(b, &ext)));
                }
            }
        }
        None
    }

    fn slice(&self, specs: &[SliceSpec]) -> Option<Plan> {
        let op = Op::Slice {
            specs: specs.into(),
        };
        match self.layout(0)? {
            Layout::Shard { axis, extents } => {
                let s = specs[*axis];
                let whole = s.start == 0 && s.step == 1 && s.len == self.dims(0)[*axis];
                whole.then(|| self.plan(&op, vec![shard(*axis, extents)], shard(*axis, extents)))
            }
            l => Some(self.uniform_plan(&op, l.clone())),
        }
    }

    fn expand(&self) -> Option<Plan> {
        let op = Op::Expand {
            shape: self.out.shape.clone(),
        };
        match self.layout(0)? {
            Layout::Shard { axis, extents } => {
                let oa = axis + self.out.shape.rank() - self.dims(0).len();
                (self.dims(0)[*axis] == self.out.shape.dims()[oa])
                    .then(|| self.plan(&op, vec![shard(*axis, extents)], shard(oa, extents)))
            }
            l => Some(self.uniform_plan(&op, l.clone())),
        }
    }
}

/// `op` as part `j` runs it, given the output layout (shape attributes become the part's).
pub fn part_op(op: &Op, out: &Layout, out_shape: &Shape, j: usize) -> Op {
    match (op, out) {
        (Op::Reshape { .. }, _) => Op::Reshape {
            shape: out.part_shape(out_shape, j),
        },
        (Op::Expand { .. }, _) => Op::Expand {
            shape: out.part_shape(out_shape, j),
        },
        (Op::Slice { specs }, Layout::Shard { axis, extents }) => {
            let mut specs = specs.clone();
            specs[*axis] = SliceSpec {
                start: 0,
                len: extents[j],
                step: 1,
            };
            Op::Slice { specs }
        }
        (other, _) => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gt_core::DType;

    fn meta(d: &[usize]) -> Meta {
        Meta::new(d.to_vec(), DType::F32)
    }

    fn dist(l: Layout) -> Dist {
        Dist {
            layout: l,
            workers: vec![WorkerId(0), WorkerId(1)],
        }
    }

    fn run(op: Op, ins: &[(&[usize], Option<Layout>)]) -> Decision {
        let metas: Vec<Meta> = ins.iter().map(|(d, _)| meta(d)).collect();
        let refs: Vec<&Meta> = metas.iter().collect();
        let dists: Vec<Option<Dist>> = ins.iter().map(|(_, l)| l.clone().map(dist)).collect();
        let inputs: Vec<Input> = dists
            .iter()
            .map(|d| match d {
                Some(d) => Input::Dist(d),
                None => Input::On(WorkerId(0)),
            })
            .collect();
        let out = gt_ops::infer(&op, &refs).unwrap();
        decide(&op, &refs, &inputs, &out)
    }

    fn plan(d: Decision) -> Plan {
        match d {
            Decision::Parts(p) => *p,
            other => panic!("expected a per-part plan, got {other:?}"),
        }
    }

    fn sh(axis: usize, e: &[usize]) -> Layout {
        shard(axis, e)
    }

    #[test]
    fn matmul_placements() {
        let dp = plan(run(
            Op::MatMul,
            &[(&[5, 4], Some(sh(0, &[3, 2]))), (&[4, 6], None)],
        ));
        assert_eq!(dp.inputs, vec![sh(0, &[3, 2]), Layout::Replicate]);
        assert_eq!(dp.out, sh(0, &[3, 2]));
        let tp = plan(run(
            Op::MatMul,
            &[(&[5, 4], None), (&[4, 6], Some(sh(1, &[3, 3])))],
        ));
        assert_eq!(tp.out, sh(1, &[3, 3]));
        let k = plan(run(
            Op::MatMul,
            &[(&[5, 4], Some(sh(1, &[2, 2]))), (&[4, 6], None)],
        ));
        assert_eq!(k.inputs, vec![sh(1, &[2, 2]), sh(0, &[2, 2])]);
        assert_eq!(k.out, Layout::Partial);
        let p = plan(run(
            Op::MatMul,
            &[(&[5, 4], Some(Layout::Partial)), (&[4, 6], None)],
        ));
        assert_eq!(p.out, Layout::Partial);
    }

    #[test]
    fn reductions_and_views() {
        let sum = |axes: &[usize]| Op::Reduce {
            op: ReduceOp::Sum,
            axes: axes.into(),
            keepdim: false,
        };
        let s = plan(run(sum(&[0]), &[(&[5, 4], Some(sh(0, &[3, 2])))]));
        assert_eq!(s.out, Layout::Partial);
        let s = plan(run(sum(&[0]), &[(&[5, 4], Some(sh(1, &[2, 2])))]));
        assert_eq!(s.out, sh(0, &[2, 2]));
        let mean = Op::Reduce {
            op: ReduceOp::Mean,
            axes: [0].into_iter().collect(),
            keepdim: false,
        };
        let m = plan(run(mean, &[(&[5, 4], Some(sh(0, &[3, 2])))]));
        assert!(matches!(
            m.ops[0],
            Op::Reduce {
                op: ReduceOp::Sum,
                ..
            }
        ));
        assert!(matches!(m.post, Some(Op::BinaryScalar { scalar, .. }) if scalar == 5.0));
        let max = Op::Reduce {
            op: ReduceOp::Max,
            axes: Default::default(),
            keepdim: false,
        };
        let x = plan(run(max, &[(&[5, 4], Some(sh(0, &[3, 2])))]));
        assert_eq!(
            (x.combine, x.out),
            (Some(BinaryOp::Maximum), Layout::Replicate)
        );
        let merge = Op::Reshape {
            shape: Shape::new([20, 2]),
        };
        let r = plan(run(merge, &[(&[5, 4, 2], Some(sh(0, &[3, 2])))]));
        assert_eq!(r.out, sh(0, &[12, 8]));
        assert_eq!(
            r.ops[1],
            Op::Reshape {
                shape: Shape::new([8, 2])
            }
        );
        let split = Op::Reshape {
            shape: Shape::new([3, 2, 4]),
        };
        let r = plan(run(split, &[(&[6, 4], Some(sh(0, &[4, 2])))]));
        assert_eq!(r.out, sh(0, &[2, 1]));
        let uneven = Op::Reshape {
            shape: Shape::new([2, 3, 4]),
        };
        let g = run(uneven, &[(&[6, 4], Some(sh(0, &[4, 2])))]);
        assert!(matches!(g, Decision::One { gathered: true, .. }), "{g:?}");
    }

    #[test]
    fn elementwise_broadcast_and_fallbacks() {
        let add = Op::Binary(BinaryOp::Add);
        let p = plan(run(
            add.clone(),
            &[(&[5, 4], Some(sh(0, &[3, 2]))), (&[4], None)],
        ));
        assert_eq!(p.inputs, vec![sh(0, &[3, 2]), Layout::Replicate]);
        let p = plan(run(
            add.clone(),
            &[(&[4], None), (&[5, 4], Some(sh(1, &[2, 2])))],
        ));
        assert_eq!(p.inputs, vec![sh(0, &[2, 2]), sh(1, &[2, 2])]);
        let pp = plan(run(
            add,
            &[(&[5], Some(Layout::Partial)), (&[5], Some(Layout::Partial))],
        ));
        assert_eq!(pp.out, Layout::Partial);
        let g = Op::Gather { axis: 0 };
        let ins: [(&[usize], Option<Layout>); 2] =
            [(&[4, 2], Some(sh(0, &[2, 2]))), (&[4, 2], None)];
        let metas: Vec<Meta> = ins.iter().map(|(d, _)| meta(d)).collect();
        let refs: Vec<&Meta> = metas.iter().collect();
        let d = dist(sh(0, &[2, 2]));
        let inputs = [Input::Dist(&d), Input::On(WorkerId(1))];
        let out = Meta::new([4, 2], DType::F32);
        assert_eq!(
            decide(&g, &refs, &inputs, &out),
            Decision::One {
                worker: WorkerId(0),
                gathered: true
            }
        );
        let rep = dist(Layout::Replicate);
        let inputs = [Input::Dist(&rep), Input::On(WorkerId(1))];
        assert_eq!(
            decide(&g, &refs, &inputs, &out),
            Decision::One {
                worker: WorkerId(1),
                gathered: false
            }
        );
    }
}
