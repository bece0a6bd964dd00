//! Reductions (sum, mean, max, min) over any sorted set of axes, with or without `keepdim`, and
//! argmax/argmin over one axis.
//!
//! The input's axes are split into kept and reduced groups (each coalesced). Every output
//! element folds its reduced elements in row-major order of the reduced axes, one at a time —
//! sums of f32 accumulate in f64 — so results do not depend on threads or on which of the two
//! traversals is used:
//! - reduced axes innermost in memory: each output folds its own (often unit-stride) elements;
//! - kept axes innermost: an accumulator row per output chunk is updated for each reduced
//!   position, streaming through memory in order.

use super::layout::{coalesce, for_each_run, Dims, Layout, Strides};
use super::{not_float, CpuEngine, CpuTensor, Elem};
use gt_core::{DType, Result};
use gt_ops::scalar::{max_nan, min_nan};
use gt_ops::{ArgOp, Meta, ReduceOp};

/// Shortest innermost kept run for which the accumulator-row traversal pays off.
const MIN_ACC_RUN: usize = 8;
/// Least kept elements per parallel task of the accumulator-row traversal: every task streams
/// over all reduced positions, so narrow tasks would read each cache line many times.
const MIN_ACC_CHUNK: usize = 4096;

/// The iteration plan of one reduction.
struct Plan {
    kd: Dims,
    ks: [Strides; 1],
    rd: Dims,
    rs: [Strides; 1],
    offset: usize,
    out_n: usize,
    red_n: usize,
}

impl Plan {
    fn kept_inner_stride(&self) -> isize {
        self.ks[0][self.kd.len() - 1]
    }
    fn red_inner_stride(&self) -> isize {
        self.rs[0][self.rd.len() - 1]
    }
    /// Whether to traverse with accumulator rows (kept axes innermost in memory).
    fn use_acc_rows(&self) -> bool {
        let (k, r) = (
            self.kept_inner_stride().abs(),
            self.red_inner_stride().abs(),
        );
        self.out_n > 1 && self.red_n > 1 && k < r && self.kd[self.kd.len() - 1] >= MIN_ACC_RUN
    }
}

/// `op` of `x` over `axes` (empty = all), shaped as `out`.
pub(crate) fn reduce(
    eng: &CpuEngine,
    op: ReduceOp,
    axes: &[usize],
    x: &CpuTensor,
    out: &Meta,
) -> Result<CpuTensor> {
    match x.dtype() {
        DType::F32 => Ok(reduce_t::<f32>(eng, op, axes, x, out)),
        DType::F64 => Ok(reduce_t::<f64>(eng, op, axes, x, out)),
        d @ (DType::I64 | DType::Bool) => Err(not_float(op.name(), d)),
    }
}

impl Plan {
    /// The plan reducing the axes of `l` for which `reduced` holds.
    fn new(l: &Layout, reduced: impl Fn(usize) -> bool) -> Plan {
        let (mut kd, mut ks, mut rd, mut rs) =
            (Dims::new(), Strides::new(), Dims::new(), Strides::new());
        for (i, (&d, &s)) in l.shape.dims().iter().zip(&l.strides).enumerate() {
            if reduced(i) {
                rd.push(d);
                rs.push(s);
            } else {
                kd.push(d);
                ks.push(s);
            }
        }
        let (out_n, red_n) = (kd.iter().product::<usize>(), rd.iter().product::<usize>());
        let (kd, ks) = coalesce(&kd, [&ks]);
        let (rd, rs) = coalesce(&rd, [&rs]);
        Plan {
            kd,
            ks,
            rd,
            rs,
            offset: l.offset,
            out_n,
            red_n,
        }
    }
}

