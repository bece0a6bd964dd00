//! Optimizers with PyTorch's update rules (SGD with momentum/Nesterov/weight decay, Adam, AdamW)
//! and learning-rate schedules. Updates are streamed ops outside autograd; each step puts the new
//! value in the parameter's [`Param`] slot.

use crate::nn::Param;
use gt_client::{no_grad, Tensor};
use gt_core::{DType, Error, Result, Shape};

/// Something that updates parameters from their gradients.
pub trait Optimizer {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;
    /// Clears every parameter's gradient.
    fn zero_grad(&self);
    /// The current learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (schedules call this).
    fn set_lr(&mut self, lr: f64);
}

/// Stochastic gradient descent (`torch.optim.SGD`).
pub struct Sgd {
    params: Vec<Param>,
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    /// Plain SGD.
    pub fn new(params: Vec<Param>, lr: f64) -> Sgd {
        Sgd {
            buffers: vec![None; params.len()],
            params,
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
    /// With momentum (and optionally Nesterov).
    pub fn momentum(mut self, momentum: f64, nesterov: bool) -> Sgd {
        self.momentum = momentum;
        self.nesterov = nesterov;
        self
    }
    /// With L2 weight decay added to the gradient.
    pub fn weight_decay(mut self, wd: f64) -> Sgd {
        self.weight_decay = wd;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::invalid(
                "SGD",
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        let _g = no_grad();
        for (p, buf) in self.params.iter().zip(self.buffers.iter_mut()) {
            let Some(mut g) = p.grad() else { continue };
            let w = p.get();
            if self.weight_decay != 0.0 {
                g = g.try_add(&w.try_mul_scalar(self.weight_decay)?)?;
            }
            if self.momentum != 0.0 {
                let b = match buf.take() {
                    None => g.clone(),
                    Some(b) => b
                        .try_mul_scalar(self.momentum)?
                        .try_add(&g.try_mul_scalar(1.0 - self.dampening)?)?,
                };
                g = if self.nesterov {
                    g.try_add(&b.try_mul_scalar(self.momentum)?)?
                } else {
                    b.clone()
                };
                *buf = Some(b);
            }
            p.set(w.try_sub(&g.try_mul_scalar(self.lr)?)?);
        }
        Ok(())
    }
    fn zero_grad(&self) {
        self.params.iter().for_each(Param::zero_grad);
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// Adam (`torch.optim.Adam`) and, with decoupled weight decay, AdamW.
pub struct Adam {
    params: Vec<Param>,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    step: u32,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
}

impl Adam {
    /// Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8, no weight decay).
    pub fn new(params: Vec<Param>, lr: f64) -> Adam {
        let n = params.len();
        Adam {
            params,
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            step: 0,
            m: vec![None; n],
            v: vec![None; n],
        }
    }
    /// AdamW with PyTorch's defaults (weight decay 0.01, decoupled from the gradient).
    pub fn adamw(params: Vec<Param>, lr: f64) -> Adam {
        Adam {
            weight_decay: 0.01,
            decoupled: true,
            ..Adam::new(params, lr)
        }
    }
    /// Sets the moment decay rates.
    pub fn betas(mut self, b1: f64, b2: f64) -> Adam {
        self.betas = (b1, b2);
        self
    }
    /// Sets the denominator epsilon.
    pub fn eps(mut self, eps: f64) -> Adam {
        self.eps = eps;
        self
    }
    /// Sets the weight decay (L2 for Adam, decoupled for AdamW).
    pub fn weight_decay(mut self, wd: f64) -> Adam {
        self.weight_decay = wd;
        self
    }
}

/// A per-step constant as a 0-d tensor of `like`'s dtype and session, uploaded rather than
/// written into the ops: the instruction stream of every step is then the same program, so
/// the hot-path compiler sees one repeating training step instead of a new one per step.
/// Casting to the dtype first gives exactly what the tensor-scalar op computes.
fn step_constant(like: &Tensor, value: f64) -> Result<Tensor> {
    let s = like.session();
    match like.dtype() {
        DType::F64 => s.try_tensor_f64(&[value], Shape::scalar()),
        _ => s.try_tensor(&[value as f32], Shape::scalar()),
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        let _g = no_grad();
        self.step += 1;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        // The two step-dependent factors, one upload each per dtype.
        let mut consts: Vec<(DType, Tensor, Tensor)> = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            let Some(mut g) = p.grad() else { continue };
            let mut w = p.get();
            let (sqrt_bc2, step_size) = match consts.iter().find(|c| c.0 == w.dtype()) {
                Some(c) => (c.1.clone(), c.2.clone()),
                None => {
                    let c = (
                        w.dtype(),
                        step_constant(&w, bc2.sqrt())?,
                        step_constant(&w, self.lr / bc1)?,
                    );
                    consts.push(c.clone());
                    (c.1, c.2)
                }
            };
            if self.weight_decay != 0.0 {
                if self.decoupled {
                    // Uploaded too: a learning-rate schedule changes it every step.
                    let decay = step_constant(&w, 1.0 - self.lr * self.weight_decay)?;
                    w = w.try_mul(&decay)?;
                } else {
                    g = g.try_add(&w.try_mul_scalar(self.weight_decay)?)?;
                }
            }
            let m = match self.m[i].take() {
                None => g.try_mul_scalar(1.0 - b1)?,
                Some(m) => m
                    .try_mul_scalar(b1)?
                    .try_add(&g.try_mul_scalar(1.0 - b1)?)?,
            };
            let g2 = g.try_mul(&g)?;
            let v = match self.v[i].take() {
                None => g2.try_mul_scalar(1.0 - b2)?,
                Some(v) => v
                    .try_mul_scalar(b2)?
                    .try_add(&g2.try_mul_scalar(1.0 - b2)?)?,
            };
            // PyTorch: denom = sqrt(v) / sqrt(bc2) + eps; p -= (lr / bc1) * m / denom.
            let denom = v.try_sqrt()?.try_div(&sqrt_bc2)?.try_add_scalar(self.eps)?;
            let update = m.try_div(&denom)?.try_mul(&step_size)?;
            p.set(w.try_sub(&update)?);
            self.m[i] = Some(m);
            self.v[i] = Some(v);
        }
        Ok(())
    }
    fn zero_grad(&self) {
        self.params.iter().for_each(Param::zero_grad);
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// Multiplies the learning rate by `gamma` every `step_size` epochs (`torch.optim.lr_scheduler.StepLR`).
pub struct StepLr {
    base: f64,
    step_size: usize,
    gamma: f64,
    epoch: usize,
}

impl StepLr {
    /// A schedule starting from the optimizer's current rate.
    pub fn new(opt: &dyn Optimizer, step_size: usize, gamma: f64) -> StepLr {
        StepLr {
            base: opt.lr(),
            step_size: step_size.max(1),
            gamma,
            epoch: 0,
        }
    }
    /// Advances one epoch and updates the optimizer's rate.
    pub fn step(&mut self, opt: &mut dyn Optimizer) {
        self.epoch += 1;
        opt.set_lr(self.base * self.gamma.powi((self.epoch / self.step_size) as i32));
    }
}

/// Cosine annealing from the initial rate to `eta_min` over `t_max` steps
/// (`torch.optim.lr_scheduler.CosineAnnealingLR`, closed form).
pub struct CosineLr {
    base: f64,
    eta_min: f64,
    t_max: usize,
    t: usize,
}

impl CosineLr {
    /// A schedule starting from the optimizer's current rate.
    pub fn new(opt: &dyn Optimizer, t_max: usize, eta_min: f64) -> CosineLr {
        CosineLr {
            base: opt.lr(),
            eta_min,
            t_max: t_max.max(1),
            t: 0,
        }
    }
    /// Advances one step and updates the optimizer's rate.
    pub fn step(&mut self, opt: &mut dyn Optimizer) {
        self.t += 1;
        let cos = (std::f64::consts::PI * self.t as f64 / self.t_max as f64).cos();
        opt.set_lr(self.eta_min + (self.base - self.eta_min) * (1.0 + cos) / 2.0);
    }
}
