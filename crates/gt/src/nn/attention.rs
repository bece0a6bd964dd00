//! Causal multi-head self-attention and a small GPT-style transformer built from it.

use super::layers::{Embedding, LayerNorm, Linear};
use super::{prefixed, Module, Param};
use crate::runtime::session;
use gt_client::Tensor;
use gt_core::DType;

/// Multi-head self-attention where position `t` attends to positions `≤ t`.
/// Parameters: `qkv` (`[3·dim, dim]`, one projection for queries, keys and values, like
/// nanoGPT's `c_attn`) and `proj` (`[dim, dim]`).
pub struct CausalSelfAttention {
    /// Joint query/key/value projection.
    pub qkv: Linear,
    /// Output projection.
    pub proj: Linear,
    /// Number of heads (`dim` must be divisible by it).
    pub heads: usize,
}

impl CausalSelfAttention {
    /// Attention over vectors of `dim` with `heads` heads.
    pub fn new(dim: usize, heads: usize) -> CausalSelfAttention {
        assert!(
            heads > 0 && dim.is_multiple_of(heads),
            "attention: dim {dim} is not divisible by {heads} heads"
        );
        CausalSelfAttention {
            qkv: Linear::new(dim, 3 * dim),
            proj: Linear::new(dim, dim),
            heads,
        }
    }
}

/// `[t, t]` bool mask, true above the diagonal (the future).
fn causal_mask(t: usize) -> Tensor {
    let s = session();
    let r = s
        .try_arange(0.0, t as f64, 1.0, DType::F32)
        .expect("valid arange");
    r.reshape(&[1, -1]).gt(&r.reshape(&[-1, 1]))
}

impl Module for CausalSelfAttention {
    /// `x: [batch, time, dim]` → `[batch, time, dim]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, t, d) = (
            x.dims()[0] as isize,
            x.dims()[1] as isize,
            x.dims()[2] as isize,
        );
        let h = self.heads as isize;
        let qkv = self.qkv.forward(x).chunk(3, -1);
        let heads = |z: &Tensor| z.reshape(&[b, t, h, d / h]).permute(&[0, 2, 1, 3]);
        let (q, k, v) = (heads(&qkv[0]), heads(&qkv[1]), heads(&qkv[2]));
        let scores = q.matmul(&k.transpose(-2, -1)) * (1.0 / ((d / h) as f64).sqrt());
        let att = scores
            .masked_fill(&causal_mask(t as usize), f64::NEG_INFINITY)
            .softmax(-1);
        let y = att.matmul(&v).permute(&[0, 2, 1, 3]).reshape(&[b, t, d]);
        self.proj.forward(&y)
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("qkv", self.qkv.named_parameters());
        v.extend(prefixed("proj", self.proj.named_parameters()));
        v
    }
}

/// A pre-norm transformer block: `x + attn(ln1(x))`, then `x + mlp(ln2(x))` with a GELU MLP of
/// width `4·dim`.
pub struct Block {
    /// Norm before attention.
    pub ln1: LayerNorm,
    /// Attention.
    pub attn: CausalSelfAttention,
    /// Norm before the MLP.
    pub ln2: LayerNorm,
    /// MLP expansion.
    pub fc: Linear,
    /// MLP projection.
    pub out: Linear,
}

impl Block {
    /// A block over vectors of `dim` with `heads` heads.
    pub fn new(dim: usize, heads: usize) -> Block {
        Block {
            ln1: LayerNorm::new(dim),
            attn: CausalSelfAttention::new(dim, heads),
            ln2: LayerNorm::new(dim),
            fc: Linear::new(dim, 4 * dim),
            out: Linear::new(4 * dim, dim),
        }
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x + &self.attn.forward(&self.ln1.forward(x));
        let m = self
            .out
            .forward(&self.fc.forward(&self.ln2.forward(&x)).gelu());
        &x + &m
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("ln1", self.ln1.named_parameters());
        v.extend(prefixed("attn", self.attn.named_parameters()));
        v.extend(prefixed("ln2", self.ln2.named_parameters()));
        v.extend(prefixed("fc", self.fc.named_parameters()));
        v.extend(prefixed("out", self.out.named_parameters()));
        v
    }
}

/// Sizes of a [`Gpt`].
#[derive(Clone, Copy, Debug)]
pub struct GptConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Longest context.
    pub context: usize,
    /// Model width.
    pub dim: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Number of blocks.
    pub layers: usize,
}

/// A small GPT: token + position embeddings, blocks, a final norm and a language-model head.
pub struct Gpt {
    /// Its sizes.
    pub config: GptConfig,
    /// Token embeddings `[vocab, dim]`.
    pub tok: Embedding,
    /// Position embeddings `[context, dim]`.
    pub pos: Embedding,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// Final norm.
    pub ln: LayerNorm,
    /// Logits head `[vocab, dim]`.
    pub head: Linear,
}

impl Gpt {
    /// A freshly initialised model.
    pub fn new(config: GptConfig) -> Gpt {
        Gpt {
            config,
            tok: Embedding::new(config.vocab, config.dim),
            pos: Embedding::new(config.context, config.dim),
            blocks: (0..config.layers)
                .map(|_| Block::new(config.dim, config.heads))
                .collect(),
            ln: LayerNorm::new(config.dim),
            head: Linear::new(config.dim, config.vocab),
        }
    }
}

impl Module for Gpt {
    /// `ids: [batch, time]` (int64, `time ≤ context`) → logits `[batch, time, vocab]`.
    fn forward(&self, ids: &Tensor) -> Tensor {
        let t = ids.dims()[1];
        assert!(
            t <= self.config.context,
            "gpt: {t} tokens exceed the context of {}",
            self.config.context
        );
        let positions = session()
            .try_arange(0.0, t as f64, 1.0, DType::I64)
            .expect("valid arange");
        let mut x = &self.tok.forward(ids) + &self.pos.forward(&positions);
        for b in &self.blocks {
            x = b.forward(&x);
        }
        self.head.forward(&self.ln.forward(&x))
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("tok", self.tok.named_parameters());
        v.extend(prefixed("pos", self.pos.named_parameters()));
        for (i, b) in self.blocks.iter().enumerate() {
            v.extend(prefixed(&format!("blocks.{i}"), b.named_parameters()));
        }
        v.extend(prefixed("ln", self.ln.named_parameters()));
        v.extend(prefixed("head", self.head.named_parameters()));
        v
    }
}
