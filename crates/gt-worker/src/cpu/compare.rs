//! Comparisons (tensor-tensor and tensor-scalar, bool results) and `where`.
//!
//! Tensor comparisons cast both operands to their promoted dtype and compare in it (exact for
//! every dtype, int64 included); scalar comparisons widen each element to f64 and compare with
//! the f64 constant, as the reference does. Bools are stored as one byte, 0 or 1. `where` selects
//! on the bits of the promoted dtype, without branching on the (data-dependent) condition.

use super::elementwise::{cast, map1, map2, CastSrc};
use super::layout::{coalesce, for_each_run, Layout};
use super::{CpuEngine, CpuTensor};
use bytemuck::Pod;
use gt_core::{DType, Shape};
use gt_ops::scalar::compare as cmp;
use gt_ops::{CompareOp, Meta};

/// `a op b` elementwise with broadcasting, compared in `DType::promote(a, b)`.
pub(crate) fn compare(
    eng: &CpuEngine,
    op: CompareOp,
    a: &CpuTensor,
    b: &CpuTensor,
    out: &Meta,
) -> CpuTensor {
    let p = DType::promote(a.dtype(), b.dtype());
    let (a, b) = (cast(eng, a, p), cast(eng, b, p));
    match p {
        DType::F32 => compare_t::<f32>(eng, op, &a, &b, &out.shape),
        DType::F64 => compare_t::<f64>(eng, op, &a, &b, &out.shape),
        DType::I64 => compare_t::<i64>(eng, op, &a, &b, &out.shape),
        DType::Bool => compare_t::<u8>(eng, op, &a, &b, &out.shape),
    }
}

fn compare_t<T: Pod + PartialOrd + Sync>(
    eng: &CpuEngine,
    op: CompareOp,
    a: &CpuTensor,
    b: &CpuTensor,
    shape: &Shape,
) -> CpuTensor {
    let (da, la, db, lb) = (a.data::<T>(), a.layout(), b.data::<T>(), b.layout());
    macro_rules! go {
        ($op:expr) => {
            eng.new_tensor::<u8>(shape, DType::Bool, |o| {
                map2(eng, da, la, db, lb, shape, o, 1, |x: T, y: T| {
                    cmp($op, x, y) as u8
                })
            })
        };
    }
    match op {
        CompareOp::Eq => go!(CompareOp::Eq),
        CompareOp::Ne => go!(CompareOp::Ne),
        CompareOp::Lt => go!(CompareOp::Lt),
        CompareOp::Le => go!(CompareOp::Le),
        CompareOp::Gt => go!(CompareOp::Gt),
        CompareOp::Ge => go!(CompareOp::Ge),
    }
}

/// `x op scalar` elementwise, each element widened to f64.
pub(crate) fn compare_scalar(eng: &CpuEngine, op: CompareOp, s: f64, x: &CpuTensor) -> CpuTensor {
    match x.dtype() {
        DType::F32 => compare_scalar_t::<f32>(eng, op, s, x),
        DType::F64 => compare_scalar_t::<f64>(eng, op, s, x),
        DType::I64 => compare_scalar_t::<i64>(eng, op, s, x),
        DType::Bool => compare_scalar_t::<u8>(eng, op, s, x),
    }
}

fn compare_scalar_t<S: CastSrc>(
    eng: &CpuEngine,
    op: CompareOp,
    s: f64,
    x: &CpuTensor,
) -> CpuTensor {
    let (src, l) = (x.data::<S>(), x.layout());
    macro_rules! go {
        ($op:expr) => {
            eng.new_tensor::<u8>(&l.shape, DType::Bool, |o| {
                map1(eng, src, l, o, 1, |v: S| cmp($op, v.to_f64(), s) as u8)
            })
        };
    }
    match op {
        CompareOp::Eq => go!(CompareOp::Eq),
        CompareOp::Ne => go!(CompareOp::Ne),
        CompareOp::Lt => go!(CompareOp::Lt),
        CompareOp::Le => go!(CompareOp::Le),
        CompareOp::Gt => go!(CompareOp::Gt),
        CompareOp::Ge => go!(CompareOp::Ge),
    }
}

