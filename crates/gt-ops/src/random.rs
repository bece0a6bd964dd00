//! Counter-based random numbers (Philox4x32-10). Element `i` of a random tensor created with
//! `(seed, stream)` is a pure function of those three numbers, so the same program gives the same
//! values eagerly, compiled, on one worker or sharded over many.
//!
//! Speed: a random tensor is created in every iteration of most training loops (data, dropout,
//! fresh inputs), so generation must cost a few nanoseconds per element, not the ~40 ns that a
//! scalar Philox block plus libm `ln` and `cos` per element cost. The batch fills
//! ([`fill_normal`], [`fill_uniform`]) therefore run Philox on [`LANES`] counters at once and use
//! this module's own `ln`, `sin` and `cos` (fdlibm's polynomials, ≤ 1 ulp here) written as plain
//! arithmetic, so the compiler vectorizes them. Every function is pure IEEE arithmetic with no
//! fused multiply-adds, so the scalar functions ([`normal`], [`uniform`]) and the vectorized
//! batch fills (baseline or AVX2 code, picked at run time) give bit-identical values.
//!
//! Box–Muller makes two normals from one Philox block: element `2j` is `r·cos θ` and element
//! `2j + 1` is `r·sin θ` of block `j`.

// The loops index several lane arrays at once (structure of arrays, for vectorization), and
// the polynomial constants are fdlibm's as published (each rounds to the intended double).
#![allow(clippy::needless_range_loop, clippy::excessive_precision)]

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox blocks computed together by the batch fills.
pub const LANES: usize = 8;

/// One Philox4x32 block with 10 rounds.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let c = philox_lanes::<1>(
        [[counter[0]], [counter[1]], [counter[2]], [counter[3]]],
        key,
    );
    [c[0][0], c[1][0], c[2][0], c[3][0]]
}

/// Philox4x32-10 on `N` counters at once (structure of arrays, so it vectorizes).
#[inline(always)]
fn philox_lanes<const N: usize>(counter: [[u32; N]; 4], key: [u32; 2]) -> [[u32; N]; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let mut n = [[0u32; N]; 4];
        for l in 0..N {
            let p0 = (M0 as u64) * (c[0][l] as u64);
            let p1 = (M1 as u64) * (c[2][l] as u64);
            n[0][l] = ((p1 >> 32) as u32) ^ c[1][l] ^ k[0];
            n[1][l] = p1 as u32;
            n[2][l] = ((p0 >> 32) as u32) ^ c[3][l] ^ k[1];
            n[3][l] = p0 as u32;
        }
        c = n;
    }
    c
}

/// The blocks for counters `index..index + N` of `(seed, stream)`.
#[inline(always)]
fn blocks<const N: usize>(seed: u64, stream: u64, index: u64) -> [[u32; N]; 4] {
    let mut ctr = [[0u32; N]; 4];
    for l in 0..N {
        let i = index.wrapping_add(l as u64);
        ctr[0][l] = i as u32;
        ctr[1][l] = (i >> 32) as u32;
        ctr[2][l] = stream as u32;
        ctr[3][l] = (stream >> 32) as u32;
    }
    philox_lanes(ctr, [seed as u32, (seed >> 32) as u32])
}

