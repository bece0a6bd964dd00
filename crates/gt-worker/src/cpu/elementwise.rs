//! Elementwise kernels: unary, binary with NumPy broadcasting, tensor-scalar, cast and copy.
//!
//! Two generic drivers do all the walking: [`map1`] (one strided input) and [`map2`] (two
//! broadcast inputs), each writing a fresh contiguous output. They take a fast path of plain
//! slice loops (which auto-vectorize) when inputs are contiguous, and otherwise iterate the
//! coalesced dimensions in runs along the innermost one with unit-stride, broadcast (stride 0)
//! or general strided inner loops. The op is dispatched outside the loop; inside it a closure
//! calls `gt_ops::scalar` with a constant op, so the `match` folds away.

use super::layout::{coalesce, for_each_run, Layout};
use super::{not_float, CpuEngine, CpuTensor, Elem};
use crate::compile::loop_conv::Conv;
use bytemuck::Pod;
use gt_core::{DType, Result, Shape};
use gt_ops::scalar::{binary as bin, unary as un};
use gt_ops::{BinaryOp, Meta, UnaryOp};

/// Side of the square tiles in which transposed inputs are walked.
const TILE: usize = 32;

/// Writes `f(x)` for every element of the strided `src` (seen through `l`) into `out`, in
/// row-major order. `out.len()` must equal the layout's element count; `cost` weighs one
/// element's work for the decision to go parallel.
pub(crate) fn map1<S, D>(
    eng: &CpuEngine,
    src: &[S],
    l: &Layout,
    out: &mut [D],
    cost: usize,
    f: impl Fn(S) -> D + Sync + Send,
) where
    S: Copy + Sync,
    D: Copy + Send,
{
    let n = out.len();
    if n == 0 {
        return;
    }
    let work = n.saturating_mul(cost);
    if l.is_contiguous() {
        let src = &src[l.offset..l.offset + n];
        eng.for_chunks(out, work, |start, o| {
            let end = start + o.len();
            for (d, &s) in o.iter_mut().zip(&src[start..end]) {
                *d = f(s);
            }
        });
        return;
    }
    let (dims, st) = coalesce(l.shape.dims(), [&l.strides]);
    let rank = dims.len();
    let inner = st[0][rank - 1];
    if rank >= 2 && st[0][rank - 2] == 1 && inner > 1 {
        // A transpose: unit stride on the rows. Walk square tiles so each cache line read is
        // used for a whole tile column instead of one element.
        let cols = dims[rank - 1];
        eng.for_chunks_aligned(out, work, cols * TILE, |start, o| {
            map1_tiled(src, &dims, &st[0], l.offset, start, o, &f)
        });
        return;
    }
    eng.for_chunks(out, work, |start, o| {
        for_each_run(&dims, &st, [l.offset], start, o.len(), |pos, [off], run| {
            let o = &mut o[pos..pos + run];
            match inner {
                0 => o.fill(f(src[off])),
                1 => {
                    for (d, &s) in o.iter_mut().zip(&src[off..off + run]) {
                        *d = f(s);
                    }
                }
                s => {
                    let s = s as usize;
                    for (i, d) in o.iter_mut().enumerate() {
                        *d = f(src[off + i * s]);
                    }
                }
            }
        })
    });
}

/// The rows `start / cols ..` of a space whose last two dims are `[rows, cols]` with strides
/// `[1, sc]` (a transpose), walked in `TILE`-square tiles. `start` and `out.len()` are
/// multiples of `cols`.
fn map1_tiled<S: Copy, D>(
    src: &[S],
    dims: &[usize],
    st: &[isize],
    offset: usize,
    start: usize,
    out: &mut [D],
    f: &impl Fn(S) -> D,
) {
    let rank = dims.len();
    let (nrows, cols) = (dims[rank - 2], dims[rank - 1]);
    let sc = st[rank - 1];
    let first = start / cols;
    let rows = out.len() / cols;
    let mut g = 0;
    while g < rows {
        let (plane, r0) = ((first + g) / nrows, (first + g) % nrows);
        let nr = TILE.min(nrows - r0).min(rows - g);
        let mut base = offset as isize + r0 as isize;
        let mut rem = plane;
        for i in (0..rank - 2).rev() {
            base += (rem % dims[i]) as isize * st[i];
            rem /= dims[i];
        }
        for c0 in (0..cols).step_by(TILE) {
            let nc = TILE.min(cols - c0);
            for r in 0..nr {
                let o = &mut out[(g + r) * cols + c0..][..nc];
                let s0 = base + r as isize + c0 as isize * sc;
                for (j, d) in o.iter_mut().enumerate() {
                    *d = f(src[(s0 + j as isize * sc) as usize]);
                }
            }
        }
        g += nr;
    }
}

