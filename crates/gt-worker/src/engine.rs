//! The seam between the instruction stream and the kernels: an engine takes the op as data.
//! The CPU engine implements it today; a CUDA engine (behind a cargo feature) will later.

use crate::compile::loop_ir::LoopKernel;
use gt_core::Result;
use gt_ops::Op;
use gt_proto::TensorData;

/// The tensors a fused loop writes ([`Engine::run_loop`]); rarely more than two.
pub type Outputs<T> = smallvec::SmallVec<[T; 2]>;

/// Buffer-pool counters of an engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Requests served from cached buffers.
    pub hits: u64,
    /// Requests that allocated.
    pub misses: u64,
    /// Bytes held in the pool, ready for reuse.
    pub cached_bytes: u64,
    /// Bytes of buffers handed out and not yet returned (storage of live tensors).
    pub in_use_bytes: u64,
}

/// Executes ops on tensors it owns.
pub trait Engine {
    /// The engine's tensor handle; cloning is cheap (views share storage).
    type Tensor: Clone;
    /// `op(inputs)` as a new tensor. Inputs are never modified.
    fn execute(&mut self, op: &Op, inputs: &[&Self::Tensor]) -> Result<Self::Tensor>;
    /// Like [`Engine::execute`], for a caller that already knows the result's meta `out`
    /// (inferred from the inputs' metas, as a compiled plan does): the engine may skip shape
    /// inference, which at small sizes costs as much as the kernel.
    fn execute_as(
        &mut self,
        op: &Op,
        inputs: &[&Self::Tensor],
        out: &gt_ops::Meta,
    ) -> Result<Self::Tensor> {
        let _ = out;
        self.execute(op, inputs)
    }
    /// Like [`Engine::execute_as`], where the result may take over the storage of `spare` (a
    /// value an earlier run of a compiled plan computed at this point and released, kept only
    /// while [`Engine::sole_owner`] held) instead of drawing a fresh buffer. Engines without
    /// reusable storage drop `spare`.
    fn execute_into(
        &mut self,
        op: &Op,
        inputs: &[&Self::Tensor],
        out: &gt_ops::Meta,
        spare: Self::Tensor,
    ) -> Result<Self::Tensor> {
        drop(spare);
        self.execute_as(op, inputs, out)
    }
    /// Whether `t` is the only handle to its storage, so that keeping it for
    /// [`Engine::execute_into`] lets a later result reuse that storage. `false` (the default)
    /// when the engine cannot tell or does not reuse storage.
    fn sole_owner(&self, t: &Self::Tensor) -> bool {
        let _ = t;
        false
    }
    /// A tensor holding `data` (already validated).
    fn upload(&mut self, data: &TensorData) -> Result<Self::Tensor>;
    /// The contents of `t`, row-major.
    fn download(&mut self, t: &Self::Tensor) -> TensorData;
    /// Shape and dtype of `t`.
    fn meta(&self, t: &Self::Tensor) -> gt_ops::Meta;
    /// Whether `a` and `b` are the same tensor (the same storage seen the same way), so one
    /// can stand for the other. `false` when the engine cannot tell: a compiled run that
    /// computed ahead with `a` then recomputes with `b` (see `state::ahead`).
    fn same(&self, a: &Self::Tensor, b: &Self::Tensor) -> bool {
        let _ = (a, b);
        false
    }
    /// Bytes of storage `t` keeps alive (shared storage counts fully).
    fn storage_bytes(&self, t: &Self::Tensor) -> usize;
    /// Pool counters.
    fn pool_stats(&self) -> PoolStats;
    /// `a @ b + c` (`c + a @ b` unless `mm_left`), then relu if `relu`: a matmul epilogue
    /// ([`crate::compile::epilogue`]) with result meta `out`, bit-identical to the ops run one by
    /// one; with `keep_product`, the product `a @ b` is returned too (else the result may reuse
    /// its buffer). `None`: the engine cannot fuse these operands; the caller runs the ops.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn matmul_add(
        &mut self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        c: &Self::Tensor,
        mm_left: bool,
        relu: bool,
        keep_product: bool,
        out: &gt_ops::Meta,
    ) -> Option<Result<(Self::Tensor, Option<Self::Tensor>)>> {
        let _ = (a, b, c, mm_left, relu, keep_product, out);
        None
    }
    /// Runs a fused loop over `shape` with `outputs` outputs of `dtype`, reading `inputs`, which
    /// the loop expects as contiguous tensors of `shapes`. `None`: the engine cannot run it
    /// (no loop support, or an input is a strided view); the caller runs the ops one by one.
    fn run_loop(
        &mut self,
        kernel: &dyn LoopKernel,
        shape: &gt_core::Shape,
        dtype: gt_core::DType,
        outputs: usize,
        inputs: &[&Self::Tensor],
        shapes: &[&gt_core::Shape],
    ) -> Option<Result<Outputs<Self::Tensor>>> {
        let _ = (kernel, shape, dtype, outputs, inputs, shapes);
        None
    }
}
