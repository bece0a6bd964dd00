//! Strided layouts and the iteration machinery the kernels share.
//!
//! A [`Layout`] maps a multi-index to an element of a buffer: `offset + Σ idx[i] * strides[i]`.
//! View ops (permute, slice, expand, reshape of contiguous data) only build a new layout. Kernels
//! iterate an output in row-major order; [`coalesce`] merges dimensions that are contiguous for
//! every operand and [`for_each_run`] walks the result in runs along the innermost dimension, so
//! inner loops are plain strided (often unit-stride or broadcast) loops.

use gt_core::Shape;
use gt_ops::SliceSpec;
use smallvec::{smallvec, SmallVec};

/// Strides in elements, one per dimension.
///
/// Inline for up to 4 dimensions (higher ranks spill to the heap): that keeps a [`CpuTensor`]
/// (`super::CpuTensor`) under 128 bytes, which is where moving one stops being a few vector
/// stores and becomes a call to `memmove`. A tensor is moved several times per instruction
/// (kernel result, slot, table entry); on the seed-size MLP step those calls were the largest
/// single item of the compiled worker's profile.
pub type Strides = SmallVec<[isize; 4]>;

/// Dimension sizes of an iteration space.
pub type Dims = SmallVec<[usize; 6]>;

/// How a tensor's elements sit in its buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// The logical shape.
    pub shape: Shape,
    /// Distance in elements between neighbours along each axis (0 for broadcast axes).
    pub strides: Strides,
    /// Position of element `[0, …, 0]` in the buffer, in elements.
    pub offset: usize,
}

/// Field by field with fixed-size copies (the derived `Clone` copies a `SmallVec` element by
/// element): tensors are cloned for every external input and result of a compiled run.
impl Clone for Layout {
    #[inline]
    fn clone(&self) -> Layout {
        Layout {
            shape: copy_shape(&self.shape),
            strides: small4(&self.strides),
            offset: self.offset,
        }
    }
}

impl Layout {
    /// Row-major layout of `shape` starting at element 0.
    pub fn contiguous(shape: Shape) -> Layout {
        Layout::contiguous_at(shape, 0)
    }

