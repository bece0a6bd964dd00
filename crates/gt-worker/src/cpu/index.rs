//! Data-dependent indexing, concatenation and scatter: `cat`, `index_select`, `gather`,
//! `index_add`, `scatter_add` and `slice_assign`.
//!
//! Pure data movement works on the dtype's bits (`u8`, `u32`, `u64`), so every dtype shares one
//! instantiation per element size. Index tensors are read once up front into a pooled scratch of
//! non-negative positions (negative indices count from the end); an index out of range is an
//! [`Error::Invalid`] before anything is written, never a panic. The accumulating ops add in a
//! fixed order — for each output element, its contributions in row-major order of the source —
//! so results do not depend on threads.

use super::buffer::Buffer;
use super::elementwise::map1;
use super::layout::{coalesce, contiguous_strides, for_each_run, Dims, Layout, Strides};
use super::{CpuEngine, CpuTensor};
use bytemuck::Pod;
use gt_core::{DType, Error, Result};
use gt_ops::{Meta, SliceSpec};

/// Calls `$f::<Bits>($args)` with the unsigned type as wide as `$dtype`'s elements.
macro_rules! by_bits {
    ($dtype:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $dtype {
            DType::Bool => $f::<u8>($($arg),*),
            DType::F32 => $f::<u32>($($arg),*),
            DType::F64 | DType::I64 => $f::<u64>($($arg),*),
        }
    };
}

/// Element types the accumulating ops add (integers wrap on overflow).
trait AddElem: Pod + Send + Sync {
    fn add(self, other: Self) -> Self;
}
impl AddElem for f32 {
    #[inline(always)]
    fn add(self, other: f32) -> f32 {
        self + other
    }
}
impl AddElem for f64 {
    #[inline(always)]
    fn add(self, other: f64) -> f64 {
        self + other
    }
}
impl AddElem for i64 {
    #[inline(always)]
    fn add(self, other: i64) -> i64 {
        self.wrapping_add(other)
    }
}

/// Writes every element of `src` (seen through `l`) to `dst[base + Σ idx[i] * ds[i]]`.
fn copy_strided<T: Copy>(src: &[T], l: &Layout, dst: &mut [T], ds: &[isize], base: usize) {
    copy_range(src, l, dst, ds, base, 0..l.numel(), 0);
}

/// Like [`copy_strided`] for the row-major positions `range` of `src` only, with every
/// destination index lowered by `shift` (`dst` is a window of the full destination).
fn copy_range<T: Copy>(
    src: &[T],
    l: &Layout,
    dst: &mut [T],
    ds: &[isize],
    base: usize,
    range: std::ops::Range<usize>,
    shift: usize,
) {
    if range.is_empty() {
        return;
    }
    let (dims, st) = coalesce(l.shape.dims(), [&l.strides, ds]);
    let last = dims.len() - 1;
    let (si, di) = (st[0][last], st[1][last]);
    let (start, len) = (range.start, range.len());
    for_each_run(
        &dims,
        &st,
        [l.offset, base],
        start,
        len,
        |_, [so, d0], run| {
            let d0 = d0 - shift;
            if si == 1 && di == 1 {
                dst[d0..d0 + run].copy_from_slice(&src[so..so + run]);
            } else {
                for i in 0..run as isize {
                    dst[(d0 as isize + i * di) as usize] = src[(so as isize + i * si) as usize];
                }
            }
        },
    );
}

/// A tensor seen as `[outer, axis, inner]`: rows of the `inner` elements at one (outer, axis)
/// position.
struct Rows {
    outer_dims: Dims,
    outer_strides: Strides,
    axis_stride: isize,
    inner_dims: Dims,
    inner_strides: [Strides; 1],
    /// Elements per row.
    inner_n: usize,
    offset: usize,
}

impl Rows {
    fn new(l: &Layout, axis: usize) -> Rows {
        let dims = l.shape.dims();
        let inner_n = dims[axis + 1..].iter().product();
        let (inner_dims, inner_strides) = coalesce(&dims[axis + 1..], [&l.strides[axis + 1..]]);
        Rows {
            outer_dims: dims[..axis].into(),
            outer_strides: l.strides[..axis].into(),
            axis_stride: l.strides[axis],
            inner_dims,
            inner_strides,
            inner_n,
            offset: l.offset,
        }
    }

