//! A small character-level causal transformer trained on Shakespeare's sonnets (shipped in
//! `data/sonnets.txt`), then asked to write a line.
//!
//! `cargo run --release --example train_transformer` (add `-- --steps 20` for a short run).

use gt::nn::{cross_entropy, Gpt, GptConfig, Module};
use gt::optim::{Adam, CosineLr, Optimizer};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

const TEXT: &str = include_str!("../../../data/sonnets.txt");
const BATCH: usize = 16;
const CONTEXT: usize = 32;

/// A tiny deterministic generator for batch offsets and sampling (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn steps_from_args() -> usize {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--steps") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                eprintln!("usage: train_transformer [--steps N]");
                std::process::exit(2)
            }),
        None => 300,
    }
}

fn main() -> gt::Result<()> {
    let steps = steps_from_args();
    gt::manual_seed(0);
    let mut vocab: Vec<char> = TEXT.chars().collect();
    vocab.sort_unstable();
    vocab.dedup();
    let encode = |c: char| vocab.binary_search(&c).expect("in vocabulary") as i64;
    let data: Vec<i64> = TEXT.chars().map(encode).collect();
    let config = GptConfig {
        vocab: vocab.len(),
        context: CONTEXT,
        dim: 64,
        heads: 4,
        layers: 2,
    };
    let model = Gpt::new(config);
    let params = model.parameters();
    println!(
        "{} characters, vocabulary {}, {} parameter tensors; {steps} steps of AdamW, batch {BATCH} x {CONTEXT}",
        data.len(),
        vocab.len(),
        params.len()
    );
    let mut opt = Adam::adamw(params, 3e-3);
    let mut schedule = CosineLr::new(&opt, steps, 3e-4);
    let mut rng = Rng(0x5EED);

    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {msg}").expect("valid template"),
    );
    let report = |line: String| {
        if bar.is_hidden() {
            println!("{line}")
        } else {
            bar.println(line)
        }
    };
    let start = Instant::now();
    let (mut first, mut last) = (None, 0.0);
    for step in 1..=steps {
        let mut x = Vec::with_capacity(BATCH * CONTEXT);
        let mut y = Vec::with_capacity(BATCH * CONTEXT);
        for _ in 0..BATCH {
            let at = rng.below(data.len() - CONTEXT - 1);
            x.extend_from_slice(&data[at..at + CONTEXT]);
            y.extend_from_slice(&data[at + 1..at + CONTEXT + 1]);
        }
        let ids = gt::tensor_i64(&x, [BATCH, CONTEXT]);
        let targets = gt::tensor_i64(&y, [BATCH * CONTEXT]);
        opt.zero_grad();
        let logits = model
            .forward(&ids)
            .reshape(&[(BATCH * CONTEXT) as isize, -1]);
        let loss = cross_entropy(&logits, &targets, None)?;
        loss.backward()?;
        opt.step()?;
        schedule.step(&mut opt);
        if step % 25 == 0 || step == 1 || step == steps {
            last = loss.item()?;
            first.get_or_insert(last);
            report(format!("step {step:>4}  loss {last:.3}"));
            bar.set_message(format!("loss {last:.3}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();

    // Sample a line, one character at a time, at temperature 0.8.
    let mut text: Vec<i64> = "Shall I ".chars().map(encode).collect();
    let _g = gt::no_grad();
    for _ in 0..80 {
        let window = &text[text.len().saturating_sub(CONTEXT)..];
        let ids = gt::tensor_i64(window, [1, window.len()]);
        let logits = model.forward(&ids).index(&[0.into(), (-1).into()]);
        let probs = (logits / 0.8).softmax(-1).to_vec_f64()?;
        let mut u = rng.unit();
        let next = probs.iter().position(|&p| {
            u -= p;
            u <= 0.0
        });
        let next = next.unwrap_or(probs.len() - 1);
        if vocab[next] == '\n' {
            break;
        }
        text.push(next as i64);
    }
    let line: String = text.iter().map(|&i| vocab[i as usize]).collect();
    println!(
        "trained {steps} steps in {secs:.1}s ({:.1} ms/step): loss {:.3} -> {last:.3}",
        secs * 1e3 / steps as f64,
        first.unwrap_or(last)
    );
    println!("sample: {line}");
    Ok(())
}