    /// Row-major layout of `shape` starting at element `offset`.
    pub fn contiguous_at(shape: Shape, offset: usize) -> Layout {
        let strides = contiguous_strides(shape.dims());
        Layout {
            shape,
            strides,
            offset,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// Whether the elements are row-major and gap-free from `offset` (size-1 axes may have any
    /// stride).
    pub fn is_contiguous(&self) -> bool {
        let dims = self.shape.dims();
        if dims.contains(&0) {
            return true;
        }
        let mut expected = 1isize;
        for (&d, &s) in dims.iter().zip(&self.strides).rev() {
            if d != 1 {
                if s != expected {
                    return false;
                }
                expected *= d as isize;
            }
        }
        true
    }

    /// One past the highest element index this layout can reach (0 for an empty tensor).
    pub fn end(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        let far: isize = self
            .shape
            .dims()
            .iter()
            .zip(&self.strides)
            .map(|(&d, &s)| (d as isize - 1) * s.max(0))
            .sum();
        self.offset + far as usize + 1
    }

    /// The axes reordered: `out.dim(i) = self.dim(perm[i])`.
    pub fn permute(&self, perm: &[usize]) -> Layout {
        let dims = self.shape.dims();
        Layout {
            shape: Shape(perm.iter().map(|&p| dims[p]).collect()),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        }
    }

    /// A basic slice, one spec per axis (already checked by shape inference).
    pub fn slice(&self, specs: &[SliceSpec]) -> Layout {
        let shape = Shape(specs.iter().map(|s| s.len).collect());
        if shape.numel() == 0 {
            // Nothing is ever read; keep the offset inside the buffer.
            return Layout::contiguous_at(shape, 0);
        }
        let mut offset = self.offset as isize;
        let mut strides = Strides::with_capacity(specs.len());
        for (s, &st) in specs.iter().zip(&self.strides) {
            offset += s.start as isize * st;
            strides.push(st * s.step as isize);
        }
        Layout {
            shape,
            strides,
            offset: offset as usize,
        }
    }

    /// Strides that read this layout broadcast to `out` (NumPy rules, already checked): new
    /// leading axes and stretched size-1 axes get stride 0.
    pub fn broadcast_strides(&self, out: &Shape) -> Strides {
        let od = out.dims();
        let id = self.shape.dims();
        let lead = od.len() - id.len();
        let mut strides: Strides = smallvec![0; od.len()];
        for (i, (&d, &s)) in id.iter().zip(&self.strides).enumerate() {
            strides[lead + i] = if d == od[lead + i] { s } else { 0 };
        }
        strides
    }

    /// This layout broadcast to `out` without copying.
    pub fn expand(&self, out: &Shape) -> Layout {
        Layout {
            shape: copy_shape(out),
            strides: self.broadcast_strides(out),
            offset: self.offset,
        }
    }
}

/// A small vector holding `src`. When it fits inline it copies a fixed-size array (no call to
/// `memcpy` with a variable length, which dominates at these sizes).
#[inline]
fn small<T: Copy + Default, const N: usize>(src: &[T]) -> SmallVec<[T; N]>
where
    [T; N]: smallvec::Array<Item = T>,
{
    if src.len() > N {
        return SmallVec::from_slice(src);
    }
    let mut buf = [T::default(); N];
    for (i, b) in buf.iter_mut().enumerate() {
        if let Some(&v) = src.get(i) {
            *b = v;
        }
    }
    SmallVec::from_buf_and_len(buf, src.len())
}

/// [`small`] with the inline capacity of [`Strides`].
#[inline]
pub fn small4<T: Copy + Default>(src: &[T]) -> SmallVec<[T; 4]> {
    small(src)
}

/// [`small`] with the inline capacity of a shape's dimensions.
#[inline]
pub fn small6<T: Copy + Default>(src: &[T]) -> SmallVec<[T; 6]> {
    small(src)
}

/// A copy of `s` (cheaper than `Shape::clone`, which copies element by element).
#[inline]
pub fn copy_shape(s: &Shape) -> Shape {
    Shape(small6(s.dims()))
}

/// Row-major strides of `dims`, in elements.
#[inline]
pub fn contiguous_strides(dims: &[usize]) -> Strides {
    let n = dims.len();
    if n > 4 {
        return Shape::new(dims).contiguous_strides().into_iter().collect();
    }
    let mut buf = [0isize; 4];
    let mut acc = 1isize;
    for i in (0..n).rev() {
        buf[i] = acc;
        acc *= dims[i] as isize;
    }
    Strides::from_buf_and_len(buf, n)
}

/// Merges adjacent dimensions that are contiguous with each other in every operand and drops
/// size-1 dimensions. The result walks the same elements in the same (row-major) order and has
/// rank ≥ 1.
pub fn coalesce<const N: usize>(dims: &[usize], strides: [&[isize]; N]) -> (Dims, [Strides; N]) {
    let mut od = Dims::new();
    let mut os: [Strides; N] = std::array::from_fn(|_| Strides::new());
    for i in (0..dims.len()).rev() {
        let d = dims[i];
        if d == 1 {
            continue;
        }
        let merge = match od.last() {
            Some(&inner) => (0..N).all(|k| {
                let s_in = *os[k].last().expect("same rank as dims");
                strides[k][i] == s_in * inner as isize
            }),
            None => false,
        };
        if merge {
            *od.last_mut().expect("checked") *= d;
        } else {
            od.push(d);
            for k in 0..N {
                os[k].push(strides[k][i]);
            }
        }
    }
    if od.is_empty() {
        od.push(1);
        for s in os.iter_mut() {
            s.push(0);
        }
    }
    od.reverse();
    for s in os.iter_mut() {
        s.reverse();
    }
    (od, os)
}

/// Walks flat row-major positions `start .. start + len` of the space `dims` in runs along the
/// last dimension. For each run it calls `f(pos, offsets, run)`: `pos` counts from `start`,
/// `offsets[k]` is operand `k`'s element index of the run's first element (`base[k]` plus the
/// strided position), and the run covers `run` consecutive positions of the last dimension.
#[inline]
pub fn for_each_run<const N: usize>(
    dims: &[usize],
    strides: &[Strides; N],
    base: [usize; N],
    start: usize,
    len: usize,
    mut f: impl FnMut(usize, [usize; N], usize),
) {
    if len == 0 {
        return;
    }
    let rank = dims.len();
    if rank == 1 {
        let offs =
            std::array::from_fn(|k| (base[k] as isize + start as isize * strides[k][0]) as usize);
        f(0, offs, len);
        return;
    }
    let last = rank - 1;
    let inner = dims[last];
    let mut idx: Dims = smallvec![0; rank];
    let mut rem = start;
    for i in (0..rank).rev() {
        idx[i] = rem % dims[i];
        rem /= dims[i];
    }
    // Offset of the current row's first element (idx[last] = 0), per operand.
    let mut row: [isize; N] = std::array::from_fn(|k| {
        let mut o = base[k] as isize;
        for i in 0..last {
            o += idx[i] as isize * strides[k][i];
        }
        o
    });
    let mut col = idx[last];
    let mut pos = 0;
    loop {
        let run = (inner - col).min(len - pos);
        let offs = std::array::from_fn(|k| (row[k] + col as isize * strides[k][last]) as usize);
        f(pos, offs, run);
        pos += run;
        if pos >= len {
            return;
        }
        col = 0;
        for i in (0..last).rev() {
            idx[i] += 1;
            for k in 0..N {
                row[k] += strides[k][i];
            }
            if idx[i] < dims[i] {
                break;
            }
            idx[i] = 0;
            for k in 0..N {
                row[k] -= dims[i] as isize * strides[k][i];
            }
        }
    }
}