    /// Element index of the row at outer position `o` (row-major) and axis position 0.
    fn outer(&self, mut o: usize) -> usize {
        let mut at = self.offset as isize;
        for (&d, &s) in self.outer_dims.iter().zip(&self.outer_strides).rev() {
            at += (o % d) as isize * s;
            o /= d;
        }
        at as usize
    }

    /// Element index of the row at axis position `k` of the outer position whose
    /// [`Rows::outer`] is `outer`.
    #[inline]
    fn at(&self, outer: usize, k: usize) -> usize {
        (outer as isize + k as isize * self.axis_stride) as usize
    }

    /// Calls `f(d, s)` for each element `s` of the row at `base` and the matching element `d`
    /// of `dst` (`dst.len()` is the row length).
    #[inline]
    fn zip_row<T: Copy>(&self, data: &[T], base: usize, dst: &mut [T], f: impl Fn(&mut T, T)) {
        if self.inner_n == 1 {
            return f(&mut dst[0], data[base]);
        }
        let st = self.inner_strides[0][self.inner_dims.len() - 1];
        for_each_run(
            &self.inner_dims,
            &self.inner_strides,
            [base],
            0,
            self.inner_n,
            |pos, [off], run| {
                let d = &mut dst[pos..pos + run];
                if st == 1 {
                    for (d, &s) in d.iter_mut().zip(&data[off..off + run]) {
                        f(d, s);
                    }
                } else {
                    for (i, d) in d.iter_mut().enumerate() {
                        f(d, data[(off as isize + i as isize * st) as usize]);
                    }
                }
            },
        );
    }
}

/// The values of the int64 tensor `idx` in row-major order as positions in `0..size` (negative
/// values count from the end), in a pooled scratch buffer of `u64`; or the error naming the
/// first value out of range.
fn positions(
    eng: &CpuEngine,
    op: &str,
    axis: usize,
    idx: &CpuTensor,
    size: usize,
) -> Result<Buffer> {
    let n = idx.numel();
    let mut buf = eng.pool().alloc(n * 8);
    let pos = &mut buf.as_mut_slice::<u64>()[..n];
    let l = idx.layout();
    let data = idx.data::<i64>();
    let size_i = size as i64;
    map1(eng, data, l, pos, 1, |v: i64| {
        let p = if v < 0 { v.wrapping_add(size_i) } else { v };
        if (0..size_i).contains(&p) {
            p as u64
        } else {
            u64::MAX
        }
    });
    if let Some(k) = pos.iter().position(|&p| p == u64::MAX) {
        let mut at = l.offset as isize;
        let mut rem = k;
        for (&d, &s) in l.shape.dims().iter().zip(&l.strides).rev() {
            at += (rem % d) as isize * s;
            rem /= d;
        }
        let v = data[at as usize];
        return Err(Error::invalid(
            op,
            format!("index {v} is out of range for axis {axis} of size {size}"),
        ));
    }
    Ok(buf)
}

/// Concatenation of `inputs` (same dtype, checked by inference) along `axis`. The output is
/// split into whole blocks of `out.shape[axis..]` (one per position of the outer axes); each
/// chunk of blocks takes its part of every input.
pub(crate) fn cat(eng: &CpuEngine, axis: usize, inputs: &[&CpuTensor], out: &Meta) -> CpuTensor {
    fn go<T: Pod + Send + Sync>(
        eng: &CpuEngine,
        axis: usize,
        inputs: &[&CpuTensor],
        out: &Meta,
    ) -> CpuTensor {
        let os = contiguous_strides(out.shape.dims());
        let block: usize = out.shape.dims()[axis..].iter().product();
        eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
            if o.is_empty() {
                return;
            }
            let work = o.len();
            eng.for_chunks_aligned(o, work, block, |start, oc| {
                let (r0, r1) = (start / block, (start + oc.len()) / block);
                let mut at = 0;
                for t in inputs {
                    let tb: usize = t.shape().dims()[axis..].iter().product();
                    let base = at * os[axis] as usize;
                    copy_range(
                        t.data::<T>(),
                        t.layout(),
                        oc,
                        &os,
                        base,
                        r0 * tb..r1 * tb,
                        start,
                    );
                    at += t.shape().dims()[axis];
                }
            });
        })
    }
    by_bits!(out.dtype, go(eng, axis, inputs, out))
}

