//! Autograd in the client. Each tracked op records a [`Node`] (the op and its input handles) on
//! its output; `backward` walks the graph from a tensor in reverse creation order, asks the
//! gradient table (`gt_ops::grad::vjp_needed`) for the gradients of each node's inputs that
//! require them — themselves instructions streamed to the workers — and accumulates them into
//! the leaves' `.grad`.

use crate::session::Session;
use crate::tensor::Tensor;
use gt_core::{Error, Result, TensorId};
use gt_ops::grad::{vjp_needed, Graph};
use gt_ops::{BinaryOp, Meta, Op};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::cell::Cell;
use std::sync::{Arc, Mutex, Weak};

/// How a tracked tensor was computed.
pub struct Node {
    pub(crate) op: Op,
    pub(crate) inputs: SmallVec<[Tensor; 3]>,
}

/// One entry of [`tape`]: an op recorded for autograd.
#[derive(Clone, Debug, PartialEq)]
pub struct TapeEntry {
    /// The op's name.
    pub op: &'static str,
    /// The output's id.
    pub output: TensorId,
    /// The inputs' ids.
    pub inputs: Vec<TensorId>,
    /// The output's meta.
    pub meta: Meta,
}

thread_local! {
    static NO_GRAD_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Whether ops on this thread are recorded for autograd.
pub fn grad_enabled() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

/// While alive, ops on this thread are not recorded (like `torch.no_grad()`). Guards nest.
pub struct NoGradGuard(());

/// Disables gradient recording until the guard drops.
pub fn no_grad() -> NoGradGuard {
    NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
    NoGradGuard(())
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

type Tape = Mutex<Vec<(Weak<Node>, TapeEntry)>>;

/// Records a node and its tape entry.
pub(crate) fn record(
    session: &Session,
    op: Op,
    inputs: SmallVec<[Tensor; 3]>,
    out: TensorId,
    meta: &Meta,
) -> Arc<Node> {
    let entry = TapeEntry {
        op: op.name(),
        output: out,
        inputs: inputs.iter().map(|t| t.id()).collect(),
        meta: meta.clone(),
    };
    let node = Arc::new(Node { op, inputs });
    let mut tape = session.tape().lock().unwrap();
    tape.push((Arc::downgrade(&node), entry));
    // Keep only live entries once the tape doubles, so long loops stay bounded.
    if tape.len() >= 1024 && tape.len().is_power_of_two() {
        tape.retain(|(w, _)| w.strong_count() > 0);
    }
    node
}

/// The ops currently recorded for autograd in `session` (those whose outputs are alive), oldest
/// first.
pub fn tape(session: &Session) -> Vec<TapeEntry> {
    let tape = session.tape().lock().unwrap();
    tape.iter()
        .filter(|(w, _)| w.strong_count() > 0)
        .map(|(_, e)| e.clone())
        .collect()
}

/// A printable listing of [`tape`].
pub fn format_tape(entries: &[TapeEntry]) -> String {
    let mut s = String::new();
    for e in entries {
        let ins: Vec<String> = e.inputs.iter().map(|i| i.to_string()).collect();
        s.push_str(&format!(
            "{:>6} = {:<14} ({})  {} {}\n",
            e.output.to_string(),
            e.op,
            ins.join(", "),
            e.meta.dtype,
            e.meta.shape
        ));
    }
    s
}

pub(crate) type TapeStore = Tape;

/// Emits gradient ops into the stream, never recording them.
struct Emit<'s>(&'s Session);

impl Graph for Emit<'_> {
    type T = Tensor;
    fn apply(&self, op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
        Tensor::apply_untracked(self.0, op, inputs)
    }
    fn meta(&self, t: &Tensor) -> Meta {
        Meta::new(t.shape().clone(), t.dtype())
    }
}

