//! Layers with PyTorch's parameter layouts, names and default initialisations.

use super::{prefixed, Module, Param};
use crate::runtime::session;
use gt_client::Tensor;
use gt_core::DType;

/// Uniform values in `[-bound, bound)` of `shape` from the seeded generator.
fn uniform(shape: &[usize], bound: f64, dtype: DType) -> Tensor {
    let u = session()
        .try_rand(shape.to_vec(), dtype)
        .expect("valid shape");
    &u * (2.0 * bound) - bound
}

/// `y = x Wᵀ + b` with `weight: [out, in]` and `bias: [out]`, initialised like PyTorch
/// (uniform in ±1/√in for both).
pub struct Linear {
    /// `[out_features, in_features]`
    pub weight: Param,
    /// `[out_features]`, if any.
    pub bias: Option<Param>,
}

impl Linear {
    /// A layer with bias, f32.
    pub fn new(in_features: usize, out_features: usize) -> Linear {
        Linear::with_options(in_features, out_features, true, DType::F32)
    }
    /// A layer with or without bias, of `dtype`.
    pub fn with_options(
        in_features: usize,
        out_features: usize,
        bias: bool,
        dtype: DType,
    ) -> Linear {
        let bound = 1.0 / (in_features.max(1) as f64).sqrt();
        Linear {
            weight: Param::new(uniform(&[out_features, in_features], bound, dtype)),
            bias: bias.then(|| Param::new(uniform(&[out_features], bound, dtype))),
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.matmul(&self.weight.get().t());
        match &self.bias {
            Some(b) => &y + &b.get(),
            None => y,
        }
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        v
    }
}

/// A lookup table `[num_embeddings, dim]`, initialised standard normal like PyTorch.
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`
    pub weight: Param,
}

impl Embedding {
    /// A table of `num` rows of `dim` (f32).
    pub fn new(num: usize, dim: usize) -> Embedding {
        Embedding {
            weight: Param::new(
                session()
                    .try_randn([num, dim], DType::F32)
                    .expect("valid shape"),
            ),
        }
    }
}

impl Module for Embedding {
    /// `ids` (int64, any shape) → `[*ids.shape, dim]`.
    fn forward(&self, ids: &Tensor) -> Tensor {
        let w = self.weight.get();
        let flat = ids.reshape(&[-1]);
        let rows = w.index_select(0, &flat);
        let mut shape: Vec<isize> = ids.dims().iter().map(|&d| d as isize).collect();
        shape.push(w.dims()[1] as isize);
        rows.reshape(&shape)
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        vec![("weight".into(), self.weight.clone())]
    }
}

/// Layer normalisation over the last axis, with learnable `weight` (ones) and `bias` (zeros).
pub struct LayerNorm {
    /// `[dim]`
    pub weight: Param,
    /// `[dim]`
    pub bias: Param,
    /// Added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    /// Normalises vectors of `dim` (eps 1e-5 like PyTorch).
    pub fn new(dim: usize) -> LayerNorm {
        let s = session();
        LayerNorm {
            weight: Param::new(s.try_full([dim], 1.0, DType::F32).expect("valid")),
            bias: Param::new(s.try_full([dim], 0.0, DType::F32).expect("valid")),
            eps: 1e-5,
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            1,
            Some(&self.weight.get()),
            Some(&self.bias.get()),
            self.eps,
        )
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        vec![
            ("weight".into(), self.weight.clone()),
            ("bias".into(), self.bias.clone()),
        ]
    }
}

/// Root-mean-square normalisation over the last axis with a learnable `weight` (ones).
pub struct RmsNorm {
    /// `[dim]`
    pub weight: Param,
    /// Added to the mean square.
    pub eps: f64,
}

impl RmsNorm {
    /// Normalises vectors of `dim` (eps 1e-6).
    pub fn new(dim: usize) -> RmsNorm {
        RmsNorm {
            weight: Param::new(session().try_full([dim], 1.0, DType::F32).expect("valid")),
            eps: 1e-6,
        }
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Tensor {
        let ms = (x * x).mean_dims(&[-1], true);
        let inv = (ms + self.eps).sqrt();
        &(x / &inv) * &self.weight.get()
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        vec![("weight".into(), self.weight.clone())]
    }
}

/// Zeroes elements with probability `p` in training mode (scaling survivors by `1/(1-p)`).
pub struct Dropout {
    /// Drop probability.
    pub p: f64,
    training: bool,
}

impl Dropout {
    /// Dropout with probability `p` (training mode on).
    pub fn new(p: f64) -> Dropout {
        Dropout { p, training: true }
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.dropout(self.p, self.training)
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
    fn train(&mut self, on: bool) {
        self.training = on;
    }
}

/// Parameter-free activation as a module.
pub struct Activation(pub fn(&Tensor) -> Tensor);

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Tensor {
        (self.0)(x)
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}

/// ReLU as a module.
pub fn relu() -> Activation {
    Activation(|x| x.relu())
}
/// Sigmoid as a module.
pub fn sigmoid() -> Activation {
    Activation(|x| x.sigmoid())
}
/// Tanh as a module.
pub fn tanh() -> Activation {
    Activation(|x| x.tanh())
}
/// GELU (exact) as a module.
pub fn gelu() -> Activation {
    Activation(|x| x.gelu())
}

/// Modules applied in order; parameters are named `0.weight`, `1.bias`, ….
#[derive(Default)]
pub struct Sequential(pub Vec<Box<dyn Module>>);

impl Sequential {
    /// An empty sequence.
    pub fn new() -> Sequential {
        Sequential(Vec::new())
    }
    /// Appends a module.
    pub fn append(mut self, m: impl Module + 'static) -> Sequential {
        self.0.push(Box::new(m));
        self
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.0.iter().fold(x.clone(), |h, m| m.forward(&h))
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(i, m)| prefixed(&i.to_string(), m.named_parameters()))
            .collect()
    }
    fn train(&mut self, on: bool) {
        for m in &mut self.0 {
            m.train(on);
        }
    }
}