/// Writes `f(a, b)` for every element of `shape` (the broadcast of both layouts) into `out`;
/// `cost` weighs one element's work for the decision to go parallel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn map2<T: Copy + Sync, D: Copy + Send>(
    eng: &CpuEngine,
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    shape: &Shape,
    out: &mut [D],
    cost: usize,
    f: impl Fn(T, T) -> D + Sync + Send,
) {
    let n = out.len();
    if n == 0 {
        return;
    }
    let work = n.saturating_mul(cost);
    if la.shape == *shape && lb.shape == *shape && la.is_contiguous() && lb.is_contiguous() {
        let a = &a[la.offset..la.offset + n];
        let b = &b[lb.offset..lb.offset + n];
        eng.for_chunks(out, work, |start, o| {
            let end = start + o.len();
            for ((d, &x), &y) in o.iter_mut().zip(&a[start..end]).zip(&b[start..end]) {
                *d = f(x, y);
            }
        });
        return;
    }
    let sa = la.broadcast_strides(shape);
    let sb = lb.broadcast_strides(shape);
    let (dims, st) = coalesce(shape.dims(), [&sa, &sb]);
    let last = dims.len() - 1;
    let (ia, ib) = (st[0][last], st[1][last]);
    eng.for_chunks(out, work, |start, o| {
        for_each_run(
            &dims,
            &st,
            [la.offset, lb.offset],
            start,
            o.len(),
            |pos, [oa, ob], run| {
                let o = &mut o[pos..pos + run];
                match (ia, ib) {
                    (1, 1) => {
                        let (xs, ys) = (&a[oa..oa + run], &b[ob..ob + run]);
                        for ((d, &x), &y) in o.iter_mut().zip(xs).zip(ys) {
                            *d = f(x, y);
                        }
                    }
                    (1, 0) => {
                        let y = b[ob];
                        for (d, &x) in o.iter_mut().zip(&a[oa..oa + run]) {
                            *d = f(x, y);
                        }
                    }
                    (0, 1) => {
                        let x = a[oa];
                        for (d, &y) in o.iter_mut().zip(&b[ob..ob + run]) {
                            *d = f(x, y);
                        }
                    }
                    (sa, sb) => {
                        let (sa, sb) = (sa as usize, sb as usize);
                        for (i, d) in o.iter_mut().enumerate() {
                            *d = f(a[oa + i * sa], b[ob + i * sb]);
                        }
                    }
                }
            },
        )
    });
}

/// A new tensor of `x`'s shape and dtype holding `f` of each element.
fn apply1<T: Elem>(
    eng: &CpuEngine,
    x: &CpuTensor,
    cost: usize,
    f: impl Fn(T) -> T + Sync + Send,
) -> CpuTensor {
    let l = x.layout();
    eng.new_tensor::<T>(&l.shape, x.dtype(), |o| {
        map1(eng, x.data::<T>(), l, o, cost, f)
    })
}

/// Relative per-element cost of unary ops that call into libm (vs. one add).
pub(crate) const TRANSCENDENTAL: usize = 16;

/// `op(x)` elementwise.
pub(crate) fn unary(eng: &CpuEngine, op: UnaryOp, x: &CpuTensor) -> Result<CpuTensor> {
    match x.dtype() {
        DType::F32 => Ok(unary_t::<f32>(eng, op, x)),
        DType::F64 => Ok(unary_t::<f64>(eng, op, x)),
        d @ (DType::I64 | DType::Bool) => Err(not_float(op.name(), d)),
    }
}

