//! The CPU engine: strided tensors over pooled buffers, and a kernel for every op.
//!
//! A [`CpuTensor`] is a cheap handle (`Arc` of a [`Buffer`] plus a [`Layout`] and a dtype);
//! reshape of contiguous data, permute, slice and expand only make a new layout. Outputs are
//! always contiguous buffers from the engine's [`Pool`], which recycles storage when the last
//! handle drops (or, for [`Engine::execute_into`], storage a compiled run offers). Per-element
//! math comes from [`gt_ops::scalar`], so the kernels and the float64 reference agree by
//! construction; matmul goes to the `gemm` crate with strides, so transposed operands are never
//! copied (small float32 products go to a register kernel of our own). `rayon` is used only for
//! large work.
//!
//! # Layout
//! - [`buffer`]: [`Buffer`] storage and the size-bucketed [`Pool`].
//! - [`layout`]: [`Layout`], dimension coalescing and run-wise iteration.
//! - `elementwise`: unary, binary (broadcast), scalar, cast and copy kernels.
//! - `compare`: comparisons (bool results) and `where`.
//! - `matmul`: batched, broadcast matmul on `gemm`, small float32 products on `small_mm`.
//! - `small_mm`: an AVX-512 kernel for products too small for `gemm`'s fixed cost.
//! - `reduce`: sum, mean, max and min over axis sets; argmax and argmin over one axis.
//! - `index`: cat, index_select, gather, index_add, scatter_add and slice_assign.
//! - `creation`: full, arange and counter-based random.

pub mod buffer;
mod compare;
mod creation;
mod elementwise;
mod index;
pub mod layout;
mod matmul;
mod reduce;
mod small_mm;
#[cfg(test)]
mod tests;

pub use buffer::{Buffer, Pool, DEFAULT_POOL_CAP};
pub use layout::Layout;

use crate::compile::loop_ir::LoopKernel;
use crate::engine::{Engine, Outputs, PoolStats};
use bytemuck::Pod;
use gt_core::{DType, Error, Result, Shape};
use gt_ops::{infer, BinaryOp, Dist, Meta, Op};
use gt_proto::TensorData;
use rayon::prelude::*;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Work (elements touched, weighted by per-element cost) below which kernels stay on the
/// calling thread. Waking the pool costs tens of microseconds on small machines, and a plain
/// f32 add only gains from two threads at about a million elements.
const PAR_MIN_WORK: usize = 1 << 19;
/// Least work per parallel task.
const PAR_GRAIN: usize = 1 << 15;

/// A tensor on the CPU engine: shared storage plus a strided view of it. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct CpuTensor {
    storage: Arc<Buffer>,
    layout: Layout,
    dtype: DType,
}

impl CpuTensor {
    /// A contiguous tensor of `shape` owning `buf` (which must hold `shape.numel()` elements).
    pub(crate) fn from_buffer(buf: Buffer, shape: Shape, dtype: DType) -> CpuTensor {
        debug_assert!(buf.len_bytes() >= shape.numel() * dtype.size());
        CpuTensor {
            storage: Arc::new(buf),
            layout: Layout::contiguous(shape),
            dtype,
        }
    }

    /// The same storage seen through `layout`.
    pub(crate) fn view(&self, layout: Layout) -> CpuTensor {
        debug_assert!(layout.end() * self.dtype.size() <= self.storage.len_bytes());
        CpuTensor {
            storage: self.storage.clone(),
            layout,
            dtype: self.dtype,
        }
    }

