//! What the sharding examples (`dp_mlp`, `tp_mlp`) share: their command line and the report
//! comparing the sharded run with the single-worker run.

/// `[--steps N] [--workers N] [--config PATH]`.
pub struct Args {
    pub steps: usize,
    pub workers: usize,
    pub config: std::path::PathBuf,
}

/// Parses the command line of example `name` (defaults: `steps`, 2 workers, `configs/<name>.yaml`).
pub fn args(name: &str, steps: usize) -> Args {
    let mut a = Args {
        steps,
        workers: 2,
        config: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(format!("{name}.yaml")),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let value = it.next();
        let ok = match (flag.as_str(), value) {
            ("--steps", Some(v)) => v.parse().map(|n| a.steps = n).is_ok(),
            ("--workers", Some(v)) => v.parse().map(|n: usize| a.workers = n.max(1)).is_ok(),
            ("--config", Some(v)) => {
                a.config = v.into();
                true
            }
            _ => false,
        };
        if !ok {
            eprintln!("usage: {name} [--steps N] [--workers N] [--config PATH]");
            std::process::exit(2);
        }
    }
    a
}

/// Prints both runs' losses, their largest relative difference and the sharding counters.
pub fn report(label: &str, a: &Args, sharded: &[f64], single: &[f64], stats: &gt::DispatcherStats) {
    let diff = sharded
        .iter()
        .zip(single)
        .map(|(p, q)| (p - q).abs() / q.abs().max(1e-12))
        .fold(0.0, f64::max);
    let head = format!("{label} on {} workers:", a.workers);
    println!(
        "{head} loss {:.5} -> {:.5} over {} steps",
        sharded[0],
        sharded[sharded.len() - 1],
        a.steps
    );
    println!(
        "{:<w$} loss {:.5} -> {:.5}",
        "single worker:",
        single[0],
        single[single.len() - 1],
        w = head.len()
    );
    println!("max relative loss difference {diff:.2e}");
    println!(
        "sharding: {} sharded ops, {} all-reduces, {} transfers, {} bytes moved, {} gathered ops",
        stats.shard.sharded_ops,
        stats.shard.all_reduces,
        stats.shard.transfers,
        stats.shard.bytes_moved,
        stats.shard.gathered_ops
    );
}