fn reduce_t<T: Elem>(
    eng: &CpuEngine,
    op: ReduceOp,
    axes: &[usize],
    x: &CpuTensor,
    out: &Meta,
) -> CpuTensor {
    let p = Plan::new(x.layout(), |i| axes.is_empty() || axes.contains(&i));
    let (out_n, red_n) = (p.out_n, p.red_n);
    let data = x.data::<T>();
    eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
        if o.is_empty() {
            return;
        }
        if red_n == 0 {
            o.fill(match op {
                ReduceOp::Sum => T::ZERO,
                ReduceOp::Mean | ReduceOp::Max | ReduceOp::Min => T::from_f64(f64::NAN),
            });
            return;
        }
        let work = out_n.saturating_mul(red_n);
        match op {
            ReduceOp::Sum => sum(eng, &p, data, o, T::from_f64),
            ReduceOp::Mean => {
                let n = red_n as f64;
                sum(eng, &p, data, o, |acc| T::from_f64(acc / n))
            }
            ReduceOp::Max if p.use_acc_rows() => {
                fold_rows(eng, &p, data, o, work, T::NEG_INF, &max_nan::<T>)
            }
            ReduceOp::Max => fold_each(eng, &p, data, o, work, T::NEG_INF, &max_nan::<T>, &|a| a),
            ReduceOp::Min if p.use_acc_rows() => fold_rows(
                eng,
                &p,
                data,
                o,
                work,
                T::from_f64(f64::INFINITY),
                &min_nan::<T>,
            ),
            ReduceOp::Min => {
                let inf = T::from_f64(f64::INFINITY);
                fold_each(eng, &p, data, o, work, inf, &min_nan::<T>, &|a| a)
            }
        }
    })
}

/// Sums in f64 (from -0.0, the exact identity of addition) and writes `fin(sum)`.
fn sum<T: Elem>(
    eng: &CpuEngine,
    p: &Plan,
    data: &[T],
    out: &mut [T],
    fin: impl Fn(f64) -> T + Sync + Send,
) {
    let work = p.out_n.saturating_mul(p.red_n);
    let add = |acc: f64, v: T| acc + v.to_f64();
    if !p.use_acc_rows() {
        fold_each(eng, p, data, out, work, -0.0, &add, &fin);
        return;
    }
    let mut scratch = eng.pool().alloc(p.out_n * 8);
    let acc = &mut scratch.as_mut_slice::<f64>()[..p.out_n];
    fold_rows(eng, p, data, acc, work, -0.0, &add);
    let acc: &[f64] = acc;
    eng.for_chunks(out, p.out_n, |start, o| {
        let end = start + o.len();
        for (d, &a) in o.iter_mut().zip(&acc[start..end]) {
            *d = fin(a);
        }
    });
}

/// Each output folds its own reduced elements (reduced axes innermost in memory).
#[allow(clippy::too_many_arguments)]
fn fold_each<T: Copy + Sync, A: Copy + Sync, D: Send>(
    eng: &CpuEngine,
    p: &Plan,
    data: &[T],
    out: &mut [D],
    work: usize,
    init: A,
    comb: &(impl Fn(A, T) -> A + Sync),
    fin: &(impl Fn(A) -> D + Sync),
) {
    let (kl, rl) = (p.kept_inner_stride(), p.red_inner_stride());
    eng.for_chunks(out, work, |start, o| {
        for_each_run(
            &p.kd,
            &p.ks,
            [p.offset],
            start,
            o.len(),
            |pos, [off], run| {
                for (i, d) in o[pos..pos + run].iter_mut().enumerate() {
                    let base = (off as isize + i as isize * kl) as usize;
                    let mut acc = init;
                    for_each_run(&p.rd, &p.rs, [base], 0, p.red_n, |_, [ro], rrun| {
                        if rl == 1 {
                            for &v in &data[ro..ro + rrun] {
                                acc = comb(acc, v);
                            }
                        } else {
                            for j in 0..rrun {
                                acc = comb(acc, data[(ro as isize + j as isize * rl) as usize]);
                            }
                        }
                    });
                    *d = fin(acc);
                }
            },
        )
    });
}