    /// Shape and dtype.
    pub fn meta(&self) -> Meta {
        Meta {
            shape: layout::copy_shape(&self.layout.shape),
            dtype: self.dtype,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.layout.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// How the elements sit in the storage.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The shared storage.
    pub fn storage(&self) -> &Arc<Buffer> {
        &self.storage
    }

    /// Whether the elements are row-major and gap-free in the storage.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    /// The whole storage as elements of `T` (index it with the layout).
    #[inline]
    pub(crate) fn data<T: Pod>(&self) -> &[T] {
        self.storage.as_slice()
    }
}

/// Float element types the arithmetic kernels are instantiated at.
pub(crate) trait Elem: gt_ops::scalar::Float + Pod {
    /// Writes the product `x` describes into `dst` if this type has a kernel for small
    /// products and `x` is one (see [`small_mm::product`]); `false` leaves it to `gemm`.
    ///
    /// # Safety
    /// As [`small_mm::product`].
    #[inline(always)]
    unsafe fn small_product(_dst: &mut [Self], _x: &small_mm::Operands<Self>) -> bool {
        false
    }
}
impl Elem for f32 {
    #[inline(always)]
    unsafe fn small_product(dst: &mut [f32], x: &small_mm::Operands<f32>) -> bool {
        // SAFETY: passed on from the caller.
        unsafe { small_mm::product(dst, x) }
    }
}
impl Elem for f64 {}

/// The error for a non-float tensor reaching a float-only kernel (shape inference rejects this
/// first, so it only guards against misuse).
pub(crate) fn not_float(op: &str, dtype: DType) -> Error {
    Error::dtype(op, format!("expected a float tensor, got {dtype}"))
}

/// Executes ops on the CPU, with a buffer pool and an optional rayon thread pool.
pub struct CpuEngine {
    pool: Pool,
    threads: usize,
    /// Started by the first op large enough to split ([`CpuEngine::rayon`]); `None` inside
    /// when it could not be.
    rayon: OnceLock<Option<rayon::ThreadPool>>,
    /// Storage the next new tensor takes instead of a pool buffer
    /// ([`Engine::execute_into`]); `reusing` says whether there is any, so that other ops
    /// pay a plain load for it, not a lock.
    reuse: Mutex<Option<Arc<Buffer>>>,
    reusing: AtomicBool,
    /// Whether small float32 products use [`small_mm`] (else every product goes to `gemm`).
    small_matmul: bool,
}

impl std::fmt::Debug for CpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuEngine(threads {}, {:?})", self.threads, self.pool)
    }
}

impl CpuEngine {
    /// An engine using `threads` threads (1 = everything on the caller's thread) and a pool that
    /// caches up to [`DEFAULT_POOL_CAP`] bytes.
    pub fn new(threads: usize) -> CpuEngine {
        CpuEngine::with_pool_cap(threads, DEFAULT_POOL_CAP)
    }

    /// An engine using `threads` threads whose pool caches at most `cap_bytes` bytes.
    pub fn with_pool_cap(threads: usize, cap_bytes: usize) -> CpuEngine {
        CpuEngine {
            pool: Pool::new(cap_bytes),
            threads: threads.max(1),
            rayon: OnceLock::new(),
            reuse: Mutex::new(None),
            reusing: AtomicBool::new(false),
            small_matmul: true,
        }
    }

    /// Sends every matmul to the `gemm` crate (`false`), or small float32 ones to the
    /// register kernel (`true`, the default) — for `gt bench matmul`, which compares the two.
    pub fn set_small_matmul(&mut self, on: bool) {
        self.small_matmul = on;
    }

    /// Number of compute threads (1 when the thread pool could not be started).
    pub fn threads(&self) -> usize {
        match self.rayon.get() {
            Some(None) => 1,
            _ => self.threads,
        }
    }

