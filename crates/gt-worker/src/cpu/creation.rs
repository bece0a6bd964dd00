//! Creation kernels: `full`, `arange` and counter-based `random`.
//!
//! Values are computed in f64 (exactly as the reference does) and then converted to the output
//! dtype, so a random tensor holds the same values whatever dtype, thread count or chunking made
//! it: element `i` depends only on `(seed, stream, i)`.

use super::{not_float, CpuEngine, CpuTensor};
use gt_core::{DType, Result};
use gt_ops::{random, Dist, Meta};

/// Approximate cost of one random value relative to a memory-bound element (for the decision
/// to go parallel).
const RANDOM_COST: usize = 8;

/// Fills a new tensor of `out` by computing element `i` as `gen(i)` in f64 and converting it to
/// the dtype (bool: nonzero is true; i64: truncation toward zero).
fn generate(
    eng: &CpuEngine,
    out: &Meta,
    cost: usize,
    gen: impl Fn(usize) -> f64 + Sync + Send,
) -> CpuTensor {
    let n = out.shape.numel();
    let work = n.saturating_mul(cost);
    macro_rules! fill {
        ($t:ty, $conv:expr) => {
            eng.new_tensor::<$t>(&out.shape, out.dtype, |o| {
                eng.for_chunks(o, work, |start, chunk| {
                    for (i, d) in chunk.iter_mut().enumerate() {
                        *d = $conv(gen(start + i));
                    }
                })
            })
        };
    }
    match out.dtype {
        DType::F32 => fill!(f32, |v: f64| v as f32),
        DType::F64 => fill!(f64, |v: f64| v),
        DType::I64 => fill!(i64, |v: f64| v as i64),
        DType::Bool => fill!(u8, |v: f64| (v != 0.0) as u8),
    }
}

/// A tensor of `out`'s shape and dtype filled with `value` (converted once).
pub(crate) fn full(eng: &CpuEngine, out: &Meta, value: f64) -> CpuTensor {
    match out.dtype {
        DType::F32 => eng.new_tensor::<f32>(&out.shape, out.dtype, |o| o.fill(value as f32)),
        DType::F64 => eng.new_tensor::<f64>(&out.shape, out.dtype, |o| o.fill(value)),
        DType::I64 => eng.new_tensor::<i64>(&out.shape, out.dtype, |o| o.fill(value as i64)),
        DType::Bool => {
            eng.new_tensor::<u8>(&out.shape, out.dtype, |o| o.fill((value != 0.0) as u8))
        }
    }
}

/// `start + step * i` for `i` in `0..len`.
pub(crate) fn arange(eng: &CpuEngine, out: &Meta, start: f64, step: f64) -> CpuTensor {
    generate(eng, out, 1, |i| start + step * i as f64)
}

/// Counter-based random values of `dist` for `(seed, stream)`, generated in blocks by the
/// vectorized batch fills of [`random`] (bit-identical to the scalar functions the reference
/// uses).
pub(crate) fn random(
    eng: &CpuEngine,
    out: &Meta,
    dist: Dist,
    seed: u64,
    stream: u64,
) -> Result<CpuTensor> {
    let fill = match dist {
        Dist::Uniform => random::fill_uniform,
        Dist::Normal => random::fill_normal,
    };
    let n = out.shape.numel();
    let work = n.saturating_mul(RANDOM_COST);
    macro_rules! fill {
        ($t:ty) => {
            eng.new_tensor::<$t>(&out.shape, out.dtype, |o| {
                eng.for_chunks(o, work, |start, chunk| {
                    let mut block = [0.0f64; BLOCK];
                    for (k, part) in chunk.chunks_mut(BLOCK).enumerate() {
                        let vals = &mut block[..part.len()];
                        fill(seed, stream, (start + k * BLOCK) as u64, vals);
                        for (d, &v) in part.iter_mut().zip(vals.iter()) {
                            *d = v as $t;
                        }
                    }
                })
            })
        };
    }
    Ok(match out.dtype {
        DType::F32 => fill!(f32),
        DType::F64 => fill!(f64),
        DType::I64 | DType::Bool => return Err(not_float("random", out.dtype)),
    })
}

/// Values generated per batch-fill call (a stack buffer, converted to the dtype after).
const BLOCK: usize = 256;