/// Uniform on `[0, 1)` with 53 random bits.
#[inline(always)]
fn unit53(hi: u32, lo: u32) -> f64 {
    let bits = ((hi as u64) << 21) ^ (lo as u64 >> 11);
    (bits & ((1 << 53) - 1)) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform on `[0, 1)` with 53 random bits.
pub fn uniform(seed: u64, stream: u64, index: u64) -> f64 {
    let w = blocks::<1>(seed, stream, index);
    unit53(w[0][0], w[1][0])
}

/// Standard normal: element `index` of the Box–Muller pairs (see the module doc).
pub fn normal(seed: u64, stream: u64, index: u64) -> f64 {
    let w = blocks::<1>(seed, stream, index >> 1);
    let (c, s) = box_muller([w[0][0], w[1][0], w[2][0], w[3][0]]);
    if index & 1 == 0 {
        c
    } else {
        s
    }
}

/// Fills `out[j]` with [`uniform`]`(seed, stream, start + j)`.
pub fn fill_uniform(seed: u64, stream: u64, start: u64, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { fill_uniform_avx2(seed, stream, start, out) };
    }
    fill_uniform_any(seed, stream, start, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_uniform_avx2(seed: u64, stream: u64, start: u64, out: &mut [f64]) {
    fill_uniform_any(seed, stream, start, out)
}

#[inline(always)]
fn fill_uniform_any(seed: u64, stream: u64, start: u64, out: &mut [f64]) {
    let mut chunks = out.chunks_exact_mut(LANES);
    let mut i = start;
    for chunk in &mut chunks {
        let w = blocks::<LANES>(seed, stream, i);
        for l in 0..LANES {
            chunk[l] = unit53(w[0][l], w[1][l]);
        }
        i = i.wrapping_add(LANES as u64);
    }
    for (j, o) in chunks.into_remainder().iter_mut().enumerate() {
        *o = uniform(seed, stream, i.wrapping_add(j as u64));
    }
}

/// Fills `out[j]` with [`normal`]`(seed, stream, start + j)`.
pub fn fill_normal(seed: u64, stream: u64, start: u64, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq") {
        // SAFETY: the CPU supports AVX-512F and DQ (checked just above).
        return unsafe { fill_normal_avx512(seed, stream, start, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { fill_normal_avx2(seed, stream, start, out) };
    }
    fill_normal_any(seed, stream, start, out)
}

/// The same code over 16 Philox blocks at a time with 512-bit registers (8 f64 per register),
/// and DQ's 64-bit integer ↔ float conversions. The arithmetic is IEEE and never contracted into FMAs, so the
/// values are bit-identical whichever variant runs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fill_normal_avx512(seed: u64, stream: u64, start: u64, out: &mut [f64]) {
    fill_normal_lanes::<16>(seed, stream, start, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_normal_avx2(seed: u64, stream: u64, start: u64, out: &mut [f64]) {
    fill_normal_any(seed, stream, start, out)
}

#[inline(always)]
fn fill_normal_any(seed: u64, stream: u64, start: u64, out: &mut [f64]) {
    fill_normal_lanes::<LANES>(seed, stream, start, out)
}

#[inline(always)]
fn fill_normal_lanes<const N: usize>(seed: u64, stream: u64, start: u64, out: &mut [f64]) {
    let mut out = out;
    let mut i = start;
    // An odd start takes the second half of its pair alone.
    if i & 1 == 1 && !out.is_empty() {
        out[0] = normal(seed, stream, i);
        out = &mut out[1..];
        i = i.wrapping_add(1);
    }
    let mut chunks = out.chunks_exact_mut(2 * N);
    for chunk in &mut chunks {
        let w = blocks::<N>(seed, stream, i >> 1);
        let mut c = [0.0; N];
        let mut s = [0.0; N];
        for l in 0..N {
            (c[l], s[l]) = box_muller([w[0][l], w[1][l], w[2][l], w[3][l]]);
        }
        for l in 0..N {
            chunk[2 * l] = c[l];
            chunk[2 * l + 1] = s[l];
        }
        i = i.wrapping_add(2 * N as u64);
    }
    let rest = chunks.into_remainder();
    if N > LANES {
        return fill_normal_lanes::<LANES>(seed, stream, i, rest);
    }
    for (j, o) in rest.iter_mut().enumerate() {
        *o = normal(seed, stream, i.wrapping_add(j as u64));
    }
}

const ONE_BITS: u64 = 0x3FF0_0000_0000_0000;
const MANTISSA: u64 = (1 << 52) - 1;

/// `(r·cos θ, r·sin θ)` with `r = √(−2 ln u1)`, `θ = 2π·u2`, `u1 ∈ (0, 1]` and `u2 ∈ [0, 1)` taken
/// from 52 bits of words 0–1 and 2–3.
#[inline(always)]
fn box_muller(w: [u32; 4]) -> (f64, f64) {
    let m1 = (((w[0] as u64) << 20) ^ (w[1] as u64 >> 12)) & MANTISSA;
    let m2 = (((w[2] as u64) << 20) ^ (w[3] as u64 >> 12)) & MANTISSA;
    let u1 = 2.0 - f64::from_bits(ONE_BITS | m1); // (0, 1], exact
    let u2 = f64::from_bits(ONE_BITS | m2) - 1.0; // [0, 1), exact
    let r = (-2.0 * ln(u1)).sqrt();
    // θ = n·π/2 + x with n the nearest quarter turn, |x| ≤ π/4 (u2 − n/4 is exact).
    let n = (m2 + (1 << 49)) >> 50;
    let x = (u2 - (n as i32) as f64 * 0.25) * std::f64::consts::TAU;
    let (s, c) = (sin_kernel(x), cos_kernel(x));
    // cos θ: c, −s, −c, s and sin θ: s, c, −s, −c for n mod 4 = 0, 1, 2, 3.
    let q = n & 3;
    let swap = q & 1 == 1;
    let (a, b) = if swap { (s, c) } else { (c, s) };
    let neg_cos = ((q ^ (q >> 1)) & 1) << 63;
    let neg_sin = (q >> 1) << 63;
    (
        r * f64::from_bits(a.to_bits() ^ neg_cos),
        r * f64::from_bits(b.to_bits() ^ neg_sin),
    )
}

/// Natural log of a positive normal `x` (fdlibm's `__ieee754_log` without its special cases).
#[inline(always)]
fn ln(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const LG1: f64 = 6.666_666_666_666_735_130e-01;
    const LG2: f64 = 3.999_999_999_940_941_908e-01;
    const LG3: f64 = 2.857_142_874_366_239_149e-01;
    const LG4: f64 = 2.222_219_843_214_978_396e-01;
    const LG5: f64 = 1.818_357_216_161_805_012e-01;
    const LG6: f64 = 1.531_383_769_920_937_332e-01;
    const LG7: f64 = 1.479_819_860_511_658_591e-01;
    let bits = x.to_bits();
    let hx = (bits >> 32) as u32;
    let hm = hx & 0x000F_FFFF;
    // Normalize the mantissa into [√2/2, √2): i is 0x100000 when it must be halved.
    let i = (hm + 0x95F64) & 0x10_0000;
    let k = ((hx >> 20) as i32) - 1023 + (i >> 20) as i32;
    let f = f64::from_bits((((hm | (i ^ 0x3FF0_0000)) as u64) << 32) | (bits & 0xFFFF_FFFF)) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let dk = k as f64;
    dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
}

/// sin x for |x| ≤ π/4 (fdlibm's `__kernel_sin`).
#[inline(always)]
fn sin_kernel(x: f64) -> f64 {
    const S1: f64 = -1.666_666_666_666_663_243_48e-01;
    const S2: f64 = 8.333_333_333_322_489_461_24e-03;
    const S3: f64 = -1.984_126_982_985_794_931_34e-04;
    const S4: f64 = 2.755_731_370_707_006_767_89e-06;
    const S5: f64 = -2.505_076_025_340_686_341_95e-08;
    const S6: f64 = 1.589_690_995_211_550_102_21e-10;
    let z = x * x;
    let v = z * x;
    let r = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)));
    x + v * (S1 + z * r)
}

/// cos x for |x| ≤ π/4 (fdlibm's `__kernel_cos`, in musl's form).
#[inline(always)]
fn cos_kernel(x: f64) -> f64 {
    const C1: f64 = 4.166_666_666_666_660_190_37e-02;
    const C2: f64 = -1.388_888_888_887_410_957_49e-03;
    const C3: f64 = 2.480_158_728_947_672_941_78e-05;
    const C4: f64 = -2.755_731_435_139_066_330_35e-07;
    const C5: f64 = 2.087_572_321_298_174_827_90e-09;
    const C6: f64 = -1.135_964_755_778_819_482_65e-11;
    let z = x * x;
    let w = z * z;
    let r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
    let hz = 0.5 * z;
    let one_minus = 1.0 - hz;
    one_minus + (((1.0 - one_minus) - hz) + z * r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        assert_eq!(uniform(1, 2, 3), uniform(1, 2, 3));
        assert_ne!(uniform(1, 2, 3), uniform(1, 2, 4));
        assert_ne!(uniform(1, 2, 3), uniform(1, 3, 3));
        assert_ne!(uniform(1, 2, 3), uniform(2, 2, 3));
        assert_ne!(normal(1, 2, 6), normal(1, 2, 7));
    }

    #[test]
    fn moments_look_right() {
        let n = 20_000;
        let u: Vec<f64> = (0..n).map(|i| uniform(7, 0, i)).collect();
        let z: Vec<f64> = (0..n).map(|i| normal(7, 0, i)).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert!((mean(&u) - 0.5).abs() < 0.01);
        assert!(mean(&z).abs() < 0.03);
        let var = z.iter().map(|x| x * x).sum::<f64>() / n as f64;
        assert!((var - 1.0).abs() < 0.05, "{var}");
        assert!(z.iter().all(|x| x.is_finite()));
        // The cos and sin halves of the pairs are uncorrelated.
        let cov = (0..n as usize / 2)
            .map(|j| z[2 * j] * z[2 * j + 1])
            .sum::<f64>()
            / n as f64;
        assert!(cov.abs() < 0.02, "{cov}");
    }

    #[test]
    fn polynomials_match_libm() {
        let mut worst = [0.0f64; 3];
        for i in 0..100_000u64 {
            let u = (i as f64 + 0.5) / 100_000.0;
            let x = (u - 0.5) * std::f64::consts::FRAC_PI_2;
            let rel = |a: f64, b: f64| ((a - b) / b.abs().max(1e-300)).abs();
            worst[0] = worst[0].max(rel(ln(u), u.ln()));
            worst[1] = worst[1].max(if x == 0.0 {
                0.0
            } else {
                rel(sin_kernel(x), x.sin())
            });
            worst[2] = worst[2].max(rel(cos_kernel(x), x.cos()));
        }
        assert!(worst.iter().all(|&w| w < 4e-16), "{worst:?}");
        assert_eq!(ln(1.0), 0.0);
        assert!((ln(f64::MIN_POSITIVE) - f64::MIN_POSITIVE.ln()).abs() < 1e-12);
    }

    #[test]
    fn box_muller_matches_the_textbook_formula() {
        for i in 0..5_000u64 {
            let w = philox4x32([i as u32, 0, 9, 0], [3, 4]);
            let (c, s) = box_muller(w);
            let m1 = (((w[0] as u64) << 20) ^ (w[1] as u64 >> 12)) & MANTISSA;
            let m2 = (((w[2] as u64) << 20) ^ (w[3] as u64 >> 12)) & MANTISSA;
            let u1 = 1.0 - m1 as f64 / (1u64 << 52) as f64;
            let u2 = m2 as f64 / (1u64 << 52) as f64;
            let r = (-2.0 * u1.ln()).sqrt();
            let th = std::f64::consts::TAU * u2;
            assert!(
                (c - r * th.cos()).abs() < 1e-13,
                "{i}: {c} vs {}",
                r * th.cos()
            );
            assert!(
                (s - r * th.sin()).abs() < 1e-13,
                "{i}: {s} vs {}",
                r * th.sin()
            );
        }
    }

    #[test]
    fn batch_fills_equal_the_scalar_functions_bit_for_bit() {
        for start in [0u64, 1, 2, 7, 15, 16, 17, (1 << 32) - 3] {
            for len in [0usize, 1, 2, 3, 15, 16, 17, 33, 47, 100] {
                let mut z = vec![0.0; len];
                let mut u = vec![0.0; len];
                fill_normal(5, 11, start, &mut z);
                fill_uniform(5, 11, start, &mut u);
                for j in 0..len {
                    let i = start + j as u64;
                    assert_eq!(z[j].to_bits(), normal(5, 11, i).to_bits(), "normal {i}");
                    assert_eq!(u[j].to_bits(), uniform(5, 11, i).to_bits(), "uniform {i}");
                }
                let mut any = vec![0.0; len];
                fill_normal_any(5, 11, start, &mut any);
                assert_eq!(any, z);
                let mut wide = vec![0.0; len];
                fill_normal_lanes::<16>(5, 11, start, &mut wide);
                assert_eq!(wide, z);
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512dq")
                {
                    let mut v = vec![0.0; len];
                    // SAFETY: the CPU supports AVX-512F and DQ (checked just above).
                    unsafe { fill_normal_avx512(5, 11, start, &mut v) };
                    assert_eq!(v, z);
                }
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2") {
                    let mut v = vec![0.0; len];
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    unsafe { fill_normal_avx2(5, 11, start, &mut v) };
                    assert_eq!(v, z);
                }
            }
        }
    }
}