    /// The thread pool, started on first use. Lazily, because a program whose ops are all
    /// small never needs it, and a fresh pool's threads spin-yield for a while before they
    /// sleep: on a 2-core machine `perf sched` showed them scheduled 113 times in a new
    /// runtime's first 6 ms, more than the client and the worker together.
    fn rayon(&self) -> Option<&rayon::ThreadPool> {
        if self.threads <= 1 {
            return None;
        }
        self.rayon
            .get_or_init(|| {
                let threads = self.threads;
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("gt-cpu-{i}"))
                    .build()
                    .map_err(|e| {
                        tracing::warn!("could not start {threads} compute threads ({e}); using one")
                    })
                    .ok()
            })
            .as_ref()
    }

    /// The engine's buffer pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A new contiguous tensor of `shape`, its `numel` elements of `T` written by `fill`.
    pub(crate) fn new_tensor<T: Pod>(
        &self,
        shape: &Shape,
        dtype: DType,
        fill: impl FnOnce(&mut [T]),
    ) -> CpuTensor {
        let n = shape.numel();
        debug_assert_eq!(std::mem::size_of::<T>(), dtype.size());
        if self.reusing.load(Ordering::Relaxed) {
            if let Some(mut storage) = self.take_reuse(n * dtype.size()) {
                let buf = Arc::get_mut(&mut storage).expect("offered only when unshared");
                fill(&mut buf.as_mut_slice::<T>()[..n]);
                return CpuTensor {
                    storage,
                    layout: Layout::contiguous(layout::copy_shape(shape)),
                    dtype,
                };
            }
        }
        let mut buf = self.pool.alloc(n * dtype.size());
        fill(&mut buf.as_mut_slice::<T>()[..n]);
        CpuTensor::from_buffer(buf, layout::copy_shape(shape), dtype)
    }

    /// The storage [`Engine::execute_into`] offered (only ever storage nothing else holds), if
    /// it holds `bytes` (else it goes back to the pool).
    fn take_reuse(&self, bytes: usize) -> Option<Arc<Buffer>> {
        let offered = self.reuse.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.reusing.store(false, Ordering::Relaxed);
        offered.filter(|b| b.len_bytes() >= bytes)
    }

    /// Whether `work` elements of work should be spread over the thread pool.
    pub(crate) fn parallel(&self, work: usize) -> bool {
        work >= PAR_MIN_WORK && self.rayon().is_some()
    }

    /// Runs `f` inside the engine's thread pool (so nested rayon work, e.g. in `gemm`, uses it).
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self.rayon() {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// Calls `f(start, chunk)` over chunks of `out` (`start` is the chunk's first index), in
    /// parallel when the total `work` is large, else once on the whole slice.
    pub(crate) fn for_chunks<D: Send>(
        &self,
        out: &mut [D],
        work: usize,
        f: impl Fn(usize, &mut [D]) + Sync + Send,
    ) {
        self.for_chunks_aligned(out, work, 1, f)
    }

    /// Like [`CpuEngine::for_chunks`], with every chunk but the last a multiple of `align`
    /// elements long.
    pub(crate) fn for_chunks_aligned<D: Send>(
        &self,
        out: &mut [D],
        work: usize,
        align: usize,
        f: impl Fn(usize, &mut [D]) + Sync + Send,
    ) {
        let n = out.len();
        let align = align.max(1);
        match (work >= PAR_MIN_WORK && n > align)
            .then(|| self.rayon())
            .flatten()
        {
            Some(pool) => {
                let by_threads = n.div_ceil(self.threads * 4);
                let by_grain = ((n as u128 * PAR_GRAIN as u128).div_ceil(work as u128)) as usize;
                let chunk = by_threads.max(by_grain).max(1).next_multiple_of(align);
                if chunk >= n {
                    return f(0, out);
                }
                pool.install(|| {
                    out.par_chunks_mut(chunk)
                        .enumerate()
                        .for_each(|(i, c)| f(i * chunk, c))
                });
            }
            _ => f(0, out),
        }
    }

    /// `x` as a contiguous tensor: itself when it already is, else a copy.
    pub(crate) fn contiguous(&self, x: &CpuTensor) -> CpuTensor {
        if x.is_contiguous() {
            x.clone()
        } else {
            elementwise::copy(self, x)
        }
    }

    fn reshape(&self, x: &CpuTensor, shape: &Shape) -> CpuTensor {
        let c = self.contiguous(x);
        let offset = c.layout.offset;
        let offset = if shape.numel() == 0 { 0 } else { offset };
        c.view(Layout::contiguous_at(layout::copy_shape(shape), offset))
    }

    /// The meta of `op(inputs)`, checking the inputs.
    fn infer_out(op: &Op, inputs: &[&CpuTensor]) -> Result<Meta> {
        match inputs {
            [] => infer(op, &[]),
            [a] => infer(op, &[&a.meta()]),
            [a, b] => infer(op, &[&a.meta(), &b.meta()]),
            _ => {
                let metas: SmallVec<[Meta; 4]> = inputs.iter().map(|t| t.meta()).collect();
                let refs: SmallVec<[&Meta; 4]> = metas.iter().collect();
                infer(op, &refs)
            }
        }
    }

    /// `op(inputs)` with result meta `out` (already inferred).
    fn run(&self, op: &Op, inputs: &[&CpuTensor], out: &Meta) -> Result<CpuTensor> {
        match op {
            Op::Full { value, .. } => Ok(creation::full(self, out, *value)),
            Op::Arange { start, step, .. } => Ok(creation::arange(self, out, *start, *step)),
            Op::Random {
                dist, seed, stream, ..
            } => creation::random(self, out, *dist, *seed, *stream),
            Op::Unary(u) => elementwise::unary(self, *u, inputs[0]),
            Op::Binary(b) => elementwise::binary(self, *b, inputs[0], inputs[1], out),
            Op::BinaryScalar {
                op: b,
                scalar,
                scalar_left,
            } => elementwise::binary_scalar(self, *b, *scalar, *scalar_left, inputs[0]),
            Op::MatMul => matmul::matmul(self, inputs[0], inputs[1], out),
            Op::Reduce { op: r, axes, .. } => reduce::reduce(self, *r, axes, inputs[0], out),
            Op::Reshape { shape } => Ok(self.reshape(inputs[0], shape)),
            Op::Permute { perm } => Ok(inputs[0].view(inputs[0].layout.permute(perm))),
            Op::Slice { specs } => Ok(inputs[0].view(inputs[0].layout.slice(specs))),
            Op::Expand { shape } => Ok(inputs[0].view(inputs[0].layout.expand(shape))),
            Op::Cast { dtype } => Ok(elementwise::cast(self, inputs[0], *dtype)),
            Op::Compare(c) => Ok(compare::compare(self, *c, inputs[0], inputs[1], out)),
            Op::CompareScalar { op: c, scalar } => {
                Ok(compare::compare_scalar(self, *c, *scalar, inputs[0]))
            }
            Op::Where => Ok(compare::where_(self, inputs[0], inputs[1], inputs[2], out)),
            Op::ArgReduce { op: a, axis, .. } => {
                Ok(reduce::arg_reduce(self, *a, *axis, inputs[0], out))
            }
            Op::Cat { axis } => Ok(index::cat(self, *axis, inputs, out)),
            Op::IndexSelect { axis } => index::index_select(self, *axis, inputs[0], inputs[1], out),
            Op::Gather { axis } => index::gather(self, *axis, inputs[0], inputs[1], out),
            Op::IndexAdd { axis } => {
                index::index_add(self, *axis, inputs[0], inputs[1], inputs[2], out)
            }
            Op::ScatterAdd { axis } => {
                index::scatter_add(self, *axis, inputs[0], inputs[1], inputs[2], out)
            }
            Op::SliceAssign { specs } => {
                Ok(index::slice_assign(self, specs, inputs[0], inputs[1], out))
            }
        }
    }
}