fn unary_t<T: Elem>(eng: &CpuEngine, op: UnaryOp, x: &CpuTensor) -> CpuTensor {
    match op {
        UnaryOp::Neg => apply1(eng, x, 1, |v: T| un(UnaryOp::Neg, v)),
        UnaryOp::Exp => apply1(eng, x, TRANSCENDENTAL, |v: T| un(UnaryOp::Exp, v)),
        UnaryOp::Log => apply1(eng, x, TRANSCENDENTAL, |v: T| un(UnaryOp::Log, v)),
        UnaryOp::Sqrt => apply1(eng, x, 1, |v: T| un(UnaryOp::Sqrt, v)),
        UnaryOp::Relu => apply1(eng, x, 1, |v: T| un(UnaryOp::Relu, v)),
        UnaryOp::Sigmoid => apply1(eng, x, TRANSCENDENTAL, |v: T| un(UnaryOp::Sigmoid, v)),
        UnaryOp::Tanh => apply1(eng, x, TRANSCENDENTAL, |v: T| un(UnaryOp::Tanh, v)),
        UnaryOp::Abs => apply1(eng, x, 1, |v: T| un(UnaryOp::Abs, v)),
        UnaryOp::Sign => apply1(eng, x, 1, |v: T| un(UnaryOp::Sign, v)),
        UnaryOp::Erf => apply1(eng, x, TRANSCENDENTAL, |v: T| un(UnaryOp::Erf, v)),
    }
}

/// `a op b` with broadcasting; inputs of another dtype are first cast to the output's.
pub(crate) fn binary(
    eng: &CpuEngine,
    op: BinaryOp,
    a: &CpuTensor,
    b: &CpuTensor,
    out: &Meta,
) -> Result<CpuTensor> {
    let (ca, cb);
    let a = if a.dtype() == out.dtype {
        a
    } else {
        ca = cast(eng, a, out.dtype);
        &ca
    };
    let b = if b.dtype() == out.dtype {
        b
    } else {
        cb = cast(eng, b, out.dtype);
        &cb
    };
    match out.dtype {
        DType::F32 => Ok(binary_t::<f32>(eng, op, a, b, &out.shape)),
        DType::F64 => Ok(binary_t::<f64>(eng, op, a, b, &out.shape)),
        d @ (DType::I64 | DType::Bool) => Err(not_float(op.name(), d)),
    }
}

fn binary_t<T: Elem>(
    eng: &CpuEngine,
    op: BinaryOp,
    a: &CpuTensor,
    b: &CpuTensor,
    shape: &Shape,
) -> CpuTensor {
    let (da, la, db, lb) = (a.data::<T>(), a.layout(), b.data::<T>(), b.layout());
    // Each arm passes its own closure type, so every instantiation of `map2` sees a constant op.
    macro_rules! go {
        ($op:expr, $cost:expr) => {
            eng.new_tensor::<T>(shape, a.dtype(), |o| {
                map2(eng, da, la, db, lb, shape, o, $cost, |x: T, y: T| {
                    bin($op, x, y)
                })
            })
        };
    }
    match op {
        BinaryOp::Add => go!(BinaryOp::Add, 1),
        BinaryOp::Sub => go!(BinaryOp::Sub, 1),
        BinaryOp::Mul => go!(BinaryOp::Mul, 1),
        BinaryOp::Div => go!(BinaryOp::Div, 1),
        BinaryOp::Pow => go!(BinaryOp::Pow, TRANSCENDENTAL),
        BinaryOp::Maximum => go!(BinaryOp::Maximum, 1),
        BinaryOp::Minimum => go!(BinaryOp::Minimum, 1),
    }
}

/// `x op scalar`, or `scalar op x` when `scalar_left`; the scalar is cast to `x`'s dtype first.
pub(crate) fn binary_scalar(
    eng: &CpuEngine,
    op: BinaryOp,
    scalar: f64,
    scalar_left: bool,
    x: &CpuTensor,
) -> Result<CpuTensor> {
    match x.dtype() {
        DType::F32 => Ok(scalar_t::<f32>(eng, op, scalar, scalar_left, x)),
        DType::F64 => Ok(scalar_t::<f64>(eng, op, scalar, scalar_left, x)),
        d @ (DType::I64 | DType::Bool) => Err(not_float(op.name(), d)),
    }
}

