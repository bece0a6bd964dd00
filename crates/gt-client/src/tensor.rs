//! The [`Tensor`] handle: an id in its session plus the shape and dtype the client inferred.
//! Cloning is an `Arc` bump; dropping the last clone sends `Free` in the stream.

use crate::autograd::{self, Node};
use crate::session::Session;
use gt_core::{DType, Error, Result, Shape, TensorId, WorkerId};
use gt_ops::{infer, Meta, Op};
use gt_proto::{ClientMsg, ClientReply, TensorData};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) struct Inner {
    pub(crate) id: TensorId,
    pub(crate) meta: Meta,
    pub(crate) session: Session,
    /// Whether gradients are tracked for this tensor.
    pub(crate) requires_grad: AtomicBool,
    /// How this tensor was computed, when that is to be differentiated.
    pub(crate) node: Option<Arc<Node>>,
    /// Accumulated gradient (leaves).
    pub(crate) grad: Mutex<Option<Tensor>>,
}

impl Inner {
    pub(crate) fn new(
        id: TensorId,
        meta: Meta,
        session: Session,
        node: Option<Arc<Node>>,
    ) -> Inner {
        let requires_grad = AtomicBool::new(node.is_some());
        Inner {
            id,
            meta,
            session,
            requires_grad,
            node,
            grad: Mutex::new(None),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.session.push(ClientMsg::Free { id: self.id });
    }
}

/// A tensor: a cheap handle to data that lives on a worker.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

impl Tensor {
    /// Shape.
    pub fn shape(&self) -> &Shape {
        &self.0.meta.shape
    }
    /// Dimensions as a slice.
    pub fn dims(&self) -> &[usize] {
        self.0.meta.shape.dims()
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.meta.shape.rank()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.meta.shape.numel()
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.meta.dtype
    }
    /// The client-chosen id (unique within the session).
    pub fn id(&self) -> TensorId {
        self.0.id
    }
    /// The session this tensor belongs to.
    pub fn session(&self) -> &Session {
        &self.0.session
    }

    /// Whether gradients are tracked for this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Records `op(inputs)` in `session`'s stream after checking it; no round trip. The op joins
    /// the autograd graph when gradients are enabled and an input requires them.
    pub(crate) fn apply(session: &Session, op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
        let track = autograd::grad_enabled()
            && inputs
                .iter()
                .enumerate()
                .any(|(i, t)| t.requires_grad() && gt_ops::grad::differentiable(&op, i));
        let node = track.then(|| (op.clone(), inputs.iter().map(|t| (*t).clone()).collect()));
        Tensor::apply_with(session, op, inputs, node)
    }

    /// Records `op(inputs)` without autograd (gradient math itself, optimizer updates).
    pub(crate) fn apply_untracked(session: &Session, op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
        Tensor::apply_with(session, op, inputs, None)
    }

    fn apply_with(
        session: &Session,
        op: Op,
        inputs: &[&Tensor],
        node: Option<(Op, SmallVec<[Tensor; 3]>)>,
    ) -> Result<Tensor> {
        let mut metas: SmallVec<[&Meta; 2]> = SmallVec::new();
        let mut ids: SmallVec<[TensorId; 2]> = SmallVec::new();
        for t in inputs {
            if !t.0.session.same(session) {
                return Err(Error::invalid(
                    op.name(),
                    "inputs belong to different sessions (connections)",
                ));
            }
            metas.push(&t.0.meta);
            ids.push(t.0.id);
        }
        let meta = infer(&op, &metas)?;
        let id = session.new_id();
        session.push(ClientMsg::Exec {
            out: id,
            op,
            inputs: ids,
        });
        let node = node.map(|(op, inputs)| autograd::record(session, op, inputs, id, &meta));
        Ok(Tensor(Arc::new(Inner::new(
            id,
            meta,
            session.clone(),
            node,
        ))))
    }

    /// `op(self, others…)` in this tensor's session.
    pub(crate) fn op(&self, op: Op, others: &[&Tensor]) -> Result<Tensor> {
        let mut all: SmallVec<[&Tensor; 2]> = SmallVec::new();
        all.push(self);
        all.extend_from_slice(others);
        Tensor::apply(&self.0.session, op, &all)
    }

    /// Creates a tensor from raw data.
    pub(crate) fn upload(session: &Session, data: TensorData) -> Result<Tensor> {
        data.validate()?;
        let id = session.new_id();
        let meta = Meta::new(data.shape.clone(), data.dtype);
        session.push(ClientMsg::Upload { out: id, data });
        Ok(Tensor(Arc::new(Inner::new(
            id,
            meta,
            session.clone(),
            None,
        ))))
    }

    /// A copy of this tensor living on worker `k` (like PyTorch's `.to(device)`); later ops on it
    /// run there. No round trip.
    pub fn to_worker(&self, k: u32) -> Tensor {
        let s = &self.0.session;
        let id = s.new_id();
        s.push(ClientMsg::ToWorker {
            out: id,
            src: self.0.id,
            worker: WorkerId(k),
        });
        Tensor(Arc::new(Inner::new(
            id,
            self.0.meta.clone(),
            s.clone(),
            None,
        )))
    }

    /// The contents (a sync point). Errors carry the cause of a failed computation.
    pub fn data(&self) -> Result<TensorData> {
        let id = self.0.id;
        match self.0.session.request(|req| ClientMsg::Read { req, id })? {
            ClientReply::Data { result, .. } => result,
            other => Err(Error::Protocol(format!(
                "unexpected reply to read: {other:?}"
            ))),
        }
    }

    /// The values as f32 (a sync point).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.data().map(|d| d.to_f32_vec())
    }

    /// The values as f64 (a sync point).
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        self.data().map(|d| d.to_f64_vec())
    }

    /// The single value of a one-element tensor (a sync point).
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!(
                    "needs exactly one element, tensor has shape {}",
                    self.shape()
                ),
            ));
        }
        Ok(self.to_vec_f64()?[0])
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor(id={}, shape={}, dtype={})",
            self.0.id, self.0.meta.shape, self.0.meta.dtype
        )
    }
}
