//! Neural-network building blocks in the spirit of `torch.nn`: a [`Module`] trait with
//! hierarchical parameter names (`layers.0.weight`), [`Param`] handles shared with optimizers,
//! layers and losses.
//!
//! Tensors in GT are immutable handles (an id in the instruction stream), so a parameter is a
//! [`Param`]: a shared slot holding the current tensor. An optimizer step computes the new value
//! (as streamed ops, no round trip) and puts it in the slot; every module holding that `Param`
//! sees it at its next forward.

pub mod attention;
pub mod layers;
pub mod loss;

pub use attention::{Block, CausalSelfAttention, Gpt, GptConfig};
pub use layers::{Dropout, Embedding, LayerNorm, Linear, RmsNorm, Sequential};
pub use loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss,
};

use gt_client::Tensor;
use std::sync::{Arc, RwLock};

/// A trainable tensor slot, shared between modules and optimizers.
#[derive(Clone)]
pub struct Param(Arc<RwLock<Tensor>>);

impl Param {
    /// Wraps `t` as a leaf that requires gradients.
    pub fn new(t: Tensor) -> Param {
        Param(Arc::new(RwLock::new(as_leaf(t))))
    }
    /// The current value.
    pub fn get(&self) -> Tensor {
        self.0.read().unwrap().clone()
    }
    /// Replaces the value with `t` (a new leaf that requires gradients; its gradient starts empty).
    pub fn set(&self, t: Tensor) {
        *self.0.write().unwrap() = as_leaf(t);
    }
    /// The accumulated gradient of the current value.
    pub fn grad(&self) -> Option<Tensor> {
        self.get().grad()
    }
    /// Clears the gradient.
    pub fn zero_grad(&self) {
        self.get().zero_grad()
    }
    /// Whether two handles are the same slot.
    pub fn same(&self, other: &Param) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// `t` as a leaf that requires gradients (computed tensors are detached first; optimizer
/// updates, computed without autograd, are leaves already and cost nothing more).
fn as_leaf(t: Tensor) -> Tensor {
    let t = if t.is_leaf() { t } else { t.detach() };
    t.requires_grad_(true)
        .expect("a leaf can require gradients")
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({:?})", self.get())
    }
}

/// A layer or model.
pub trait Module {
    /// Applies the module.
    fn forward(&self, x: &Tensor) -> Tensor;
    /// Parameters with PyTorch-style dotted names, in registration order.
    fn named_parameters(&self) -> Vec<(String, Param)>;
    /// Switches training behaviour (dropout) on or off.
    fn train(&mut self, _on: bool) {}
    /// Parameters in registration order.
    fn parameters(&self) -> Vec<Param> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }
    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }
}

/// Prefixes child parameter names: `prefixed("layers.0", child)` → `layers.0.weight`, ….
pub fn prefixed(prefix: &str, params: Vec<(String, Param)>) -> Vec<(String, Param)> {
    params
        .into_iter()
        .map(|(n, p)| (format!("{prefix}.{n}"), p))
        .collect()
}
