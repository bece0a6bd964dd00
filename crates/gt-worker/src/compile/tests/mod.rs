//! Tests of the fused-loop code generators against the eager CPU kernels, bit for bit.
//!
//! This file holds the harness: it builds a [`LoopSpec`] over real engine tensors (their
//! storage, offsets and broadcast strides), runs every generator over the whole range and over
//! uneven splits of it, and compares each output's bytes with what the eager kernels produce.
//! `ops.rs` covers every op node, `programs.rs` seeded random multi-node programs, and
//! `invalid.rs` the validation errors.

mod invalid;
mod ops;
mod programs;

use super::loop_interp::interpret;
use super::loop_ir::{LoopInput, LoopKernel, LoopNode, LoopSpec};
use super::loop_jit::jit;
use crate::cpu::{CpuEngine, CpuTensor};
use crate::Engine;
use gt_core::{DType, Result, Shape};
use gt_ops::{Op, SliceSpec};
use gt_proto::TensorData;
use std::sync::Arc;

const FLOATS: [DType; 2] = [DType::F32, DType::F64];
const ALL_DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::I64, DType::Bool];

type Generator = fn(&LoopSpec) -> Result<Arc<dyn LoopKernel>>;

/// Every code generator under test.
fn generators() -> Vec<(&'static str, Generator)> {
    vec![("interpreter", interpret), ("jit", jit)]
}

/// Values that exercise every edge of the per-element functions (signed zeros, NaN, infinities,
/// huge, tiny, halves for truncation, values near the i64 limits), padded with pseudo-random
/// values in `[-4, 4)`.
fn special_values(n: usize, seed: u64) -> Vec<f64> {
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -2.5,
        3.0,
        1e-40,
        -1e30,
        88.0,
        -104.0,
        710.0,
        1e20,
        -9.3e18,
        2.0,
    ];
    (0..n)
        .map(|i| {
            let s = (i as u64).wrapping_mul(7).wrapping_add(seed) as usize % (2 * specials.len());
            if s < specials.len() {
                specials[s]
            } else {
                -4.0 + 8.0 * gt_ops::random::uniform(seed, 3, i as u64)
            }
        })
        .collect()
}

/// A contiguous tensor of `dtype` holding `vals` converted by the eager cast.
fn exact(e: &mut CpuEngine, shape: &[usize], dtype: DType, vals: &[f64]) -> CpuTensor {
    let x = e.upload(&TensorData::from_f64(shape, vals)).unwrap();
    e.execute(&Op::Cast { dtype }, &[&x]).unwrap()
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

/// `[5, 7]`-shaped inputs of `dtype` full of special values: contiguous, transposed, a stepped
/// slice with an offset, and a row broadcast down the first axis (stride 0).
fn variants(e: &mut CpuEngine, dtype: DType, seed: u64) -> Vec<(&'static str, CpuTensor)> {
    let c = exact(e, &[5, 7], dtype, &special_values(35, seed));
    let t = exact(e, &[7, 5], dtype, &special_values(35, seed + 1));
    let t = permute(e, &t, &[1, 0]);
    let big = exact(e, &[11, 16], dtype, &special_values(176, seed + 2));
    let s = slice(e, &big, &[(1, 5, 2), (2, 7, 2)]);
    let row = exact(e, &[1, 7], dtype, &special_values(7, seed + 3));
    let x = expand(e, &row, &[5, 7]);
    vec![
        ("contiguous", c),
        ("transposed", t),
        ("sliced", s),
        ("broadcast", x),
    ]
}

/// How `t` is read as an input of a loop over `shape`.
fn loop_input(t: &CpuTensor, shape: &Shape) -> LoopInput {
    LoopInput {
        dtype: t.dtype(),
        offset: t.layout().offset,
        strides: t.layout().broadcast_strides(shape).into_iter().collect(),
    }
}

/// A spec over `shape` reading `inputs` (in order) through `nodes`.
fn spec_of(
    shape: &Shape,
    inputs: &[&CpuTensor],
    nodes: Vec<LoopNode>,
    outputs: Vec<u32>,
) -> LoopSpec {
    LoopSpec {
        shape: shape.clone(),
        inputs: inputs.iter().map(|t| loop_input(t, shape)).collect(),
        nodes,
        outputs,
    }
}

/// Runs `kernel` over `0..n` in the pieces delimited by `cuts`, returning each output's bytes.
fn run_kernel(
    kernel: &dyn LoopKernel,
    spec: &LoopSpec,
    dtypes: &[DType],
    inputs: &[&CpuTensor],
    cuts: &[usize],
) -> Vec<Vec<u8>> {
    let n = spec.shape.numel();
    // u64 backing keeps every output aligned for its dtype.
    let mut outs: Vec<Vec<u64>> = spec
        .outputs
        .iter()
        .map(|&o| vec![0xdead_beef_dead_beef; (n * dtypes[o as usize].size()).div_ceil(8)])
        .collect();
    let ins: Vec<*const u8> = inputs
        .iter()
        .map(|t| t.storage().as_slice::<u8>().as_ptr())
        .collect();
    let ptrs: Vec<*mut u8> = outs.iter_mut().map(|o| o.as_mut_ptr() as *mut u8).collect();
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < n));
    bounds.push(n);
    bounds.sort_unstable();
    bounds.dedup();
    for w in bounds.windows(2) {
        // SAFETY: inputs are live engine tensors the spec was built from, outputs hold n
        // elements each.
        unsafe { kernel.run(&ins, &ptrs, w[0]..w[1]) };
    }
    spec.outputs
        .iter()
        .zip(outs)
        .map(|(&o, v)| {
            bytemuck::cast_slice::<u64, u8>(&v)[..n * dtypes[o as usize].size()].to_vec()
        })
        .collect()
}