impl Engine for CpuEngine {
    type Tensor = CpuTensor;

    fn execute(&mut self, op: &Op, inputs: &[&CpuTensor]) -> Result<CpuTensor> {
        let out = Self::infer_out(op, inputs)?;
        self.run(op, inputs, &out)
    }

    fn execute_as(&mut self, op: &Op, inputs: &[&CpuTensor], out: &Meta) -> Result<CpuTensor> {
        debug_assert_eq!(
            Self::infer_out(op, inputs).as_ref(),
            Ok(out),
            "planned meta of {op:?}"
        );
        self.run(op, inputs, out)
    }

    fn execute_into(
        &mut self,
        op: &Op,
        inputs: &[&CpuTensor],
        out: &Meta,
        spare: CpuTensor,
    ) -> Result<CpuTensor> {
        let mut storage = spare.storage;
        if Arc::get_mut(&mut storage).is_some() {
            *self.reuse.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(storage);
            *self.reusing.get_mut() = true;
        }
        let r = self.execute_as(op, inputs, out);
        // Not taken (the op made a view, or failed): back to the pool.
        *self.reusing.get_mut() = false;
        self.reuse
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        r
    }

    fn sole_owner(&self, t: &CpuTensor) -> bool {
        Arc::strong_count(&t.storage) == 1 && Arc::weak_count(&t.storage) == 0
    }

