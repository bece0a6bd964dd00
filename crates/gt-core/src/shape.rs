//! Tensor shapes: dimensions, element counts, contiguous strides and NumPy broadcasting.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Dimension storage; tensors of rank ≤ 6 never allocate.
pub type Dims = SmallVec<[usize; 6]>;

/// The shape of a tensor (row-major).
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Shape(pub Dims);

impl Shape {
    /// A shape from any list of dimensions.
    pub fn new(dims: impl AsRef<[usize]>) -> Shape {
        Shape(SmallVec::from_slice(dims.as_ref()))
    }
    /// The 0-d (scalar) shape.
    pub fn scalar() -> Shape {
        Shape(SmallVec::new())
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major strides in elements.
    pub fn contiguous_strides(&self) -> SmallVec<[isize; 6]> {
        let mut strides: SmallVec<[isize; 6]> = SmallVec::from_elem(0, self.rank());
        let mut acc = 1isize;
        for i in (0..self.rank()).rev() {
            strides[i] = acc;
            acc *= self.0[i] as isize;
        }
        strides
    }
    /// Resolves a possibly negative axis against this rank.
    pub fn axis(&self, axis: isize) -> Option<usize> {
        normalize_axis(axis, self.rank())
    }
    /// NumPy broadcasting of two shapes; `None` when they are incompatible.
    pub fn broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
        let rank = a.rank().max(b.rank());
        let mut out: Dims = SmallVec::from_elem(0, rank);
        for i in 0..rank {
            let da = dim_from_right(a, rank - 1 - i);
            let db = dim_from_right(b, rank - 1 - i);
            out[i] = match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return None,
            };
        }
        Some(Shape(out))
    }
}

fn dim_from_right(s: &Shape, from_right: usize) -> usize {
    if from_right < s.rank() {
        s.0[s.rank() - 1 - from_right]
    } else {
        1
    }
}

/// Resolves a possibly negative axis against `rank`.
pub fn normalize_axis(axis: isize, rank: usize) -> Option<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0.as_slice())
    }
}
impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0.as_slice())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Shape {
        Shape::new(d)
    }
}
impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Shape {
        Shape::new(d)
    }
}
impl From<Dims> for Shape {
    fn from(d: Dims) -> Shape {
        Shape(d)
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Shape {
        Shape::new(d)
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Shape {
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        let b = |x: &[usize], y: &[usize]| Shape::broadcast(&Shape::new(x), &Shape::new(y));
        assert_eq!(b(&[2, 3], &[3]), Some(Shape::new([2, 3])));
        assert_eq!(b(&[4, 1, 3], &[5, 1]), Some(Shape::new([4, 5, 3])));
        assert_eq!(b(&[], &[2, 2]), Some(Shape::new([2, 2])));
        assert_eq!(b(&[2, 3], &[4]), None);
    }

    #[test]
    fn strides_and_axes() {
        let s = Shape::new([2, 3, 4]);
        assert_eq!(s.contiguous_strides().as_slice(), &[12, 4, 1]);
        assert_eq!(s.numel(), 24);
        assert_eq!(s.axis(-1), Some(2));
        assert_eq!(s.axis(3), None);
        assert_eq!(Shape::scalar().numel(), 1);
    }
}
