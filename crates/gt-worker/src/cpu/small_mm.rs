//! Small float32 matrix products on AVX-512, in registers, without packing.
//!
//! At the sizes of a small training step (16x32 @ 32x64, or a 10-wide output layer) the `gemm`
//! crate's fixed cost (dispatch, packing, its scratch stack) outweighs the arithmetic: a
//! 16x32 @ 32x10 product took 265 ns in a hot loop, of which the FMAs need about 20. This
//! kernel keeps a block of output rows (8, 4 or 1 rows of up to 16 or 32 columns) in `zmm`
//! accumulators and walks the shared dimension once, broadcasting one left element per row and
//! loading one right row per step; column tails are masked, so no shape needs a scalar
//! remainder loop. A right operand whose rows are not contiguous (a transposed weight)
//! is first copied into a small stack buffer when it is small enough, and left to `gemm`
//! otherwise.
//!
//! Each output element is `fma(a[i][k-1], b[k-1][j], ... fma(a[i][0], b[0][j], 0))`, summed in
//! order of the shared dimension: the same in every block and for every shape, so a value does
//! not depend on how many rows or columns are computed with it (a row-sharded product equals
//! the whole one). `gemm` sums in the same order at these sizes; the tests check the kernel
//! bit for bit against a scalar `mul_add` loop.
//!
//! `gt bench matmul` times it against `gemm` on the same engine.

/// Work (`m * n * k`) up to which [`product`] computes a product: up to 16x64 @ 64x64 it was
/// 1.1-4x faster than `gemm` in a hot loop; at 64x64 @ 64x64 `gemm` was 7% faster.
pub(crate) const MAX_WORK: usize = 1 << 16;

/// Right operands with non-contiguous rows are copied when they hold at most this many
/// elements (a 2 KiB stack buffer): copying 32x64 cost more than `gemm`'s whole product.
const MAX_PACK: usize = 512;

/// The operands of one product: `m x k` times `k x n`, each element `(i, j)` of an operand at
/// `ptr + i * rs + j * cs` (strides in elements).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operands<T> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: *const T,
    pub a_rs: isize,
    pub a_cs: isize,
    pub b: *const T,
    pub b_rs: isize,
    pub b_cs: isize,
}

impl<T> Operands<T> {
    /// Whether [`product`] computes this product (the CPU aside).
    fn small(&self) -> bool {
        let Operands { m, n, k, .. } = *self;
        // A single column is a matrix-vector product, which `gemm` does better one row at a
        // time than a kernel built for rows of columns.
        n >= 2
            && k >= 1
            && m >= 1
            && m.saturating_mul(n).saturating_mul(k) <= MAX_WORK
            && (self.b_cs == 1 || k * n <= MAX_PACK)
    }
}

