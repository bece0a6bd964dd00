//! Comparisons (tensor-tensor and tensor-scalar, bool results) and `where`.
//!
//! Tensor comparisons cast both operands to their promoted dtype and compare in it (exact for
//! every dtype, int64 included); scalar comparisons widen each element to f64 and compare with
//! the f64 constant, as the reference does. Bools are stored as one byte, 0 or 1. `where` selects
//! on the bits of the promoted dtype, with a three-operand broadcast driver ([`map3`]).

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
    fn go<T: Pod + Send + Sync>(
        eng: &CpuEngine,
        c: &CpuTensor,
        a: &CpuTensor,
        b: &CpuTensor,
        out: &Meta,
    ) -> CpuTensor {
        let (dc, da, db) = (c.data::<u8>(), a.data::<T>(), b.data::<T>());
        let ls = [c.layout(), a.layout(), b.layout()];
        eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
            map3(eng, ls, &out.shape, o, |[ic, ia, ib]| {
                if dc[ic] != 0 {
                    da[ia]
                } else {
                    db[ib]
                }
            })
        })
    }
    let (a, b) = (cast(eng, a, out.dtype), cast(eng, b, out.dtype));
    match out.dtype {
        DType::Bool => go::<u8>(eng, cond, &a, &b, out),
        DType::F32 => go::<u32>(eng, cond, &a, &b, out),
        DType::F64 | DType::I64 => go::<u64>(eng, cond, &a, &b, out),
    }
}

/// Writes `f(offsets)` for every element of `shape` (the broadcast of the three
/// layouts) into `out`; `offsets[k]` is operand `k`'s element index.
fn map3<D: Copy + Send>(
    eng: &CpuEngine,
    ls: [&Layout; 3],
    shape: &Shape,
    out: &mut [D],
    f: impl Fn([usize; 3]) -> D + Sync + Send,
) {
    let n = out.len();
    if n == 0 {
        return;
    }
    if ls.iter().all(|l| l.shape == *shape && l.is_contiguous()) {
        let offs = ls.map(|l| l.offset);
        eng.for_chunks(out, n, |start, o| {
            for (i, d) in o.iter_mut().enumerate() {
                let p = start + i;
                *d = f([offs[0] + p, offs[1] + p, offs[2] + p]);
            }
        });
        return;
    }
    let st = ls.map(|l| l.broadcast_strides(shape));
    let (dims, st) = coalesce(shape.dims(), [&st[0], &st[1], &st[2]]);
    let last = dims.len() - 1;
    let inner = [st[0][last], st[1][last], st[2][last]];
    eng.for_chunks(out, n, |start, o| {
        for_each_run(
            &dims,
            &st,
            ls.map(|l| l.offset),
            start,
            o.len(),
            |pos, offs, run| {
                for (i, d) in o[pos..pos + run].iter_mut().enumerate() {
                    let at = std::array::from_fn(|k| {
                        (offs[k] as isize + i as isize * inner[k]) as usize
                    });
                    *d = f(at);
                }
            },
        )
    });
}
