//! Runs every example in a short mode (the binaries `cargo test` builds next to this test).

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps");
    dir.join("examples").join(name)
}

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn quickstart_runs() {
    let out = run("quickstart", &[]);
    assert!(
        out.contains("after 1000 adds every element is 1000"),
        "{out}"
    );
    assert!(out.contains("shape error in matmul"), "{out}");
}

#[test]
fn train_mlp_learns() {
    let out = run("train_mlp", &["--epochs", "100"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("trained"))
        .expect("summary line");
    let acc: f64 = line
        .rsplit("accuracy ")
        .next()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(acc >= 80.0, "{line}");
}

#[test]
fn train_transformer_loss_falls_and_it_samples() {
    let out = run("train_transformer", &["--steps", "40"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("trained"))
        .expect("summary line");
    let losses: Vec<f64> = line
        .split("loss ")
        .nth(1)
        .unwrap()
        .split(" -> ")
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert!(losses[1] < losses[0] - 0.5, "{line}");
    assert!(
        out.lines().any(|l| l.starts_with("sample: Shall I")),
        "{out}"
    );
}

/// The max relative loss difference an example reports against its single-worker run.
fn loss_difference(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix("max relative loss difference "))
        .expect("difference line")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn dp_mlp_matches_one_worker_and_all_reduces() {
    let out = run("dp_mlp", &["--steps", "8"]);
    assert!(loss_difference(&out) < 1e-5, "{out}");
    assert!(out.contains(", 0 gathered ops"), "{out}");
    assert!(!out.contains(" 0 all-reduces"), "{out}");
}

#[test]
fn tp_mlp_matches_one_worker() {
    let out = run("tp_mlp", &["--steps", "5", "--workers", "3"]);
    assert!(loss_difference(&out) < 1e-5, "{out}");
    assert!(out.contains("tensor parallel on 3 workers"), "{out}");
}
