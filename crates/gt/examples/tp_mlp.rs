//! A tensor-parallel MLP over 2 workers, driven by `configs/tp_mlp.yaml` (Megatron style): the
//! first linear layer is column-parallel (each worker holds some output features, so the
//! hidden activations stay split), the second is row-parallel (each worker holds the matching
//! input features and produces a partial sum, all-reduced once before the bias). A few SGD
//! steps are trained, and the same program is run on one worker to compare the losses.
//!
//! `cargo run --release --example tp_mlp -- [--steps N] [--workers N] [--config PATH]`

use gt::nn::{mse_loss, Linear, Module, Param};
use gt::optim::{Optimizer, Sgd};
use gt::runtime::Embedded;
use gt::Tensor;

#[path = "shard_common/mod.rs"]
mod shard_common;
use shard_common::Args;

/// `relu(x W1ᵀ + b1) W2ᵀ + b2`, with W1/b1 split by output feature and W2 by input feature.
struct TensorParallelMlp {
    column: Linear,
    row: Linear,
    bias: Param,
}

impl TensorParallelMlp {
    fn new(d: usize, h: usize, o: usize) -> TensorParallelMlp {
        let column = gt::signal::scope("column", || Linear::new(d, h));
        let row = gt::signal::scope("row", || Linear::with_options(h, o, false, gt::DType::F32));
        let bias = gt::signal::scope("replicated", || Param::new(gt::zeros([o])));
        TensorParallelMlp { column, row, bias }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let hidden = self.column.forward(x).relu(); // split over the hidden features
        &self.row.forward(&hidden) + &self.bias.get() // partial sums, all-reduced here
    }

    fn parameters(&self) -> Vec<Param> {
        let mut p = self.column.parameters();
        p.extend(self.row.parameters());
        p.push(self.bias.clone());
        p
    }
}

fn train(workers: usize, a: &Args) -> gt::Result<(Vec<f64>, gt::DispatcherStats)> {
    let rt = Embedded::start(workers, 1, &gt::config::Config::default())?;
    gt::runtime::set_default_session(rt.session("tp_mlp")?);
    gt::load_config(&a.config)?;
    gt::manual_seed(0);
    let (x, y) = gt::signal::scope("replicated", || {
        let x = gt::randn([64, 32]);
        let m = gt::randn([32, 8]);
        (x.clone(), x.matmul(&m).tanh())
    });
    let model = TensorParallelMlp::new(32, 128, 8);
    let mut opt = Sgd::new(model.parameters(), 0.1);
    let mut losses = Vec::with_capacity(a.steps);
    for _ in 0..a.steps {
        opt.zero_grad();
        let loss = mse_loss(&model.forward(&x), &y);
        loss.backward()?; // gradient ops take the `backward:` placement of the config
        opt.step()?;
        losses.push(loss.item()?);
    }
    Ok((losses, gt::debug::dispatcher_stats()?))
}

fn main() -> gt::Result<()> {
    let a = shard_common::args("tp_mlp", 30);
    let (tp, stats) = train(a.workers, &a)?;
    let (single, _) = train(1, &a)?;
    shard_common::report("tensor parallel", &a, &tp, &single, &stats);
    Ok(())
}