impl Tensor {
    /// Backpropagates from this scalar tensor into every leaf that requires gradients.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "backward",
                format!("needs a scalar (one-element) tensor or an explicit gradient; this one has shape {}", self.shape()),
            ));
        }
        // The seed is a gradient op too: it belongs in the backward scope (see backward_with).
        let session = self.session();
        session.scope_enter(gt_proto::BACKWARD_SCOPE);
        let ones = Tensor::apply_untracked(
            session,
            Op::Full {
                shape: self.shape().clone(),
                value: 1.0,
                dtype: self.dtype(),
            },
            &[],
        );
        let r = ones.and_then(|ones| self.backward_scoped(&ones));
        session.scope_exit();
        r
    }

    /// Backpropagates `grad` (the gradient of some scalar with respect to this tensor). The
    /// gradient ops are streamed inside the backward signal scope, so a sharding config's
    /// `backward:` placement applies to the tensors they create.
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        let session = self.session();
        session.scope_enter(gt_proto::BACKWARD_SCOPE);
        let r = self.backward_scoped(grad);
        session.scope_exit();
        r
    }

    fn backward_scoped(&self, grad: &Tensor) -> Result<()> {
        if !self.requires_grad() {
            return Err(Error::invalid(
                "backward",
                "this tensor does not require gradients (no input had requires_grad set)",
            ));
        }
        if grad.shape() != self.shape() {
            return Err(Error::shape(
                "backward",
                format!(
                    "gradient of shape {} for a tensor of shape {}",
                    grad.shape(),
                    self.shape()
                ),
            ));
        }
        let session = self.session();
        let emit = Emit(session);
        // Every tracked tensor reachable from here; ids grow with creation order, so reverse id
        // order is a valid reverse topological order.
        let mut order: Vec<Tensor> = Vec::new();
        let mut seen: FxHashMap<TensorId, ()> = FxHashMap::default();
        let mut stack = vec![self.clone()];
        while let Some(t) = stack.pop() {
            if seen.insert(t.id(), ()).is_some() {
                continue;
            }
            if let Some(node) = &t.0.node {
                stack.extend(node.inputs.iter().filter(|i| i.requires_grad()).cloned());
            }
            order.push(t);
        }
        order.sort_by_key(|t| std::cmp::Reverse(t.id()));
        let mut grads: FxHashMap<TensorId, Tensor> = FxHashMap::default();
        grads.insert(self.id(), grad.clone());
        for t in &order {
            let Some(g) = grads.remove(&t.id()) else {
                continue;
            };
            let Some(node) = &t.0.node else {
                // A leaf: accumulate like PyTorch.
                let mut slot = t.0.grad.lock().unwrap();
                let new = match slot.take() {
                    Some(old) => {
                        Tensor::apply_untracked(session, Op::Binary(BinaryOp::Add), &[&old, &g])?
                    }
                    None => g,
                };
                *slot = Some(new);
                continue;
            };
            let inputs: SmallVec<[&Tensor; 3]> = node.inputs.iter().collect();
            let need: SmallVec<[bool; 3]> = inputs.iter().map(|i| i.requires_grad()).collect();
            let gis = vjp_needed(&emit, &node.op, &inputs, t, &g, &need)?;
            for (inp, gi) in node.inputs.iter().zip(gis) {
                let Some(gi) = gi else { continue };
                if !inp.requires_grad() {
                    continue;
                }
                let acc = match grads.remove(&inp.id()) {
                    Some(prev) => {
                        Tensor::apply_untracked(session, Op::Binary(BinaryOp::Add), &[&prev, &gi])?
                    }
                    None => gi,
                };
                grads.insert(inp.id(), acc);
            }
        }
        Ok(())
    }

    /// Whether this tensor was not computed by a tracked op (a leaf of the autograd graph).
    pub fn is_leaf(&self) -> bool {
        self.0.node.is_none()
    }

    /// The accumulated gradient of a leaf, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().unwrap().clone()
    }

    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap() = None;
    }

    /// Replaces the accumulated gradient (optimizers, gradient clipping).
    pub fn set_grad(&self, grad: Option<Tensor>) {
        *self.0.grad.lock().unwrap() = grad;
    }

    /// Starts (or stops) tracking gradients for this leaf; returns it for chaining.
    pub fn requires_grad_(&self, on: bool) -> Result<Tensor> {
        if self.0.node.is_some() && !on {
            return Err(Error::invalid(
                "requires_grad_",
                "only leaf tensors can stop requiring gradients; use detach()",
            ));
        }
        self.0
            .requires_grad
            .store(on, std::sync::atomic::Ordering::Relaxed);
        Ok(self.clone())
    }

    /// The same values, cut from the autograd graph (a free view on the worker).
    pub fn detach(&self) -> Tensor {
        let _g = no_grad();
        Tensor::apply_untracked(
            self.session(),
            Op::Reshape {
                shape: self.shape().clone(),
            },
            &[self],
        )
        .expect("a reshape to the same shape is always valid")
    }
}
