//! Instruction signatures: a 64-bit hash of what an instruction computes, independent of tensor
//! ids and of per-iteration runtime parameters.
//!
//! Part of the signature: the op and its attributes (scalar constants included: a changed
//! constant is another program), input dtypes and shapes, and the dataflow. Not part of it: the
//! seed and stream of `Op::Random` and the bytes of an upload — they change every iteration
//! without changing the program, and the compiled program takes them from the instruction.

use gt_core::{DType, Shape};
use gt_ops::{Meta, Op};

/// Mixes `x` into `h` (FxHash's step: one rotate, xor and multiply).
#[inline]
pub fn mix(h: u64, x: u64) -> u64 {
    (h.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

/// A final avalanche so that nearby inputs give unrelated hashes.
#[inline]
pub fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

fn dtype_code(d: DType) -> u64 {
    match d {
        DType::F32 => 1,
        DType::F64 => 2,
        DType::I64 => 3,
        DType::Bool => 4,
    }
}

/// Hash of a shape (rank and dims).
pub fn shape_hash(h: u64, s: &Shape) -> u64 {
    let mut h = mix(h, s.dims().len() as u64);
    for &d in s.dims() {
        h = mix(h, d as u64);
    }
    h
}

/// Hash of a tensor's dtype and shape.
pub fn meta_hash(h: u64, m: &Meta) -> u64 {
    shape_hash(mix(h, dtype_code(m.dtype)), &m.shape)
}

fn usizes(mut h: u64, xs: &[usize]) -> u64 {
    h = mix(h, xs.len() as u64);
    for &x in xs {
        h = mix(h, x as u64);
    }
    h
}

/// Hash of an op and its attributes, leaving out `Random`'s seed and stream.
pub fn op_hash(op: &Op) -> u64 {
    let f = |x: f64| x.to_bits();
    match op {
        Op::Full {
            shape,
            value,
            dtype,
        } => shape_hash(mix(mix(1, f(*value)), dtype_code(*dtype)), shape),
        Op::Arange {
            start,
            step,
            len,
            dtype,
        } => mix(
            mix(mix(mix(2, f(*start)), f(*step)), *len as u64),
            dtype_code(*dtype),
        ),
        Op::Random {
            dist,
            shape,
            dtype,
            seed: _,
            stream: _,
        } => shape_hash(mix(mix(3, *dist as u64), dtype_code(*dtype)), shape),
        Op::Unary(u) => mix(4, *u as u64),
        Op::Binary(b) => mix(5, *b as u64),
        Op::BinaryScalar {
            op,
            scalar,
            scalar_left,
        } => mix(mix(mix(6, *op as u64), f(*scalar)), *scalar_left as u64),
        Op::MatMul => 7,
        Op::Reduce { op, axes, keepdim } => usizes(mix(mix(8, *op as u64), *keepdim as u64), axes),
        Op::Reshape { shape } => shape_hash(9, shape),
        Op::Permute { perm } => usizes(10, perm),
        Op::Slice { specs } | Op::SliceAssign { specs } => {
            let mut h = mix(
                if matches!(op, Op::Slice { .. }) {
                    11
                } else {
                    12
                },
                specs.len() as u64,
            );
            for s in specs {
                h = mix(mix(mix(h, s.start as u64), s.len as u64), s.step as u64);
            }
            h
        }
        Op::Expand { shape } => shape_hash(13, shape),
        Op::Cast { dtype } => mix(14, dtype_code(*dtype)),
        Op::Compare(c) => mix(15, *c as u64),
        Op::CompareScalar { op, scalar } => mix(mix(16, *op as u64), f(*scalar)),
        Op::Where => 17,
        Op::ArgReduce { op, axis, keepdim } => {
            mix(mix(mix(18, *op as u64), *axis as u64), *keepdim as u64)
        }
        Op::Cat { axis } => mix(19, *axis as u64),
        Op::IndexSelect { axis } => mix(20, *axis as u64),
        Op::Gather { axis } => mix(21, *axis as u64),
        Op::IndexAdd { axis } => mix(22, *axis as u64),
        Op::ScatterAdd { axis } => mix(23, *axis as u64),
    }
}

/// Whether two ops compute the same function (equal but for `Random`'s seed and stream).
pub fn same_program_op(a: &Op, b: &Op) -> bool {
    match (a, b) {
        (
            Op::Random {
                dist: d1,
                shape: s1,
                dtype: t1,
                ..
            },
            Op::Random {
                dist: d2,
                shape: s2,
                dtype: t2,
                ..
            },
        ) => d1 == d2 && s1 == s2 && t1 == t2,
        _ => a == b,
    }
}

/// How an instruction names one of its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRef {
    /// Produced this many instructions ago in the same stream segment.
    Ago(u64),
    /// External input number `j` (first-use order within the segment).
    External(u32),
}

/// Hash of one input reference; externals carry their meta (`None`: unknown or failed).
pub fn input_hash(h: u64, r: InputRef, meta: Option<&Meta>) -> u64 {
    match r {
        InputRef::Ago(k) => mix(mix(h, 0xA60), k),
        InputRef::External(j) => {
            let h = mix(mix(h, 0xE7), j as u64);
            match meta {
                Some(m) => meta_hash(h, m),
                None => mix(h, 0xDEAD),
            }
        }
    }
}

/// Kind tags of the instructions a trace may hold.
pub const TAG_EXEC: u64 = 0x1001;
/// An upload (dtype and shape hashed, bytes not).
pub const TAG_UPLOAD: u64 = 0x1002;
/// A free.
pub const TAG_FREE: u64 = 0x1003;

#[cfg(test)]
mod tests {
    use super::*;
    use gt_ops::{BinaryOp, Dist};

    #[test]
    fn random_seeds_are_parameters_and_constants_are_not() {
        let r = |seed| Op::Random {
            dist: Dist::Normal,
            shape: [4, 4].into(),
            dtype: DType::F32,
            seed,
            stream: seed * 3,
        };
        assert_eq!(op_hash(&r(1)), op_hash(&r(2)));
        assert!(same_program_op(&r(1), &r(2)));
        let s = |scalar| Op::BinaryScalar {
            op: BinaryOp::Mul,
            scalar,
            scalar_left: false,
        };
        assert_ne!(op_hash(&s(0.5)), op_hash(&s(0.25)));
        assert!(!same_program_op(&s(0.5), &s(0.25)));
    }
}
