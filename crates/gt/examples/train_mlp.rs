//! Train a 4→8→1 MLP to tell whether the features of a sample sum to a positive number:
//! 100 samples, sigmoid output, MSE loss, 100 epochs of SGD at lr 0.1.
//!
//! `cargo run --release --example train_mlp` (add `-- --epochs 10` for a short run).

use gt::nn::{mse_loss, Linear, Module, Sequential};
use gt::optim::{Optimizer, Sgd};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

fn epochs_from_args() -> usize {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--epochs") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                eprintln!("usage: train_mlp [--epochs N]");
                std::process::exit(2)
            }),
        None => 100,
    }
}

fn main() -> gt::Result<()> {
    let epochs = epochs_from_args();
    gt::manual_seed(0);
    let x = gt::randn([100, 4]);
    let y = x
        .sum_dims(&[1], true)
        .gt_scalar(0.0)
        .to_dtype(gt::DType::F32);

    let model = Sequential::new()
        .append(Linear::new(4, 8))
        .append(gt::nn::layers::relu())
        .append(Linear::new(8, 1))
        .append(gt::nn::layers::sigmoid());
    let mut opt = Sgd::new(model.parameters(), 0.1);

    let bar = ProgressBar::new(epochs as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} epochs  {msg}").expect("valid template"),
    );
    let start = Instant::now();
    let mut first_loss = None;
    let mut last_loss = 0.0;
    for epoch in 1..=epochs {
        opt.zero_grad();
        let loss = mse_loss(&model.forward(&x), &y);
        loss.backward()?;
        opt.step()?;
        if epoch % 10 == 0 || epoch == epochs {
            last_loss = loss.item()?;
            first_loss.get_or_insert(last_loss);
            let line = format!("epoch {epoch:>4}  loss {last_loss:.4}");
            if bar.is_hidden() {
                println!("{line}"); // not a terminal: plain lines
            } else {
                bar.println(line);
            }
            bar.set_message(format!("loss {last_loss:.4}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let pred = gt::no_grad_eval(|| model.forward(&x).gt_scalar(0.5).to_dtype(gt::DType::F32));
    let accuracy = pred.eq(&y).to_dtype(gt::DType::F32).mean().item()?;
    println!(
        "trained {epochs} epochs in {:.2}s: loss {:.4} -> {last_loss:.4}, accuracy {:.1}%",
        start.elapsed().as_secs_f64(),
        first_loss.unwrap_or(last_loss),
        accuracy * 100.0
    );
    Ok(())
}
