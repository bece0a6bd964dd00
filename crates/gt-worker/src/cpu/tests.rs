//! Table-driven tests of the CPU engine against the float64 reference (`gt_ops::reference`):
//! every op variant, in f32 and f64, on contiguous, broadcast and strided inputs; plus the
//! buffer pool, views sharing storage, casts, uploads and thread-count independence.
//!
//! This file holds the shared helpers; `tests/kernels.rs` compares every op kernel with the
//! reference, `tests/compare.rs` and `tests/index.rs` do the same for comparisons, `where`, arg
//! reductions and the indexing ops, and `tests/engine.rs` covers creation, casts, transfers, errors, the pool and
//! threading.

mod compare;
mod engine;
mod index;
mod kernels;

use super::*;
use gt_ops::reference::{eval, RefTensor};
use gt_ops::{random, ReduceOp, SliceSpec, UnaryOp};
use smallvec::smallvec;

const FLOATS: [DType; 2] = [DType::F32, DType::F64];
const ALL_DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::I64, DType::Bool];

fn rtol(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-5,
        DType::F64 | DType::I64 | DType::Bool => 1e-12,
    }
}

/// A deterministic tensor with values in `[lo, hi)`.
fn input(
    e: &mut CpuEngine,
    shape: &[usize],
    dtype: DType,
    seed: u64,
    lo: f64,
    hi: f64,
) -> CpuTensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| lo + (hi - lo) * random::uniform(seed, 7, i as u64))
        .collect();
    let data = match dtype {
        DType::F32 => TensorData::from_f32(shape, &v.iter().map(|&x| x as f32).collect::<Vec<_>>()),
        DType::F64 => TensorData::from_f64(shape, &v),
        DType::I64 => TensorData {
            dtype,
            shape: shape.into(),
            bytes: v
                .iter()
                .flat_map(|&x| (x.round() as i64).to_le_bytes())
                .collect(),
        },
        DType::Bool => TensorData {
            dtype,
            shape: shape.into(),
            bytes: v.iter().map(|&x| (x > 0.0) as u8).collect(),
        },
    };
    e.upload(&data).unwrap()
}

fn to_ref(e: &mut CpuEngine, t: &CpuTensor) -> RefTensor {
    let d = e.download(t);
    RefTensor::new(d.shape.clone(), d.to_f64_vec())
}

fn assert_close(got: &RefTensor, want: &RefTensor, rtol: f64, what: &str) {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    for (i, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= rtol * w.abs().max(1.0)
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// Executes `op` on the engine and on the reference (fed the engine inputs' values) and
/// compares; also checks the result's meta against shape inference.
fn check(e: &mut CpuEngine, op: &Op, inputs: &[&CpuTensor], rtol: f64, what: &str) -> CpuTensor {
    let refs: Vec<RefTensor> = inputs.iter().map(|t| to_ref(e, t)).collect();
    let want = eval(op, &refs.iter().collect::<Vec<_>>()).unwrap();
    let got = e
        .execute(op, inputs)
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    let metas: Vec<Meta> = inputs.iter().map(|t| t.meta()).collect();
    assert_eq!(
        got.meta(),
        infer(op, &metas.iter().collect::<Vec<_>>()).unwrap(),
        "{what}: meta"
    );
    assert_close(&to_ref(e, &got), &want, rtol, &format!("{what} ({op})"));
    got
}

fn permute(e: &mut CpuEngine, t: &CpuTensor, perm: &[usize]) -> CpuTensor {
    e.execute(&Op::Permute { perm: perm.into() }, &[t]).unwrap()
}

fn slice(e: &mut CpuEngine, t: &CpuTensor, specs: &[(usize, usize, usize)]) -> CpuTensor {
    let specs = specs
        .iter()
        .map(|&(start, len, step)| SliceSpec { start, len, step })
        .collect();
    e.execute(&Op::Slice { specs }, &[t]).unwrap()
}

fn expand(e: &mut CpuEngine, t: &CpuTensor, shape: &[usize]) -> CpuTensor {
    e.execute(
        &Op::Expand {
            shape: shape.into(),
        },
        &[t],
    )
    .unwrap()
}

/// Contiguous, transposed, stepped-slice and expanded variants of a `[4, 6]`-shaped input.
fn variants(
    e: &mut CpuEngine,
    dtype: DType,
    seed: u64,
    lo: f64,
    hi: f64,
) -> Vec<(&'static str, CpuTensor)> {
    let c = input(e, &[4, 6], dtype, seed, lo, hi);
    let t = input(e, &[6, 4], dtype, seed + 1, lo, hi);
    let t = permute(e, &t, &[1, 0]);
    let big = input(e, &[9, 13], dtype, seed + 2, lo, hi);
    let s = slice(e, &big, &[(1, 4, 2), (0, 6, 2)]);
    let row = input(e, &[1, 6], dtype, seed + 3, lo, hi);
    let x = expand(e, &row, &[4, 6]);
    vec![
        ("contiguous", c),
        ("transposed", t),
        ("stepped slice", s),
        ("expanded", x),
    ]
}

/// A tensor of `dtype` holding exactly `vals` (given as f64).
fn exact(e: &mut CpuEngine, shape: &[usize], dtype: DType, vals: &[f64]) -> CpuTensor {
    let x = e.upload(&TensorData::from_f64(shape, vals)).unwrap();
    e.execute(&Op::Cast { dtype }, &[&x]).unwrap()
}

/// A tensor of `dtype` with small integer values in `lo..=hi` (so comparisons and extremes tie).
fn ints(
    e: &mut CpuEngine,
    shape: &[usize],
    dtype: DType,
    seed: u64,
    lo: i64,
    hi: i64,
) -> CpuTensor {
    let n: usize = shape.iter().product();
    let span = (hi - lo + 1) as f64;
    let vals: Vec<f64> = (0..n)
        .map(|i| lo as f64 + (span * random::uniform(seed, 11, i as u64)).floor())
        .collect();
    exact(e, shape, dtype, &vals)
}

/// Contiguous, transposed, stepped-slice and expanded `[4, 6]` tensors of small integers.
fn int_variants(e: &mut CpuEngine, dtype: DType, seed: u64) -> Vec<(&'static str, CpuTensor)> {
    let c = ints(e, &[4, 6], dtype, seed, -2, 2);
    let t = ints(e, &[6, 4], dtype, seed + 1, -2, 2);
    let t = permute(e, &t, &[1, 0]);
    let big = ints(e, &[9, 13], dtype, seed + 2, -2, 2);
    let s = slice(e, &big, &[(1, 4, 2), (0, 6, 2)]);
    let row = ints(e, &[1, 6], dtype, seed + 3, -2, 2);
    let x = expand(e, &row, &[4, 6]);
    vec![
        ("contiguous", c),
        ("transposed", t),
        ("stepped slice", s),
        ("expanded", x),
    ]
}
