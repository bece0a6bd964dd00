//! Validation and iteration planning of a [`LoopSpec`], shared by the code generators (the
//! blocked interpreter and the Cranelift JIT): every operand defined before use, dtypes that fit
//! each node, one stride per axis, at least one output, no input reaching before its storage.
//! A spec that passes gets a [`LoopPlan`]: each node's dtype and the iteration space with axes
//! merged wherever every input's strides allow (row-major order is unchanged by the merge, so a
//! linear `range` means the same elements before and after).

use super::loop_ir::{LoopNode, LoopSpec};
use gt_core::{DType, Error, Result};
use smallvec::SmallVec;

/// The op name in validation errors.
const OP: &str = "fused loop";

/// What the generators need from a validated spec.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopPlan {
    /// The dtype of every node.
    pub dtypes: Vec<DType>,
    /// The coalesced iteration space (at least one axis; `[1]` for a scalar space).
    pub dims: SmallVec<[usize; 6]>,
    /// Per input, its strides over [`LoopPlan::dims`].
    pub strides: Vec<SmallVec<[isize; 6]>>,
    /// Elements in the iteration space.
    pub numel: usize,
}

fn invalid(msg: String) -> Error {
    Error::invalid(OP, msg)
}

fn dtype_err(msg: String) -> Error {
    Error::dtype(OP, msg)
}

/// Checks `spec` and plans its iteration; the error names the offending node, input or output.
pub fn validate(spec: &LoopSpec) -> Result<LoopPlan> {
    let rank = spec.shape.rank();
    let dims = spec.shape.dims();
    let numel = spec.shape.numel();
    for (k, input) in spec.inputs.iter().enumerate() {
        if input.strides.len() != rank {
            return Err(invalid(format!(
                "input {k} has {} strides but the iteration space {} has rank {rank}",
                input.strides.len(),
                spec.shape
            )));
        }
        if numel > 0 {
            // The lowest element the input reaches must not lie before its storage.
            let mut low = input.offset as i128;
            for (&d, &s) in dims.iter().zip(&input.strides) {
                low += (s as i128 * (d as i128 - 1)).min(0);
            }
            if low < 0 {
                return Err(invalid(format!(
                    "input {k} (offset {}, strides {:?}) reaches element {low}, before the start \
                     of its storage",
                    input.offset,
                    input.strides.as_slice()
                )));
            }
        }
    }
    if spec.outputs.is_empty() {
        return Err(invalid("the loop has no outputs".into()));
    }
    let mut dtypes: Vec<DType> = Vec::with_capacity(spec.nodes.len());
    for (i, node) in spec.nodes.iter().enumerate() {
        let operand = |a: u32| -> Result<DType> {
            dtypes.get(a as usize).copied().ok_or_else(|| {
                invalid(format!(
                    "node {i} ({node:?}) uses node {a}, which is not defined before it"
                ))
            })
        };
        let float = |what: &str, d: DType| -> Result<()> {
            if d.is_float() {
                Ok(())
            } else {
                Err(dtype_err(format!(
                    "node {i} ({node:?}): {what} needs a float operand, got {d}"
                )))
            }
        };
        let same = |a: DType, b: DType| -> Result<()> {
            if a == b {
                Ok(())
            } else {
                Err(dtype_err(format!(
                    "node {i} ({node:?}): operands of different dtypes {a} and {b}"
                )))
            }
        };
        let d = match node {
            LoopNode::Load(k) => match spec.inputs.get(*k as usize) {
                Some(input) => input.dtype,
                None => {
                    return Err(invalid(format!(
                        "node {i} loads input {k}, but the loop has {} inputs",
                        spec.inputs.len()
                    )))
                }
            },
            LoopNode::Const { dtype, .. } => *dtype,
            LoopNode::Unary(op, a) => {
                let da = operand(*a)?;
                float(op.name(), da)?;
                da
            }
            LoopNode::Binary(op, a, b) => {
                let (da, db) = (operand(*a)?, operand(*b)?);
                same(da, db)?;
                float(op.name(), da)?;
                da
            }
            LoopNode::Compare(_, a, b) => {
                let (da, db) = (operand(*a)?, operand(*b)?);
                same(da, db)?;
                DType::Bool
            }
            LoopNode::Where(c, a, b) => {
                let (dc, da, db) = (operand(*c)?, operand(*a)?, operand(*b)?);
                if dc != DType::Bool {
                    return Err(dtype_err(format!(
                        "node {i} ({node:?}): the condition of where must be bool, got {dc}"
                    )));
                }
                same(da, db)?;
                da
            }
            LoopNode::Cast(to, a) => {
                operand(*a)?;
                *to
            }
        };
        dtypes.push(d);
    }
    for (j, &o) in spec.outputs.iter().enumerate() {
        if o as usize >= spec.nodes.len() {
            return Err(invalid(format!(
                "output {j} is node {o}, but the loop has {} nodes",
                spec.nodes.len()
            )));
        }
    }
    let all: Vec<&[isize]> = spec.inputs.iter().map(|x| x.strides.as_slice()).collect();
    let (dims, strides) = coalesce(dims, &all);
    Ok(LoopPlan {
        dtypes,
        dims,
        strides,
        numel,
    })
}

/// Merges adjacent axes that are contiguous for every operand (and drops axes of size 1), so
/// inner loops run as long as possible. Always returns at least one axis.
pub fn coalesce(
    dims: &[usize],
    strides: &[&[isize]],
) -> (SmallVec<[usize; 6]>, Vec<SmallVec<[isize; 6]>>) {
    let mut od: SmallVec<[usize; 6]> = SmallVec::new();
    let mut os: Vec<SmallVec<[isize; 6]>> = vec![SmallVec::new(); strides.len()];
    for i in (0..dims.len()).rev() {
        let d = dims[i];
        if d == 1 {
            continue;
        }
        let merge = match od.last() {
            Some(&inner) => (0..strides.len()).all(|k| {
                let s_in = *os[k].last().expect("one stride per kept axis");
                strides[k][i] == s_in * inner as isize
            }),
            None => false,
        };
        if merge {
            *od.last_mut().expect("checked") *= d;
        } else {
            od.push(d);
            for (o, s) in os.iter_mut().zip(strides) {
                o.push(s[i]);
            }
        }
    }
    if od.is_empty() {
        od.push(1);
        for o in os.iter_mut() {
            o.push(0);
        }
    }
    od.reverse();
    for o in os.iter_mut() {
        o.reverse();
    }
    (od, os)
}

/// The multi-index of row-major linear position `pos` in `dims`.
pub fn unravel(dims: &[usize], mut pos: usize) -> SmallVec<[usize; 6]> {
    let mut idx: SmallVec<[usize; 6]> = smallvec::smallvec![0; dims.len()];
    for i in (0..dims.len()).rev() {
        idx[i] = pos % dims[i];
        pos /= dims[i];
    }
    idx
}
