//! Matrix products on the `gemm` crate: 2-d, batched with broadcast batch dimensions, and 1-d
//! operands promoted like NumPy's `matmul`. Operands are passed to `gemm` with their own row and
//! column strides, so transposed, sliced or expanded inputs are never copied. Small float32
//! products (each matrix of a batch on its own) go to the register kernel in `small_mm`
//! instead, which sums in the same order.

use super::layout::{Dims, Strides};
use super::{elementwise, not_float, small_mm, CpuEngine, CpuTensor, Elem};
use gemm::Parallelism;
use gt_core::{DType, Result};
use gt_ops::scalar::{binary as bin, unary as un};
use gt_ops::{BinaryOp, Meta, UnaryOp};
use rayon::prelude::*;

/// Work (`m * n * k`) from which a single product is split over threads. Measured with two
/// threads: 96³ is faster on one, 128³ is a toss-up, 192³ is 1.4x faster on two.
const GEMM_PAR_MIN: usize = 1 << 22;

/// `a @ b`; inputs of another dtype are first cast to the output's.
pub(crate) fn matmul(
    eng: &CpuEngine,
    a: &CpuTensor,
    b: &CpuTensor,
    out: &Meta,
) -> Result<CpuTensor> {
    let (ca, cb);
    let a = if a.dtype() == out.dtype {
        a
    } else {
        ca = elementwise::cast(eng, a, out.dtype);
        &ca
    };
    let b = if b.dtype() == out.dtype {
        b
    } else {
        cb = elementwise::cast(eng, b, out.dtype);
        &cb
    };
    match out.dtype {
        DType::F32 => Ok(matmul_t::<f32>(eng, a, b, out, |_| {})),
        DType::F64 => Ok(matmul_t::<f64>(eng, a, b, out, |_| {})),
        d @ (DType::I64 | DType::Bool) => Err(not_float("matmul", d)),
    }
}

/// What a matmul epilogue applies to each product element `y` with its addend `c`.
#[derive(Clone, Copy)]
pub(crate) struct Tail {
    /// `y + c` (else `c + y`).
    pub mm_left: bool,
    /// Relu of the sum.
    pub relu: bool,
}

impl Tail {
    /// The eager kernels' scalar functions, operands in the add's own order.
    #[inline(always)]
    fn apply<T: Elem>(self, y: T, c: T) -> T {
        let s = if self.mm_left {
            bin(BinaryOp::Add, y, c)
        } else {
            bin(BinaryOp::Add, c, y)
        };
        if self.relu {
            un(UnaryOp::Relu, s)
        } else {
            s
        }
    }
}

/// A matmul epilogue (`Engine::matmul_add`): `a @ b`, then `tail` with `c` on each element
/// right after the product is computed (`c` of the output's shape, or a bias row of its last
/// dimension) — in place, or into a second buffer with `keep_product` (which returns the
/// product too). `None` unless every operand already has the output's dtype and `c` is
/// contiguous in one of those two shapes.
pub(crate) fn matmul_add(
    eng: &CpuEngine,
    a: &CpuTensor,
    b: &CpuTensor,
    c: &CpuTensor,
    tail: Tail,
    keep_product: bool,
    out: &Meta,
) -> Option<(CpuTensor, Option<CpuTensor>)> {
    if [a, b, c].iter().any(|t| t.dtype() != out.dtype) || !c.is_contiguous() {
        return None;
    }
    let dims = out.shape.dims();
    let row = match c.shape().dims() {
        d if d == dims => out.shape.numel().max(1),
        [n] if dims.last() == Some(n) => *n,
        _ => return None,
    };
    match out.dtype {
        DType::F32 => Some(epilogue_t::<f32>(
            eng,
            a,
            b,
            c,
            row,
            tail,
            keep_product,
            out,
        )),
        DType::F64 => Some(epilogue_t::<f64>(
            eng,
            a,
            b,
            c,
            row,
            tail,
            keep_product,
            out,
        )),
        DType::I64 | DType::Bool => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn epilogue_t<T: Elem>(
    eng: &CpuEngine,
    a: &CpuTensor,
    b: &CpuTensor,
    c: &CpuTensor,
    row: usize,
    tail: Tail,
    keep_product: bool,
    out: &Meta,
) -> (CpuTensor, Option<CpuTensor>) {
    let cd = &c.data::<T>()[c.layout().offset..][..row.min(c.numel())];
    if !keep_product {
        let t = matmul_t::<T>(eng, a, b, out, |o| {
            for r in o.chunks_mut(row.max(1)) {
                for (x, &y) in r.iter_mut().zip(cd) {
                    *x = tail.apply(*x, y);
                }
            }
        });
        return (t, None);
    }
    let p = matmul_t::<T>(eng, a, b, out, |_| {});
    let pd = p.data::<T>();
    let t = eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
        for (r, src) in o.chunks_mut(row.max(1)).zip(pd.chunks(row.max(1))) {
            for ((x, &y), &cv) in r.iter_mut().zip(src).zip(cd) {
                *x = tail.apply(y, cv);
            }
        }
    });
    (t, Some(p))
}