    fn same(&self, a: &CpuTensor, b: &CpuTensor) -> bool {
        Arc::ptr_eq(&a.storage, &b.storage) && a.layout == b.layout && a.dtype == b.dtype
    }

    fn upload(&mut self, data: &TensorData) -> Result<CpuTensor> {
        data.validate()?;
        let n = data.bytes.len();
        let mut buf = self.pool.alloc(n);
        let dst = &mut buf.as_mut_slice::<u8>()[..n];
        match data.dtype {
            DType::Bool => {
                for (d, &s) in dst.iter_mut().zip(&data.bytes) {
                    *d = (s != 0) as u8;
                }
            }
            DType::F32 | DType::F64 | DType::I64 => {
                dst.copy_from_slice(&data.bytes);
                from_le_in_place(dst, data.dtype.size());
            }
        }
        Ok(CpuTensor::from_buffer(buf, data.shape.clone(), data.dtype))
    }

    fn download(&mut self, t: &CpuTensor) -> TensorData {
        let size = t.dtype.size();
        let n = t.numel();
        let bytes = if n == 0 {
            Vec::new()
        } else {
            let c = self.contiguous(t);
            let start = c.layout.offset * size;
            let mut bytes = c.storage.as_slice::<u8>()[start..start + n * size].to_vec();
            from_le_in_place(&mut bytes, size);
            bytes
        };
        TensorData {
            dtype: t.dtype,
            shape: t.layout.shape.clone(),
            bytes,
        }
    }

    fn meta(&self, t: &CpuTensor) -> Meta {
        t.meta()
    }

    fn storage_bytes(&self, t: &CpuTensor) -> usize {
        t.storage.len_bytes()
    }

    fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    fn matmul_add(
        &mut self,
        a: &CpuTensor,
        b: &CpuTensor,
        c: &CpuTensor,
        mm_left: bool,
        relu: bool,
        keep_product: bool,
        out: &Meta,
    ) -> Option<Result<(CpuTensor, Option<CpuTensor>)>> {
        let tail = matmul::Tail { mm_left, relu };
        matmul::matmul_add(self, a, b, c, tail, keep_product, out).map(Ok)
    }