fn scalar_t<T: Elem>(
    eng: &CpuEngine,
    op: BinaryOp,
    s: f64,
    left: bool,
    x: &CpuTensor,
) -> CpuTensor {
    let s = T::from_f64(s);
    match (op, left) {
        (BinaryOp::Add, false) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Add, v, s)),
        (BinaryOp::Add, true) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Add, s, v)),
        (BinaryOp::Sub, false) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Sub, v, s)),
        (BinaryOp::Sub, true) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Sub, s, v)),
        (BinaryOp::Mul, false) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Mul, v, s)),
        (BinaryOp::Mul, true) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Mul, s, v)),
        (BinaryOp::Div, false) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Div, v, s)),
        (BinaryOp::Div, true) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Div, s, v)),
        (BinaryOp::Pow, false) => {
            apply1(eng, x, TRANSCENDENTAL, move |v: T| bin(BinaryOp::Pow, v, s))
        }
        (BinaryOp::Pow, true) => {
            apply1(eng, x, TRANSCENDENTAL, move |v: T| bin(BinaryOp::Pow, s, v))
        }
        (BinaryOp::Maximum, false) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Maximum, v, s)),
        (BinaryOp::Maximum, true) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Maximum, s, v)),
        (BinaryOp::Minimum, false) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Minimum, v, s)),
        (BinaryOp::Minimum, true) => apply1(eng, x, 1, move |v: T| bin(BinaryOp::Minimum, s, v)),
    }
}

/// Element types a cast reads. Their conversions are [`Conv`]'s, the one definition shared with
/// the fused-loop generators, so fused and eager casts agree by construction.
pub(crate) trait CastSrc: Pod + Sync + Send + Conv {}

impl<T: Pod + Sync + Send + Conv> CastSrc for T {}

/// `x` converted to `to` (a cheap clone when the dtype already matches).
pub(crate) fn cast(eng: &CpuEngine, x: &CpuTensor, to: DType) -> CpuTensor {
    if x.dtype() == to {
        return x.clone();
    }
    match x.dtype() {
        DType::F32 => cast_from::<f32>(eng, x, to),
        DType::F64 => cast_from::<f64>(eng, x, to),
        DType::I64 => cast_from::<i64>(eng, x, to),
        DType::Bool => cast_from::<u8>(eng, x, to),
    }
}

fn cast_from<S: CastSrc>(eng: &CpuEngine, x: &CpuTensor, to: DType) -> CpuTensor {
    let (src, l) = (x.data::<S>(), x.layout());
    match to {
        DType::F32 => eng.new_tensor::<f32>(&l.shape, to, |o| map1(eng, src, l, o, 1, S::to_f32)),
        DType::F64 => eng.new_tensor::<f64>(&l.shape, to, |o| map1(eng, src, l, o, 1, S::to_f64)),
        DType::I64 => eng.new_tensor::<i64>(&l.shape, to, |o| map1(eng, src, l, o, 1, S::to_i64)),
        DType::Bool => eng.new_tensor::<u8>(&l.shape, to, |o| map1(eng, src, l, o, 1, S::to_bool)),
    }
}

/// A contiguous copy of `x` (bit-exact; used to materialize strided views).
pub(crate) fn copy(eng: &CpuEngine, x: &CpuTensor) -> CpuTensor {
    fn go<T: Pod + Sync + Send>(eng: &CpuEngine, x: &CpuTensor) -> CpuTensor {
        let l = x.layout();
        eng.new_tensor::<T>(&l.shape, x.dtype(), |o| {
            map1(eng, x.data::<T>(), l, o, 1, |v| v)
        })
    }
    match x.dtype() {
        DType::Bool => go::<u8>(eng, x),
        DType::F32 => go::<u32>(eng, x),
        DType::F64 | DType::I64 => go::<u64>(eng, x),
    }
}