/// One operand seen as a batch of matrices.
struct MatView {
    /// Element offset of the first matrix.
    offset: usize,
    /// Row stride.
    rs: isize,
    /// Column stride.
    cs: isize,
    /// Stride of each output batch dimension (0 where broadcast).
    batch_strides: Strides,
}

/// Matrix dims and strides of `t`, with a 1-d operand promoted to a row (`lhs`) or a column.
fn promote(t: &CpuTensor, lhs: bool) -> (Dims, Strides) {
    let l = t.layout();
    let (mut d, mut s): (Dims, Strides) = (l.shape.0.clone(), l.strides.clone());
    if d.len() == 1 {
        if lhs {
            d.insert(0, 1);
            s.insert(0, 0);
        } else {
            d.push(1);
            s.push(0);
        }
    }
    (d, s)
}

/// `a @ b` into a new tensor, then `post` on its elements (row-major).
fn matmul_t<T: Elem>(
    eng: &CpuEngine,
    a: &CpuTensor,
    b: &CpuTensor,
    out: &Meta,
    post: impl FnOnce(&mut [T]),
) -> CpuTensor {
    let (ad, as_) = promote(a, true);
    let (bd, bs) = promote(b, false);
    let (ra, rb) = (ad.len(), bd.len());
    let (m, k, n) = (ad[ra - 2], ad[ra - 1], bd[rb - 1]);
    // Broadcast the batch dims (right-aligned, like NumPy).
    let br = ra.max(rb) - 2;
    let mut batch = Dims::new();
    let (mut sa, mut sb) = (Strides::new(), Strides::new());
    for i in 0..br {
        let pick = |dims: &Dims, strides: &Strides, rank: usize| {
            let lead = br - (rank - 2);
            if i >= lead {
                (dims[i - lead], strides[i - lead])
            } else {
                (1, 0)
            }
        };
        let (da, xa) = pick(&ad, &as_, ra);
        let (db, xb) = pick(&bd, &bs, rb);
        let d = da.max(db);
        batch.push(d);
        sa.push(if da == d { xa } else { 0 });
        sb.push(if db == d { xb } else { 0 });
    }
    let va = MatView {
        offset: a.layout().offset,
        rs: as_[ra - 2],
        cs: as_[ra - 1],
        batch_strides: sa,
    };
    let vb = MatView {
        offset: b.layout().offset,
        rs: bs[rb - 2],
        cs: bs[rb - 1],
        batch_strides: sb,
    };
    let (da, db) = (a.data::<T>(), b.data::<T>());
    let mn = m * n;
    let nbatch: usize = batch.iter().product();
    let small = eng.small_matmul;
    eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
        if o.is_empty() {
            return;
        }
        if k == 0 {
            o.fill(T::ZERO);
            post(o);
            return;
        }
        let one = |bi: usize, dst: &mut [T], par: Parallelism| {
            let (mut oa, mut ob) = (va.offset as isize, vb.offset as isize);
            let mut rem = bi;
            for i in (0..br).rev() {
                let idx = (rem % batch[i]) as isize;
                rem /= batch[i];
                oa += idx * va.batch_strides[i];
                ob += idx * vb.batch_strides[i];
            }
            debug_assert_eq!(dst.len(), mn);
            let (pa, pb) = (
                da.as_ptr().wrapping_offset(oa),
                db.as_ptr().wrapping_offset(ob),
            );
            // SAFETY: `dst` holds exactly `m * n` elements, written at `i * n + j`. Every lhs
            // element read is `oa + i * rs + p * cs` for `i < m`, `p < k`, which is the storage
            // index of a valid multi-index of `a`'s layout (layouts only come from shape-checked
            // view ops over buffers that hold them), and likewise for rhs; neither kernel reads
            // other elements. The pointers are derived with `wrapping_offset` and only
            // dereferenced by the kernels at those positions.
            let operands = small_mm::Operands {
                m,
                n,
                k,
                a: pa,
                a_rs: va.rs,
                a_cs: va.cs,
                b: pb,
                b_rs: vb.rs,
                b_cs: vb.cs,
            };
            if small && unsafe { T::small_product(dst, &operands) } {
                return;
            }
            // SAFETY: as above.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    pa,
                    va.cs,
                    va.rs,
                    pb,
                    vb.cs,
                    vb.rs,
                    T::ZERO,
                    T::ONE,
                    false,
                    false,
                    false,
                    par,
                );
            }
        };
        let work = m * n * k;
        if eng.threads() > 1 && work >= GEMM_PAR_MIN {
            let par = Parallelism::Rayon(eng.threads());
            eng.install(|| {
                for (bi, dst) in o.chunks_mut(mn).enumerate() {
                    one(bi, dst, par);
                }
            });
        } else if nbatch > 1 && eng.parallel(work.saturating_mul(nbatch)) {
            eng.install(|| {
                o.par_chunks_mut(mn)
                    .enumerate()
                    .for_each(|(bi, dst)| one(bi, dst, Parallelism::None))
            });
        } else {
            for (bi, dst) in o.chunks_mut(mn).enumerate() {
                one(bi, dst, Parallelism::None);
            }
        }
        post(o);
    })
}
