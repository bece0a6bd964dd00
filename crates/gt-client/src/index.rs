//! Basic indexing: integers (drop the axis), ranges with steps, full axes and new axes. Lowered to
//! one `Slice` plus a `Reshape` when axes are dropped or added.

use crate::ops::ok;
use crate::tensor::Tensor;
use gt_core::{Error, Result, Shape};
use gt_ops::{Op, SliceSpec};
use smallvec::SmallVec;

/// One indexing argument (like one entry of `x[0, 1:5:2, :, None]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idx {
    /// A single position (negative counts from the end); the axis is dropped.
    At(isize),
    /// `start..end` every `step` (Python semantics: negative bounds count from the end, out-of-range
    /// bounds are clamped, `step ≥ 1`).
    Range {
        start: Option<isize>,
        end: Option<isize>,
        step: usize,
    },
    /// The whole axis (`:`).
    All,
    /// A new size-1 axis (`None`).
    NewAxis,
}

impl Idx {
    /// `start..end` with a step.
    pub fn step(r: std::ops::Range<isize>, step: usize) -> Idx {
        Idx::Range {
            start: Some(r.start),
            end: Some(r.end),
            step,
        }
    }
}

impl From<isize> for Idx {
    fn from(i: isize) -> Idx {
        Idx::At(i)
    }
}
impl From<std::ops::Range<isize>> for Idx {
    fn from(r: std::ops::Range<isize>) -> Idx {
        Idx::Range {
            start: Some(r.start),
            end: Some(r.end),
            step: 1,
        }
    }
}
impl From<std::ops::RangeFrom<isize>> for Idx {
    fn from(r: std::ops::RangeFrom<isize>) -> Idx {
        Idx::Range {
            start: Some(r.start),
            end: None,
            step: 1,
        }
    }
}
impl From<std::ops::RangeTo<isize>> for Idx {
    fn from(r: std::ops::RangeTo<isize>) -> Idx {
        Idx::Range {
            start: None,
            end: Some(r.end),
            step: 1,
        }
    }
}
impl From<std::ops::RangeFull> for Idx {
    fn from(_: std::ops::RangeFull) -> Idx {
        Idx::All
    }
}

fn clamp_bound(b: isize, d: usize) -> usize {
    let d = d as isize;
    (if b < 0 { b + d } else { b }).clamp(0, d) as usize
}

/// One slice spec per axis of `shape` and the result's dims for indexing with `idx` (integers
/// keep a length-1 spec but drop the axis from the dims; new axes add a 1 to the dims only).
/// `op` names the caller in errors.
pub(crate) fn resolve(
    op: &str,
    shape: &Shape,
    idx: &[Idx],
) -> Result<(SmallVec<[SliceSpec; 6]>, Vec<usize>)> {
    let consumed = idx.iter().filter(|i| !matches!(i, Idx::NewAxis)).count();
    if consumed > shape.rank() {
        return Err(Error::shape(
            op,
            format!("{consumed} indices for a tensor of shape {shape}"),
        ));
    }
    let dims = shape.dims();
    let mut specs: SmallVec<[SliceSpec; 6]> = SmallVec::new();
    let mut out_dims: Vec<usize> = Vec::new();
    let mut axis = 0;
    for i in idx {
        match *i {
            Idx::NewAxis => out_dims.push(1),
            Idx::At(p) => {
                let d = dims[axis];
                let pos = if p < 0 { p + d as isize } else { p };
                if pos < 0 || pos >= d as isize {
                    return Err(Error::shape(
                        op,
                        format!("index {p} is out of bounds for axis {axis} of shape {shape}"),
                    ));
                }
                specs.push(SliceSpec {
                    start: pos as usize,
                    len: 1,
                    step: 1,
                });
                axis += 1;
            }
            Idx::Range { start, end, step } => {
                if step == 0 {
                    return Err(Error::invalid(op, "slice step must be at least 1"));
                }
                let d = dims[axis];
                let s = start.map_or(0, |b| clamp_bound(b, d));
                let e = end.map_or(d, |b| clamp_bound(b, d));
                let len = if e > s { (e - s).div_ceil(step) } else { 0 };
                specs.push(SliceSpec {
                    start: s.min(d),
                    len,
                    step,
                });
                out_dims.push(len);
                axis += 1;
            }
            Idx::All => {
                let d = dims[axis];
                specs.push(SliceSpec {
                    start: 0,
                    len: d,
                    step: 1,
                });
                out_dims.push(d);
                axis += 1;
            }
        }
    }
    for &d in &dims[axis..] {
        specs.push(SliceSpec {
            start: 0,
            len: d,
            step: 1,
        });
        out_dims.push(d);
    }
    Ok((specs, out_dims))
}

impl Tensor {
    /// Indexes with `idx` (missing trailing axes are taken whole).
    pub fn try_index(&self, idx: &[Idx]) -> Result<Tensor> {
        let (specs, out_dims) = resolve("index", self.shape(), idx)?;
        let whole = specs
            .iter()
            .zip(self.dims())
            .all(|(s, &d)| s.start == 0 && s.len == d && s.step == 1);
        let sliced = if whole {
            self.clone()
        } else {
            self.op(
                Op::Slice {
                    specs: specs.into_vec().into(),
                },
                &[],
            )?
        };
        if sliced.dims() == out_dims.as_slice() {
            return Ok(sliced);
        }
        sliced.op(
            Op::Reshape {
                shape: Shape::new(out_dims),
            },
            &[],
        )
    }

    /// Indexing (panics on an out-of-bounds index).
    #[track_caller]
    pub fn index(&self, idx: &[Idx]) -> Tensor {
        ok(self.try_index(idx))
    }

    /// `start..end` every `step` along one axis.
    pub fn try_slice(&self, axis: isize, start: isize, end: isize, step: usize) -> Result<Tensor> {
        let ax = gt_core::shape::normalize_axis(axis, self.rank()).ok_or_else(|| {
            Error::axis(
                "slice",
                format!("axis {axis} is out of range for shape {}", self.shape()),
            )
        })?;
        let mut idx = vec![Idx::All; ax];
        idx.push(Idx::Range {
            start: Some(start),
            end: Some(end),
            step,
        });
        self.try_index(&idx)
    }

    /// Slice along one axis (panics on an axis error).
    #[track_caller]
    pub fn slice(&self, axis: isize, start: isize, end: isize, step: usize) -> Tensor {
        ok(self.try_slice(axis, start, end, step))
    }
}