/// A contiguous copy of `x` with the slice `specs` replaced by `value`.
pub(crate) fn slice_assign(
    eng: &CpuEngine,
    specs: &[SliceSpec],
    x: &CpuTensor,
    value: &CpuTensor,
    out: &Meta,
) -> CpuTensor {
    fn go<T: Pod + Send + Sync>(
        eng: &CpuEngine,
        specs: &[SliceSpec],
        x: &CpuTensor,
        value: &CpuTensor,
        out: &Meta,
    ) -> CpuTensor {
        eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
            map1(eng, x.data::<T>(), x.layout(), o, 1, |v| v);
            let os = contiguous_strides(out.shape.dims());
            let ds: Strides = os
                .iter()
                .zip(specs)
                .map(|(&s, sp)| s * sp.step as isize)
                .collect();
            let base = os
                .iter()
                .zip(specs)
                .map(|(&s, sp)| s as usize * sp.start)
                .sum();
            copy_strided(value.data::<T>(), value.layout(), o, &ds, base);
        })
    }
    by_bits!(out.dtype, go(eng, specs, x, value, out))
}

/// `x` indexed along `axis` by the 1-d int64 `idx`.
pub(crate) fn index_select(
    eng: &CpuEngine,
    axis: usize,
    x: &CpuTensor,
    idx: &CpuTensor,
    out: &Meta,
) -> Result<CpuTensor> {
    fn go<T: Pod + Send + Sync>(
        eng: &CpuEngine,
        axis: usize,
        x: &CpuTensor,
        pos: &[u64],
        out: &Meta,
    ) -> CpuTensor {
        let rows = Rows::new(x.layout(), axis);
        let (m, inner) = (pos.len(), rows.inner_n);
        let data = x.data::<T>();
        eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
            if o.is_empty() {
                return;
            }
            let work = o.len();
            eng.for_chunks_aligned(o, work, inner, |start, oc| {
                // Output row r is (outer position r / m, index j = r % m).
                let (mut ob, mut j) = ((start / inner) / m, (start / inner) % m);
                let mut src0 = rows.outer(ob);
                for row in oc.chunks_mut(inner) {
                    rows.zip_row(data, rows.at(src0, pos[j] as usize), row, |d, s| *d = s);
                    j += 1;
                    if j == m {
                        // (Past the last row this is a harmless index computation.)
                        (ob, j) = (ob + 1, 0);
                        src0 = rows.outer(ob);
                    }
                }
            });
        })
    }
    let size = x.shape().dims()[axis];
    let buf = positions(eng, "index_select", axis, idx, size)?;
    let pos = &buf.as_slice::<u64>()[..idx.numel()];
    Ok(by_bits!(out.dtype, go(eng, axis, x, pos, out)))
}

/// PyTorch's `gather`: `out[p] = x[p with its axis coordinate replaced by idx[p]]`.
pub(crate) fn gather(
    eng: &CpuEngine,
    axis: usize,
    x: &CpuTensor,
    idx: &CpuTensor,
    out: &Meta,
) -> Result<CpuTensor> {
    fn go<T: Pod + Send + Sync>(
        eng: &CpuEngine,
        axis: usize,
        x: &CpuTensor,
        pos: &[u64],
        out: &Meta,
    ) -> CpuTensor {
        let l = x.layout();
        let sa = l.strides[axis];
        // Index dims are within x's off the axis, so x's strides address the out positions.
        let mut xs = l.strides.clone();
        xs[axis] = 0;
        let (dims, st) = coalesce(out.shape.dims(), [&xs]);
        let si = st[0][dims.len() - 1];
        let data = x.data::<T>();
        eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
            let n = o.len();
            eng.for_chunks(o, n, |start, oc| {
                for_each_run(&dims, &st, [l.offset], start, oc.len(), |p, [xo], run| {
                    let ps = &pos[start + p..start + p + run];
                    for (i, (d, &k)) in oc[p..p + run].iter_mut().zip(ps).enumerate() {
                        let at = xo as isize + i as isize * si + k as isize * sa;
                        *d = data[at as usize];
                    }
                })
            });
        })
    }
    let size = x.shape().dims()[axis];
    let buf = positions(eng, "gather", axis, idx, size)?;
    let pos = &buf.as_slice::<u64>()[..idx.numel()];
    Ok(by_bits!(out.dtype, go(eng, axis, x, pos, out)))
}