    fn run_loop(
        &mut self,
        kernel: &dyn LoopKernel,
        shape: &Shape,
        dtype: DType,
        outputs: usize,
        inputs: &[&CpuTensor],
        shapes: &[&Shape],
    ) -> Option<Result<Outputs<CpuTensor>>> {
        let usable = inputs.len() == shapes.len()
            && inputs
                .iter()
                .zip(shapes)
                .all(|(t, s)| t.is_contiguous() && t.shape() == *s);
        if !usable {
            return None;
        }
        let n = shape.numel();
        // Small vectors: no heap allocation besides the output buffers themselves (a loop
        // rarely has over 2 outputs or 4 inputs).
        let mut bufs: SmallVec<[Buffer; 2]> = (0..outputs)
            .map(|_| self.pool.alloc(n * dtype.size()))
            .collect();
        let ins: SmallVec<[*const u8; 4]> = inputs
            .iter()
            .map(|t| {
                let base = t.storage.as_slice::<u8>().as_ptr();
                base.wrapping_add(t.layout.offset * t.dtype.size())
            })
            .collect();
        let outs: SmallVec<[*mut u8; 4]> = bufs
            .iter_mut()
            .map(|b| b.as_mut_slice::<u8>().as_mut_ptr())
            .collect();
        let work = n * (inputs.len() + outputs).max(1);
        match (work >= PAR_MIN_WORK).then(|| self.rayon()).flatten() {
            Some(pool) => {
                // Addresses as integers so the parallel closure is Send; the buffers outlive
                // the calls.
                let (ins, outs): (SmallVec<[usize; 4]>, SmallVec<[usize; 4]>) = (
                    ins.iter().map(|&p| p as usize).collect(),
                    outs.iter().map(|&p| p as usize).collect(),
                );
                let call = |range: std::ops::Range<usize>| {
                    let i: SmallVec<[*const u8; 4]> = ins.iter().map(|&p| p as *const u8).collect();
                    let o: SmallVec<[*mut u8; 4]> = outs.iter().map(|&p| p as *mut u8).collect();
                    // SAFETY: inputs are contiguous tensors of the shapes the spec's strides
                    // were made for, outputs are fresh buffers of `n` elements, and ranges
                    // never overlap.
                    unsafe { kernel.run(&i, &o, range) }
                };
                let chunk = n.div_ceil(self.threads * 4).max(PAR_GRAIN / 4);
                pool.install(|| {
                    (0..n.div_ceil(chunk))
                        .into_par_iter()
                        .for_each(|c| call(c * chunk..((c + 1) * chunk).min(n)))
                });
            }
            // SAFETY: as above, over the whole range on this thread.
            None => unsafe { kernel.run(&ins, &outs, 0..n) },
        }
        Some(Ok(bufs
            .into_iter()
            .map(|b| CpuTensor::from_buffer(b, layout::copy_shape(shape), dtype))
            .collect()))
    }
}

/// Converts little-endian elements of `size` bytes to native order and back (a no-op on
/// little-endian machines).
fn from_le_in_place(bytes: &mut [u8], size: usize) {
    if cfg!(target_endian = "big") && size > 1 {
        for c in bytes.chunks_exact_mut(size) {
            c.reverse();
        }
    }
}

/// Microbenchmark of the engine's hot paths on one thread. Returns microseconds per op for
/// (a) `a = a + b` on 16x16 f32 through [`CpuEngine::execute`], dropping the old `a` each time
/// (so the pool is exercised), and (b) a 64x64 f32 matmul through [`CpuEngine::execute`].
pub fn bench_kernels(iters: usize) -> (f64, f64) {
    let iters = iters.max(1);
    let mut eng = CpuEngine::new(1);
    let rand = |eng: &mut CpuEngine, shape: [usize; 2], stream: u64| {
        let op = Op::Random {
            dist: Dist::Normal,
            shape: shape.into(),
            dtype: DType::F32,
            seed: 1,
            stream,
        };
        eng.execute(&op, &[])
            .expect("random creation of a valid shape")
    };
    let add = Op::Binary(BinaryOp::Add);
    let b = rand(&mut eng, [16, 16], 1);
    let mut a = rand(&mut eng, [16, 16], 0);
    for _ in 0..100 {
        a = eng.execute(&add, &[&a, &b]).expect("add of equal shapes");
    }
    let t0 = Instant::now();
    for _ in 0..iters {
        a = eng.execute(&add, &[&a, &b]).expect("add of equal shapes");
    }
    let add_us = t0.elapsed().as_secs_f64() * 1e6 / iters as f64;
    std::hint::black_box(&a);

    let x = rand(&mut eng, [64, 64], 2);
    let y = rand(&mut eng, [64, 64], 3);
    let mm_iters = iters.div_ceil(10).max(1);
    for _ in 0..10 {
        std::hint::black_box(eng.execute(&Op::MatMul, &[&x, &y]).expect("matmul"));
    }
    let t0 = Instant::now();
    for _ in 0..mm_iters {
        std::hint::black_box(eng.execute(&Op::MatMul, &[&x, &y]).expect("matmul"));
    }
    let mm_us = t0.elapsed().as_secs_f64() * 1e6 / mm_iters as f64;
    (add_us, mm_us)
}
