//! Seeded random multi-node programs over random layouts: every generator against the eager
//! kernels run node by node (which also makes the generators agree with each other bit for bit).

use super::*;
use gt_ops::{BinaryOp, CompareOp, UnaryOp};

/// splitmix64: a tiny deterministic generator, so a failing seed reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// A random input of `dtype` readable over `shape`: contiguous, transposed, sliced with an
/// offset, or broadcast along random axes.
fn random_input(e: &mut CpuEngine, rng: &mut Rng, shape: &[usize], dtype: DType) -> CpuTensor {
    let seed = rng.next() % 1000;
    let n: usize = shape.iter().product();
    match rng.below(4) {
        0 => exact(e, shape, dtype, &special_values(n, seed)),
        1 => {
            let rev: Vec<usize> = shape.iter().rev().copied().collect();
            let t = exact(e, &rev, dtype, &special_values(n, seed));
            let perm: Vec<usize> = (0..shape.len()).rev().collect();
            permute(e, &t, &perm)
        }
        2 => {
            let step = 1 + rng.below(2);
            let big: Vec<usize> = shape.iter().map(|&d| d * step + 1).collect();
            let m: usize = big.iter().product();
            let t = exact(e, &big, dtype, &special_values(m, seed));
            let specs: Vec<(usize, usize, usize)> = shape.iter().map(|&d| (1, d, step)).collect();
            slice(e, &t, &specs)
        }
        _ => {
            let small: Vec<usize> = shape
                .iter()
                .map(|&d| if rng.below(2) == 0 { 1 } else { d })
                .collect();
            let m: usize = small.iter().product();
            exact(e, &small, dtype, &special_values(m, seed))
        }
    }
}

/// Indices of the nodes so far whose dtype is `d`.
fn of_dtype(dtypes: &[DType], d: DType) -> Vec<u32> {
    (0..dtypes.len() as u32)
        .filter(|&i| dtypes[i as usize] == d)
        .collect()
}

/// An operand of dtype `d`: usually an existing node, else a new cast (or constant).
fn operand(rng: &mut Rng, nodes: &mut Vec<LoopNode>, dtypes: &mut Vec<DType>, d: DType) -> u32 {
    let have = of_dtype(dtypes, d);
    if !have.is_empty() && rng.below(5) != 0 {
        return rng.pick(&have);
    }
    let values = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        0.25,
        2.0,
        f64::NAN,
        f64::INFINITY,
        3.7,
    ];
    let node = if rng.below(3) == 0 {
        LoopNode::Const {
            value: rng.pick(&values),
            dtype: d,
        }
    } else {
        LoopNode::Cast(d, rng.below(dtypes.len()) as u32)
    };
    nodes.push(node);
    dtypes.push(d);
    (nodes.len() - 1) as u32
}

/// A random well-typed program over loads of `inputs`: unary/binary chains, comparisons feeding
/// `where`, casts between every dtype and constants.
fn random_nodes(rng: &mut Rng, inputs: &[DType], len: usize) -> (Vec<LoopNode>, Vec<DType>) {
    let mut nodes: Vec<LoopNode> = (0..inputs.len() as u32).map(LoopNode::Load).collect();
    let mut dtypes: Vec<DType> = inputs.to_vec();
    while nodes.len() < inputs.len() + len {
        let float = rng.pick(&FLOATS);
        let (node, d) = match rng.below(6) {
            0 | 1 => {
                let a = operand(rng, &mut nodes, &mut dtypes, float);
                (LoopNode::Unary(rng.pick(&UnaryOp::ALL), a), float)
            }
            2 | 3 => {
                let a = operand(rng, &mut nodes, &mut dtypes, float);
                let b = operand(rng, &mut nodes, &mut dtypes, float);
                (LoopNode::Binary(rng.pick(&BinaryOp::ALL), a, b), float)
            }
            4 => {
                let d = rng.pick(&ALL_DTYPES);
                let a = operand(rng, &mut nodes, &mut dtypes, d);
                let b = operand(rng, &mut nodes, &mut dtypes, d);
                (
                    LoopNode::Compare(rng.pick(&CompareOp::ALL), a, b),
                    DType::Bool,
                )
            }
            _ => {
                let d = rng.pick(&ALL_DTYPES);
                let c = operand(rng, &mut nodes, &mut dtypes, DType::Bool);
                let a = operand(rng, &mut nodes, &mut dtypes, d);
                let b = operand(rng, &mut nodes, &mut dtypes, d);
                (LoopNode::Where(c, a, b), d)
            }
        };
        nodes.push(node);
        dtypes.push(d);
    }
    (nodes, dtypes)
}