/// `base` plus the rows of `src` added at the positions of the 1-d `idx` along `axis`
/// (repeated indices accumulate, in index order).
pub(crate) fn index_add(
    eng: &CpuEngine,
    axis: usize,
    base: &CpuTensor,
    idx: &CpuTensor,
    src: &CpuTensor,
    out: &Meta,
) -> Result<CpuTensor> {
    fn go<T: AddElem>(
        eng: &CpuEngine,
        axis: usize,
        base: &CpuTensor,
        pos: &[u64],
        src: &CpuTensor,
        out: &Meta,
    ) -> CpuTensor {
        let rows = Rows::new(src.layout(), axis);
        let (m, inner) = (pos.len(), rows.inner_n);
        let block = out.shape.dims()[axis] * inner;
        let data = src.data::<T>();
        eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
            map1(eng, base.data::<T>(), base.layout(), o, 1, |v| v);
            if o.is_empty() || m == 0 {
                return;
            }
            let work = src.numel();
            eng.for_chunks_aligned(o, work, block, |start, oc| {
                for (b, blk) in oc.chunks_mut(block).enumerate() {
                    let src0 = rows.outer(start / block + b);
                    for (j, &k) in pos.iter().enumerate() {
                        let row = &mut blk[k as usize * inner..][..inner];
                        rows.zip_row(data, rows.at(src0, j), row, |d, s| *d = d.add(s));
                    }
                }
            });
        })
    }
    let buf = positions(eng, "index_add", axis, idx, out.shape.dims()[axis])?;
    let pos = &buf.as_slice::<u64>()[..idx.numel()];
    match out.dtype {
        DType::F32 => Ok(go::<f32>(eng, axis, base, pos, src, out)),
        DType::F64 => Ok(go::<f64>(eng, axis, base, pos, src, out)),
        DType::I64 => Ok(go::<i64>(eng, axis, base, pos, src, out)),
        DType::Bool => Err(Error::dtype("index_add", "cannot add bool tensors")),
    }
}

/// `base` plus `src` scattered-added at `idx` along `axis` (PyTorch's `scatter_add`), in
/// row-major order of `src`.
pub(crate) fn scatter_add(
    eng: &CpuEngine,
    axis: usize,
    base: &CpuTensor,
    idx: &CpuTensor,
    src: &CpuTensor,
    out: &Meta,
) -> Result<CpuTensor> {
    fn go<T: AddElem>(
        eng: &CpuEngine,
        axis: usize,
        base: &CpuTensor,
        pos: &[u64],
        src: &CpuTensor,
        out: &Meta,
    ) -> CpuTensor {
        let sl = src.layout();
        let mut os = contiguous_strides(out.shape.dims());
        let oa = os[axis];
        os[axis] = 0;
        let (dims, st) = coalesce(sl.shape.dims(), [&sl.strides, &os]);
        let last = dims.len() - 1;
        let (ss, ds) = (st[0][last], st[1][last]);
        let data = src.data::<T>();
        eng.new_tensor::<T>(&out.shape, out.dtype, |o| {
            map1(eng, base.data::<T>(), base.layout(), o, 1, |v| v);
            for_each_run(
                &dims,
                &st,
                [sl.offset, 0],
                0,
                sl.numel(),
                |p, [so, d0], run| {
                    for (i, &k) in pos[p..p + run].iter().enumerate() {
                        let i = i as isize;
                        let d = &mut o[(d0 as isize + i * ds + k as isize * oa) as usize];
                        *d = d.add(data[(so as isize + i * ss) as usize]);
                    }
                },
            );
        })
    }
    let buf = positions(eng, "scatter_add", axis, idx, out.shape.dims()[axis])?;
    let pos = &buf.as_slice::<u64>()[..idx.numel()];
    match out.dtype {
        DType::F32 => Ok(go::<f32>(eng, axis, base, pos, src, out)),
        DType::F64 => Ok(go::<f64>(eng, axis, base, pos, src, out)),
        DType::I64 => Ok(go::<i64>(eng, axis, base, pos, src, out)),
        DType::Bool => Err(Error::dtype("scatter_add", "cannot add bool tensors")),
    }
}