/// Writes `A @ B` into `dst` (`m x n`, row-major) and returns `true`, or returns `false`
/// without writing when the product is not small ([`MAX_WORK`], [`MAX_PACK`]) or the CPU lacks
/// AVX-512.
///
/// # Safety
/// `dst` holds at least `m * n` elements, and every element `(i, p)` of A (`i < m`, `p < k`) and
/// `(p, j)` of B (`j < n`) is readable at the position [`Operands`] gives it.
pub(crate) unsafe fn product(dst: &mut [f32], x: &Operands<f32>) -> bool {
    debug_assert!(dst.len() >= x.m * x.n);
    #[cfg(target_arch = "x86_64")]
    if x.small() && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above); the caller vouches for the
        // operands.
        unsafe { avx512::product(dst.as_mut_ptr(), x) };
        return true;
    }
    false
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Operands, MAX_PACK};
    use std::arch::x86_64::*;

    /// `R` rows times `W` vectors of 16 columns of the output, starting at `c` (row stride
    /// `ldc`); `a` points at the block's first left row, `b` at its first right column.
    /// `mask[w]` selects the columns of vector `w` that exist.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize, const W: usize>(
        k: usize,
        (a, a_rs, a_cs): (*const f32, isize, isize),
        (b, b_rs): (*const f32, isize),
        c: *mut f32,
        ldc: usize,
        mask: [__mmask16; 2],
    ) {
        let mut acc = [[_mm512_setzero_ps(); W]; R];
        let (mut pa, mut pb) = (a, b);
        for _ in 0..k {
            let mut bv = [_mm512_setzero_ps(); W];
            for (w, v) in bv.iter_mut().enumerate() {
                // SAFETY: masked-off lanes are neither read nor faulted on; the others are
                // columns `< n` of right row `p`.
                *v = unsafe { _mm512_maskz_loadu_ps(mask[w], pb.add(16 * w)) };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: left element (i + r, p) with i + r < m.
                let av = _mm512_set1_ps(unsafe { *pa.wrapping_offset(r as isize * a_rs) });
                for (w, v) in row.iter_mut().enumerate() {
                    *v = _mm512_fmadd_ps(av, bv[w], *v);
                }
            }
            pa = pa.wrapping_offset(a_cs);
            pb = pb.wrapping_offset(b_rs);
        }
        for (r, row) in acc.iter().enumerate() {
            for (w, v) in row.iter().enumerate() {
                // SAFETY: output row i + r < m, columns selected by the mask are < n.
                unsafe { _mm512_mask_storeu_ps(c.add(r * ldc + 16 * w), mask[w], *v) };
            }
        }
    }

    /// Mask of the first `w` (at most 16) lanes.
    fn lanes(w: usize) -> __mmask16 {
        ((1u32 << w.min(16)) - 1) as __mmask16
    }

    /// See [`super::product`]; the operands are small and B's rows are contiguous or fit
    /// [`MAX_PACK`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(c: *mut f32, x: &Operands<f32>) {
        let (n, k) = (x.n, x.k);
        let mut packed = [0f32; MAX_PACK];
        let (b, b_rs) = if x.b_cs == 1 {
            (x.b, x.b_rs)
        } else {
            for p in 0..k {
                for j in 0..n {
                    let at = p as isize * x.b_rs + j as isize * x.b_cs;
                    // SAFETY: element (p, j) of B; k * n <= MAX_PACK.
                    packed[p * n + j] = unsafe { *x.b.wrapping_offset(at) };
                }
            }
            (packed.as_ptr(), n as isize)
        };
        let mut j = 0;
        while j < n {
            let w = n - j;
            // SAFETY (both): columns j.. masked to < n; the caller vouches for the rest.
            if w <= 16 {
                unsafe { strip::<1>(x, (b, b_rs), c, j, [lanes(w), 0]) };
                j += 16;
            } else {
                unsafe { strip::<2>(x, (b, b_rs), c, j, [lanes(16), lanes(w - 16)]) };
                j += 32;
            }
        }
    }

    /// Output columns `j..` (`W` vectors of 16, selected by `mask`) of every row, in blocks of
    /// 8 rows, then 4, then 1. Eight rows of 32 columns need 16 accumulators, two right
    /// vectors and a broadcast: 19 of the 32 `zmm` registers.
    #[target_feature(enable = "avx512f")]
    unsafe fn strip<const W: usize>(
        x: &Operands<f32>,
        (b, b_rs): (*const f32, isize),
        c: *mut f32,
        j: usize,
        mask: [__mmask16; 2],
    ) {
        let (m, n, k) = (x.m, x.n, x.k);
        let (a, a_rs, a_cs) = (x.a, x.a_rs, x.a_cs);
        let a_at = |i: usize| (a.wrapping_offset(i as isize * a_rs), a_rs, a_cs);
        let bj = (b.wrapping_add(j), b_rs);
        let mut i = 0;
        // SAFETY (every block): rows i..i + R < m; the caller vouches for the columns.
        while i + 8 <= m {
            unsafe { block::<8, W>(k, a_at(i), bj, c.add(i * n + j), n, mask) };
            i += 8;
        }
        while i + 4 <= m {
            unsafe { block::<4, W>(k, a_at(i), bj, c.add(i * n + j), n, mask) };
            i += 4;
        }
        while i < m {
            unsafe { block::<1, W>(k, a_at(i), bj, c.add(i * n + j), n, mask) };
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order [`product`] promises: `mul_add` along the shared dimension from zero.
    fn reference(x: &Operands<f32>) -> Vec<f32> {
        let mut out = vec![0f32; x.m * x.n];
        for i in 0..x.m {
            for j in 0..x.n {
                let mut acc = 0f32;
                for p in 0..x.k {
                    // SAFETY: in bounds of the test's buffers by construction.
                    let (a, b) = unsafe {
                        (
                            *x.a.offset(i as isize * x.a_rs + p as isize * x.a_cs),
                            *x.b.offset(p as isize * x.b_rs + j as isize * x.b_cs),
                        )
                    };
                    acc = a.mul_add(b, acc);
                }
                out[i * x.n + j] = acc;
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2000) as f32 / 997.0 - 1.0
            })
            .collect()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn products_equal_an_in_order_fused_multiply_add_bit_for_bit() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F, so products go to gemm");
            return;
        }
        let mut checked = 0;
        for m in [1, 3, 4, 5, 8, 9, 13, 16, 17] {
            for n in [2, 3, 10, 15, 16, 17, 31, 32, 33, 47, 64] {
                for k in [1, 2, 7, 10, 32] {
                    // A row-major or transposed; B row-major, transposed (packed), or its rows
                    // one expanded row (stride 0).
                    for (a_t, b_form) in [(false, 0), (true, 0), (false, 1), (true, 2)] {
                        let a = values(m * k, 1);
                        let b = values(k * n, 2);
                        let (a_rs, a_cs) = if a_t {
                            (1, m as isize)
                        } else {
                            (k as isize, 1)
                        };
                        let (b_rs, b_cs) = match b_form {
                            0 => (n as isize, 1),
                            1 => (1, k as isize),
                            _ => (0, 1),
                        };
                        let x = Operands {
                            m,
                            n,
                            k,
                            a: a.as_ptr(),
                            a_rs,
                            a_cs,
                            b: b.as_ptr(),
                            b_rs,
                            b_cs,
                        };
                        let mut dst = vec![f32::NAN; m * n + 1];
                        // SAFETY: the strides above address only elements of `a` and `b`.
                        let done = unsafe { product(&mut dst, &x) };
                        assert_eq!(done, x.small(), "{m}x{k} @ {k}x{n} ({a_t}, {b_form})");
                        if !done {
                            continue;
                        }
                        let want = reference(&x);
                        for (idx, (got, want)) in dst.iter().zip(&want).enumerate() {
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{m}x{k} @ {k}x{n} (a transposed {a_t}, b form {b_form}) at {idx}"
                            );
                        }
                        assert!(dst[m * n].is_nan(), "wrote past the output");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000, "only {checked} products were small enough");
    }

    #[test]
    fn large_products_and_single_columns_are_left_to_gemm() {
        let (a, b) = (vec![1f32; 64 * 64], vec![1f32; 64 * 64]);
        let ops = |m: usize, n: usize, k: usize, b_cs: isize| Operands {
            m,
            n,
            k,
            a: a.as_ptr(),
            a_rs: k as isize,
            a_cs: 1,
            b: b.as_ptr(),
            b_rs: if b_cs == 1 { n as isize } else { 1 },
            b_cs,
        };
        let mut dst = vec![0f32; 64 * 64];
        for x in [ops(64, 64, 64, 1), ops(64, 1, 64, 1), ops(16, 64, 32, 32)] {
            assert!(!x.small());
            // SAFETY: every operand fits the 64x64 buffers.
            assert!(!unsafe { product(&mut dst, &x) });
        }
        assert!(dst.iter().all(|v| *v == 0.0), "a refused product wrote");
    }
}
