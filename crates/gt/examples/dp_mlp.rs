//! Data-parallel training of a 16→64→4 MLP over 2 workers, driven by `configs/dp_mlp.yaml`:
//! the batch is created in the `batch` signal (rows split over the workers), the model in
//! `params` (replicated). Each worker runs forward and backward on its rows; the weight
//! gradients are partial sums that the SGD update all-reduces worker to worker. The same
//! program then runs on one worker, and the losses are compared.
//!
//! `cargo run --release --example dp_mlp -- [--steps N] [--workers N] [--config PATH]`

use gt::nn::{mse_loss, Linear, Module, Sequential};
use gt::optim::{Optimizer, Sgd};
use gt::runtime::Embedded;

#[path = "shard_common/mod.rs"]
mod shard_common;
use shard_common::Args;

/// Trains on a fresh embedded runtime of `workers` workers; returns the losses.
fn train(workers: usize, a: &Args) -> gt::Result<(Vec<f64>, gt::DispatcherStats)> {
    let rt = Embedded::start(workers, 1, &gt::config::Config::default())?;
    gt::runtime::set_default_session(rt.session("dp_mlp")?);
    gt::load_config(&a.config)?;
    gt::manual_seed(0);
    let (x, y) = gt::signal::scope("batch", || {
        let x = gt::randn([256, 16]);
        // A target the model can learn: a fixed random linear map of the features, squashed.
        let m = gt::randn([16, 4]);
        (x.clone(), x.matmul(&m).tanh())
    });
    let model = gt::signal::scope("params", || {
        Sequential::new()
            .append(Linear::new(16, 64))
            .append(gt::nn::layers::relu())
            .append(Linear::new(64, 4))
    });
    let mut opt = Sgd::new(model.parameters(), 0.2);
    let mut losses = Vec::with_capacity(a.steps);
    for _ in 0..a.steps {
        opt.zero_grad();
        let loss = mse_loss(&model.forward(&x), &y);
        loss.backward()?; // gradient ops take the `backward:` placement of the config
        opt.step()?;
        losses.push(loss.item()?);
    }
    let stats = gt::debug::dispatcher_stats()?;
    Ok((losses, stats))
}

fn main() -> gt::Result<()> {
    let a = shard_common::args("dp_mlp", 50);
    let (dp, stats) = train(a.workers, &a)?;
    let (single, _) = train(1, &a)?;
    shard_common::report("data parallel", &a, &dp, &single, &stats);
    Ok(())
}