/// `cond ? a : b` elementwise with broadcasting; `a` and `b` are cast to the output dtype first.
pub(crate) fn where_(
    eng: &CpuEngine,
    cond: &CpuTensor,
    a: &CpuTensor,
    b: &CpuTensor,
    out: &Meta,
) -> CpuTensor {
    let (a, b) = (cast(eng, a, out.dtype), cast(eng, b, out.dtype));
    match out.dtype {
        DType::Bool => where_t::<u8>(eng, cond, &a, &b, out),
        DType::F32 => where_t::<u32>(eng, cond, &a, &b, out),
        DType::F64 | DType::I64 => where_t::<u64>(eng, cond, &a, &b, out),
    }
}

/// Element bits `where` selects between, without branching on the (data-dependent, often
/// random) condition: a mask from the condition blends the two values, which vectorizes.
trait Bits: Pod + Send + Sync {
    fn pick(c: u8, x: Self, y: Self) -> Self;
}

macro_rules! bits {
    ($t:ty) => {
        impl Bits for $t {
            #[inline(always)]
            fn pick(c: u8, x: $t, y: $t) -> $t {
                let m = ((c != 0) as $t).wrapping_neg();
                (x & m) | (y & !m)
            }
        }
    };
}
bits!(u8);
bits!(u32);
bits!(u64);

/// `where` on the element bits `T`: a slice-zipping fast path when all three operands are
/// contiguous and of the output's shape, else runs along the coalesced innermost dimension.
fn where_t<T: Bits>(
    eng: &CpuEngine,
    c: &CpuTensor,
    a: &CpuTensor,
    b: &CpuTensor,
    out: &Meta,
) -> CpuTensor {
    let (dc, da, db) = (c.data::<u8>(), a.data::<T>(), b.data::<T>());
    let ls: [&Layout; 3] = [c.layout(), a.layout(), b.layout()];
    let shape = &out.shape;
    eng.new_tensor::<T>(shape, out.dtype, |o| {
        let n = o.len();
        if n == 0 {
            return;
        }
        if ls.iter().all(|l| l.shape == *shape && l.is_contiguous()) {
            let (dc, da, db) = (
                &dc[ls[0].offset..][..n],
                &da[ls[1].offset..][..n],
                &db[ls[2].offset..][..n],
            );
            eng.for_chunks(o, n, |start, o| {
                let r = start..start + o.len();
                let src = dc[r.clone()].iter().zip(&da[r.clone()]).zip(&db[r]);
                for (d, ((&c, &x), &y)) in o.iter_mut().zip(src) {
                    *d = T::pick(c, x, y);
                }
            });
            return;
        }
        let st = ls.map(|l| l.broadcast_strides(shape));
        let (dims, st) = coalesce(shape.dims(), [&st[0], &st[1], &st[2]]);
        let last = dims.len() - 1;
        let (sc, sa, sb) = (st[0][last], st[1][last], st[2][last]);
        eng.for_chunks(o, n, |start, o| {
            let base = ls.map(|l| l.offset);
            for_each_run(
                &dims,
                &st,
                base,
                start,
                o.len(),
                |pos, [oc, oa, ob], run| {
                    let o = &mut o[pos..pos + run];
                    let dc = &dc[oc..];
                    match (sc, sa, sb) {
                        (1, 1, 1) => {
                            let src = dc[..run].iter().zip(&da[oa..oa + run]);
                            for (d, ((&c, &x), &y)) in o.iter_mut().zip(src.zip(&db[ob..ob + run]))
                            {
                                *d = T::pick(c, x, y);
                            }
                            return;
                        }
                        // A broadcast scalar on one side (`relu`'s backward: `where(x > 0,
                        // g, 0)`): a constant lane instead of a gather, so the loop vectorizes.
                        (1, 1, 0) => {
                            let y = db[ob];
                            for (d, (&c, &x)) in o.iter_mut().zip(dc[..run].iter().zip(&da[oa..])) {
                                *d = T::pick(c, x, y);
                            }
                            return;
                        }
                        (1, 0, 1) => {
                            let x = da[oa];
                            for (d, (&c, &y)) in o.iter_mut().zip(dc[..run].iter().zip(&db[ob..])) {
                                *d = T::pick(c, x, y);
                            }
                            return;
                        }
                        _ => {}
                    }
                    // Views and broadcasts never have negative strides.
                    let (sc, sa, sb) = (sc as usize, sa as usize, sb as usize);
                    for (i, d) in o.iter_mut().enumerate() {
                        *d = T::pick(dc[i * sc], da[oa + i * sa], db[ob + i * sb]);
                    }
                },
            )
        });
    })
}