/// Evaluates `spec` with the eager kernels, one op per node (constants as 0-d `full` tensors,
/// broadcast like any operand), returning each output's bytes.
fn eager(e: &mut CpuEngine, spec: &LoopSpec, inputs: &[&CpuTensor]) -> Vec<Vec<u8>> {
    let mut vals: Vec<CpuTensor> = Vec::new();
    for node in &spec.nodes {
        let v = match node {
            LoopNode::Load(k) => expand(e, inputs[*k as usize], spec.shape.dims()),
            LoopNode::Const { value, dtype } => {
                let op = Op::Full {
                    shape: Shape::scalar(),
                    value: *value,
                    dtype: *dtype,
                };
                e.execute(&op, &[]).unwrap()
            }
            LoopNode::Unary(op, a) => e.execute(&Op::Unary(*op), &[&vals[*a as usize]]).unwrap(),
            LoopNode::Binary(op, a, b) => {
                let (a, b) = (&vals[*a as usize], &vals[*b as usize]);
                e.execute(&Op::Binary(*op), &[a, b]).unwrap()
            }
            LoopNode::Compare(op, a, b) => {
                let (a, b) = (&vals[*a as usize], &vals[*b as usize]);
                e.execute(&Op::Compare(*op), &[a, b]).unwrap()
            }
            LoopNode::Where(c, a, b) => {
                let (c, a, b) = (&vals[*c as usize], &vals[*a as usize], &vals[*b as usize]);
                e.execute(&Op::Where, &[c, a, b]).unwrap()
            }
            LoopNode::Cast(to, a) => e
                .execute(&Op::Cast { dtype: *to }, &[&vals[*a as usize]])
                .unwrap(),
        };
        vals.push(v);
    }
    spec.outputs
        .iter()
        .map(|&o| {
            let t = expand(e, &vals[o as usize], spec.shape.dims());
            e.download(&t).bytes
        })
        .collect()
}

/// Whether the element bytes `b` hold a NaN.
fn is_nan(b: &[u8], dtype: DType) -> bool {
    match dtype {
        DType::F32 => f32::from_le_bytes(b.try_into().unwrap()).is_nan(),
        DType::F64 => f64::from_le_bytes(b.try_into().unwrap()).is_nan(),
        DType::I64 | DType::Bool => false,
    }
}

/// The first element where two outputs' bytes differ, as a readable message. Every bit counts
/// (signed zeros included) except a NaN's sign and payload: when both operands of an add or
/// multiply are NaN, x86 returns the first one, and which one comes first is the compiler's
/// choice (LLVM commutes operands in the eager kernels' vectorized loops too), so the eager
/// kernels themselves do not fix those bits.
fn diff(got: &[u8], want: &[u8], dtype: DType) -> Option<String> {
    let size = dtype.size();
    let n = want.len() / size;
    (0..n).find_map(|i| {
        let (g, w) = (&got[i * size..][..size], &want[i * size..][..size]);
        (g != w && !(is_nan(g, dtype) && is_nan(w, dtype))).then(|| {
            let show = |b: &[u8]| match dtype {
                DType::F32 => format!("{:?}", f32::from_le_bytes(b.try_into().unwrap())),
                DType::F64 => format!("{:?}", f64::from_le_bytes(b.try_into().unwrap())),
                DType::I64 => format!("{}", i64::from_le_bytes(b.try_into().unwrap())),
                DType::Bool => format!("{}", b[0]),
            };
            format!("element {i}: got {} {g:?}, want {} {w:?}", show(g), show(w))
        })
    })
}

/// Checks every generator on `spec` against `want` (per output bytes), over the whole range and
/// over uneven splits.
fn check_against(spec: &LoopSpec, inputs: &[&CpuTensor], want: &[Vec<u8>], what: &str) {
    let plan = super::loop_check::validate(spec).unwrap_or_else(|e| panic!("{what}: {e}"));
    let n = spec.shape.numel();
    let splits: [Vec<usize>; 3] = [
        vec![],
        vec![n / 3, n / 3 + 1, n.saturating_sub(2)],
        vec![1, 7, 300, 301],
    ];
    for (name, generate) in generators() {
        let kernel = generate(spec).unwrap_or_else(|e| panic!("{what}: {name}: {e}"));
        for cuts in &splits {
            let got = run_kernel(&*kernel, spec, &plan.dtypes, inputs, cuts);
            for (j, (g, w)) in got.iter().zip(want).enumerate() {
                let d = plan.dtypes[spec.outputs[j] as usize];
                if let Some(msg) = diff(g, w, d) {
                    panic!("{what}: {name}, splits {cuts:?}, output {j}: {msg}\n{spec:?}");
                }
            }
        }
    }
}

/// Checks every generator on `spec` against the eager evaluation of its nodes.
fn check(e: &mut CpuEngine, spec: &LoopSpec, inputs: &[&CpuTensor], what: &str) {
    let want = eager(e, spec, inputs);
    check_against(spec, inputs, &want, what);
}