#[test]
fn random_programs_match_eager() {
    let mut e = CpuEngine::new(1);
    for seed in 0..60 {
        let mut rng = Rng(seed);
        let rank = 1 + rng.below(3);
        let mut shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(9)).collect();
        if seed % 5 == 0 {
            // Several blocks, with rows that straddle block boundaries.
            shape[rank - 1] = 150 + rng.below(200);
        }
        let ninputs = 1 + rng.below(4);
        let dtypes: Vec<DType> = (0..ninputs)
            .map(|_| {
                rng.pick(&[
                    DType::F32,
                    DType::F32,
                    DType::F64,
                    DType::F64,
                    DType::I64,
                    DType::Bool,
                ])
            })
            .collect();
        let inputs: Vec<CpuTensor> = dtypes
            .iter()
            .map(|&d| random_input(&mut e, &mut rng, &shape, d))
            .collect();
        let len = 2 + rng.below(10);
        let (nodes, node_dtypes) = random_nodes(&mut rng, &dtypes, len);
        let last = (nodes.len() - 1) as u32;
        let mut outputs = vec![last, rng.below(nodes.len()) as u32];
        if rng.below(2) == 0 {
            outputs.push(last);
        }
        let refs: Vec<&CpuTensor> = inputs.iter().collect();
        let spec = spec_of(&Shape::new(&shape), &refs, nodes, outputs);
        assert_eq!(node_dtypes.len(), spec.nodes.len());
        check(&mut e, &spec, &refs, &format!("seed {seed}"));
    }
}

/// A rank-0 iteration space (one element) and an empty one.
#[test]
fn scalar_and_empty_spaces() {
    let mut e = CpuEngine::new(1);
    let x = exact(&mut e, &[], DType::F32, &[-2.0]);
    let nodes = vec![LoopNode::Load(0), LoopNode::Unary(UnaryOp::Exp, 0)];
    let spec = spec_of(&Shape::scalar(), &[&x], nodes.clone(), vec![1, 0]);
    check(&mut e, &spec, &[&x], "scalar");
    let z = exact(&mut e, &[0, 3], DType::F32, &[]);
    let spec = spec_of(z.shape(), &[&z], nodes, vec![1]);
    for (name, generate) in generators() {
        let k = generate(&spec).unwrap();
        let got = run_kernel(&*k, &spec, &[DType::F32, DType::F32], &[&z], &[]);
        assert!(got[0].is_empty(), "{name}");
    }
}

/// Random chains of float ops over contiguous and broadcast f32/f64 inputs: the programs the
/// JIT runs in 128-bit vectors (asserted; transcendentals through batch calls), with rows long
/// enough for several vector iterations and a scalar tail.
#[test]
fn random_vectorizable_programs_match_eager() {
    use crate::compile::loop_check::validate;
    use crate::compile::loop_jit_simd::vector_type;
    let mut e = CpuEngine::new(1);
    let (unary, binary) = (UnaryOp::ALL, BinaryOp::ALL);
    for seed in 100..130 {
        let mut rng = Rng(seed);
        let dtype = rng.pick(&FLOATS);
        let shape = [1 + rng.below(4), 1 + rng.below(40)];
        let inputs: Vec<CpuTensor> = (0..1 + rng.below(3))
            .map(|i| {
                let s = if i > 0 && rng.below(2) == 0 {
                    [1, shape[1]]
                } else {
                    shape
                };
                exact(
                    &mut e,
                    &s,
                    dtype,
                    &special_values(s[0] * s[1], seed * 10 + i as u64),
                )
            })
            .collect();
        let mut nodes: Vec<LoopNode> = (0..inputs.len() as u32).map(LoopNode::Load).collect();
        nodes.push(LoopNode::Const {
            value: rng.pick(&[0.5, -1.0, 0.0, f64::NAN]),
            dtype,
        });
        for _ in 0..2 + rng.below(8) {
            let n = nodes.len();
            nodes.push(if rng.below(2) == 0 {
                LoopNode::Unary(rng.pick(&unary), rng.below(n) as u32)
            } else {
                let (a, b) = (rng.below(n) as u32, rng.below(n) as u32);
                LoopNode::Binary(rng.pick(&binary), a, b)
            });
        }
        let outputs = vec![(nodes.len() - 1) as u32, rng.below(nodes.len()) as u32];
        let refs: Vec<&CpuTensor> = inputs.iter().collect();
        let spec = spec_of(&Shape::new(shape), &refs, nodes, outputs);
        let plan = validate(&spec).unwrap();
        assert!(
            vector_type(&spec, &plan).is_some(),
            "seed {seed}: not vectorized"
        );
        check(&mut e, &spec, &refs, &format!("vector seed {seed}"));
    }
}
