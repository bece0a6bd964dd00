//! The `gt` binary: run a dispatcher or a worker, or benchmark the runtime.
//!
//! ```text
//! gt dispatcher --listen 127.0.0.1:29000 [--unix /tmp/gt.sock] [--log /tmp/gt.log] [--config shard.yaml]
//! gt worker --connect 127.0.0.1:29000
//! gt bench ops [--json]
//! gt bench shard [--json]
//! gt bench compile [--iters 100] [--warmup 5] [--large] [--json]
//! gt bench jit [--json] [--threads N]
//! ```

mod bench;
mod bench_compile;
mod bench_jit;
mod bench_shard;
mod cluster;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gt::config::Config;
use gt_transport::Addr;

#[derive(Parser)]
#[command(name = "gt", version, about = "GT: a multiplexing tensor runtime", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a dispatcher: clients and workers connect to it.
    Dispatcher {
        /// TCP address to listen on. Binds to localhost unless you name another interface
        /// (e.g. 0.0.0.0:29000 to accept other machines). Port 0 picks a free port. Defaults to
        /// 127.0.0.1:29000 when no --unix socket is given.
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<String>,
        /// Also (or only) listen on this Unix socket path.
        #[arg(long, value_name = "PATH")]
        unix: Option<std::path::PathBuf>,
        /// Write the instruction log (one line per event) to this file (default:
        /// GT_INSTRUCTION_LOG).
        #[arg(long, value_name = "PATH")]
        log: Option<std::path::PathBuf>,
        /// Sharding/compile config (YAML) every session starts with (default: GT_CONFIG).
        /// Validated before the dispatcher starts.
        #[arg(long, value_name = "PATH")]
        config: Option<std::path::PathBuf>,
    },
    /// Run a worker that executes instructions for a dispatcher.
    Worker {
        /// The dispatcher's address: HOST:PORT or unix:/path.
        #[arg(long, value_name = "ADDR")]
        connect: String,
        /// Compute threads (default: GT_WORKER_THREADS, else all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Where to listen for tensors sent by other workers (port 0 picks one).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
        peer_listen: String,
        /// The address other workers should use for --peer-listen (needed when workers run on
        /// different machines).
        #[arg(long, value_name = "HOST:PORT")]
        advertise: Option<String>,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() {
    let cli = Cli::parse();
    // Servers report joins and losses; benchmarks keep their output clean.
    let default = match cli.command {
        Command::Bench { .. } => "warn",
        Command::Dispatcher { .. } | Command::Worker { .. } => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(cli) {
        eprintln!("gt: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let cfg = Config::from_env()?;
    match cli.command {
        Command::Dispatcher {
            listen,
            unix,
            log,
            config,
        } => {
            let mut cfg = cfg;
            if let Some(p) = config {
                cfg.sharding = std::sync::Arc::new(gt::ShardConfig::from_file(&p)?);
            }
            dispatcher(&cfg, listen, unix, log)
        }
        Command::Worker {
            connect,
            threads,
            peer_listen,
            advertise,
        } => {
            let addr: Addr = connect.parse()?;
            let wcfg = gt_worker::server::WorkerConfig {
                threads: threads.unwrap_or_else(|| cfg.threads_per_worker(1)),
                token: cfg.token.clone(),
                max_frame: cfg.max_frame,
                peer_listen: peer_listen.parse()?,
                advertise,
                hotpath: cfg.hotpath.clone(),
                ..Default::default()
            };
            ctrlc::set_handler(|| {
                tracing::info!("interrupted; worker exits");
                std::process::exit(0);
            })
            .context("installing the Ctrl-C handler")?;
            gt_worker::server::run(&addr, &wcfg).with_context(|| format!("worker for {addr}"))
        }
        Command::Bench { which } => bench::run(which, &cfg),
    }
}

fn dispatcher(
    cfg: &Config,
    listen: Option<String>,
    unix: Option<std::path::PathBuf>,
    log: Option<std::path::PathBuf>,
) -> Result<()> {
    let dcfg = gt_dispatcher::DispatcherConfig {
        core: cfg.core_config(),
        token: cfg.token.clone(),
        max_frame: cfg.max_frame,
        log: log.or_else(|| cfg.instruction_log.clone()),
        ..Default::default()
    };
    let d = std::sync::Arc::new(gt_dispatcher::Dispatcher::try_start(dcfg)?);
    let listen = match (&listen, &unix) {
        (None, None) => Some("127.0.0.1:29000".to_string()),
        _ => listen,
    };
    if let Some(l) = listen {
        let bound = d.listen(&Addr::Tcp(l))?;
        println!("gt dispatcher listening on {bound}");
    }
    if let Some(p) = unix {
        let bound = d.listen(&Addr::Unix(p))?;
        println!("gt dispatcher listening on {bound}");
    }
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C handler")?;
    let _ = stop_rx.recv();
    tracing::info!("interrupted; shutting down");
    d.shutdown();
    Ok(())
}