/// Accumulator rows: for each reduced position in order, every output in the chunk takes in its
/// element (kept axes innermost in memory).
fn fold_rows<T: Copy + Sync, A: Copy + Send + Sync>(
    eng: &CpuEngine,
    p: &Plan,
    data: &[T],
    acc: &mut [A],
    work: usize,
    init: A,
    comb: &(impl Fn(A, T) -> A + Sync),
) {
    let (kl, rl) = (p.kept_inner_stride(), p.red_inner_stride());
    eng.for_chunks_aligned(acc, work, MIN_ACC_CHUNK, |start, a| {
        a.fill(init);
        for_each_run(&p.rd, &p.rs, [p.offset], 0, p.red_n, |_, [ro], rrun| {
            for j in 0..rrun {
                let base = (ro as isize + j as isize * rl) as usize;
                for_each_run(&p.kd, &p.ks, [base], start, a.len(), |pos, [ko], run| {
                    let a = &mut a[pos..pos + run];
                    if kl == 1 {
                        for (x, &v) in a.iter_mut().zip(&data[ko..ko + run]) {
                            *x = comb(*x, v);
                        }
                    } else {
                        for (i, x) in a.iter_mut().enumerate() {
                            *x = comb(*x, data[(ko as isize + i as isize * kl) as usize]);
                        }
                    }
                });
            }
        });
    });
}

/// Element types argmax/argmin compare (NaN counts as the extreme).
trait ArgElem: Copy + PartialOrd + Default + Send + Sync + bytemuck::Pod {
    fn nan(self) -> bool;
}
impl ArgElem for f32 {
    #[inline(always)]
    fn nan(self) -> bool {
        self.is_nan()
    }
}
impl ArgElem for f64 {
    #[inline(always)]
    fn nan(self) -> bool {
        self.is_nan()
    }
}
impl ArgElem for i64 {
    #[inline(always)]
    fn nan(self) -> bool {
        false
    }
}
impl ArgElem for u8 {
    #[inline(always)]
    fn nan(self) -> bool {
        false
    }
}

/// Index (int64) of the largest (`ArgMax`) or smallest element along `axis`: the first one on
/// ties, and the first NaN if there is one — exactly the reference's rule.
pub(crate) fn arg_reduce(
    eng: &CpuEngine,
    op: ArgOp,
    axis: usize,
    x: &CpuTensor,
    out: &Meta,
) -> CpuTensor {
    match (x.dtype(), op) {
        (DType::F32, ArgOp::ArgMax) => arg_t::<f32, true>(eng, axis, x, out),
        (DType::F32, ArgOp::ArgMin) => arg_t::<f32, false>(eng, axis, x, out),
        (DType::F64, ArgOp::ArgMax) => arg_t::<f64, true>(eng, axis, x, out),
        (DType::F64, ArgOp::ArgMin) => arg_t::<f64, false>(eng, axis, x, out),
        (DType::I64, ArgOp::ArgMax) => arg_t::<i64, true>(eng, axis, x, out),
        (DType::I64, ArgOp::ArgMin) => arg_t::<i64, false>(eng, axis, x, out),
        (DType::Bool, ArgOp::ArgMax) => arg_t::<u8, true>(eng, axis, x, out),
        (DType::Bool, ArgOp::ArgMin) => arg_t::<u8, false>(eng, axis, x, out),
    }
}

/// The running state of one arg reduction: (best index, best value, elements seen). Both
/// traversals feed each output its elements in axis order, so "elements seen" is the index.
type ArgAcc<T> = (i64, T, i64);

fn arg_t<T: ArgElem, const MAX: bool>(
    eng: &CpuEngine,
    axis: usize,
    x: &CpuTensor,
    out: &Meta,
) -> CpuTensor {
    let p = Plan::new(x.layout(), |i| i == axis);
    let data = x.data::<T>();
    let work = p.out_n.saturating_mul(p.red_n);
    let init: ArgAcc<T> = (0, T::default(), 0);
    let comb = |(bi, bv, n): ArgAcc<T>, v: T| -> ArgAcc<T> {
        let better = if MAX { v > bv } else { v < bv };
        if n == 0 || (!bv.nan() && (better || v.nan())) {
            (n, v, n + 1)
        } else {
            (bi, bv, n + 1)
        }
    };
    eng.new_tensor::<i64>(&out.shape, out.dtype, |o| {
        if o.is_empty() {
            return;
        }
        if !p.use_acc_rows() {
            fold_each(eng, &p, data, o, work, init, &comb, &|a: ArgAcc<T>| a.0);
            return;
        }
        let mut acc = vec![init; p.out_n];
        fold_rows(eng, &p, data, &mut acc, work, init, &comb);
        for (d, a) in o.iter_mut().zip(&acc) {
            *d = a.0;
        }
    })
}
