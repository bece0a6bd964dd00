//! Placements of distributed tensors: a full copy on each of several workers (Replicate), pieces
//! along one axis (Shard, even or uneven extents), or per-worker addends of the value
//! (Partial sum). Part `i` of a distributed tensor lives on `workers[i]` under the tensor's own
//! key, so every worker names its part the same way and freeing means one `Free` per worker.

use gt_core::{Shape, WorkerId};
use gt_ops::{Meta, SliceSpec, SliceSpecs};

/// How the value is spread over the parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Every part is the whole tensor.
    Replicate,
    /// Part `i` is `extents[i]` consecutive indices along `axis`, in part order.
    Shard { axis: usize, extents: Vec<usize> },
    /// The tensor is the sum of the parts (each of the full shape).
    Partial,
}

/// A tensor spread over several workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dist {
    /// How the parts make up the tensor.
    pub layout: Layout,
    /// The worker of each part, in part order (distinct).
    pub workers: Vec<WorkerId>,
}

/// `dim` split into `n` extents as even as possible (the first `dim % n` get one more); never
/// more parts than elements.
pub fn even_extents(dim: usize, n: usize) -> Vec<usize> {
    let n = n.min(dim).max(1);
    (0..n).map(|i| dim / n + usize::from(i < dim % n)).collect()
}

/// Start offset of each extent.
pub fn offsets(extents: &[usize]) -> Vec<usize> {
    let mut acc = 0;
    extents
        .iter()
        .map(|e| {
            let o = acc;
            acc += e;
            o
        })
        .collect()
}

impl Layout {
    /// The shape of part `i` of a tensor of shape `full`.
    pub fn part_shape(&self, full: &Shape, i: usize) -> Shape {
        match self {
            Layout::Replicate | Layout::Partial => full.clone(),
            Layout::Shard { axis, extents } => {
                let mut d = full.dims().to_vec();
                d[*axis] = extents[i];
                Shape::new(d)
            }
        }
    }

    /// The meta of part `i`.
    pub fn part_meta(&self, full: &Meta, i: usize) -> Meta {
        Meta::new(self.part_shape(&full.shape, i), full.dtype)
    }

    /// Short text for logs and errors (`shard(0, [3, 2])`, `replicate`, `partial`).
    pub fn describe(&self) -> String {
        match self {
            Layout::Replicate => "replicate".into(),
            Layout::Partial => "partial(sum)".into(),
            Layout::Shard { axis, extents } => format!("shard({axis}, {extents:?})"),
        }
    }
}

/// Slice specs taking `[start, start + len)` along `axis` of `shape`, everything elsewhere.
pub fn slice_specs(shape: &Shape, axis: usize, start: usize, len: usize) -> SliceSpecs {
    shape
        .dims()
        .iter()
        .enumerate()
        .map(|(i, &d)| match i == axis {
            true => SliceSpec {
                start,
                len,
                step: 1,
            },
            false => SliceSpec {
                start: 0,
                len: d,
                step: 1,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_are_even_or_uneven_and_never_empty() {
        assert_eq!(even_extents(6, 2), vec![3, 3]);
        assert_eq!(even_extents(7, 3), vec![3, 2, 2]);
        assert_eq!(even_extents(2, 3), vec![1, 1]);
        assert_eq!(offsets(&[3, 2, 2]), vec![0, 3, 5]);
        let l = Layout::Shard {
            axis: 1,
            extents: vec![3, 2],
        };
        assert_eq!(l.part_shape(&Shape::new([4, 5]), 1), Shape::new([4, 2]));
        assert_eq!(
            Layout::Partial.part_shape(&Shape::new([4, 5]), 1),
            Shape::new([4, 5])
        );
        let s = slice_specs(&Shape::new([4, 5]), 1, 3, 2);
        assert_eq!((s[0].len, s[1].start, s[1].len), (4, 3, 2));
    }
}
