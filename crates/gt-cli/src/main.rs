//! The `gt` binary: run a dispatcher or a worker, or benchmark the runtime.
//!
//! ```text
//! gt dispatcher --listen 127.0.0.1:29000 [--unix /tmp/gt.sock] [--log /tmp/gt.log] [--config shard.yaml]
//! gt worker --connect 127.0.0.1:29000
//! gt bench ops [--json]
//! gt bench shard [--json]
//! gt bench compile [--iters 100] [--warmup 5] [--large] [--json]
//! gt bench jit [--json] [--threads N]
//! gt trace --log /tmp/gt.log --chrome trace.json     (or --connect ADDR [--out FILE])
//! gt top --connect 127.0.0.1:29000
//! gt visualize /tmp/gt.log -o timeline.png
//! ```

mod bench;
mod bench_compile;
mod bench_jit;
mod bench_log;
mod bench_matmul;
mod bench_shard;
mod cluster;
mod top;
mod top_view;
mod trace;
mod trace_chrome;
mod trace_parse;
mod visualize;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gt::config::Config;
use gt_transport::Addr;

/// mimalloc instead of glibc's allocator: kernels allocate and free many small blocks per
/// step on the worker thread (gemm's packing buffers among them), and glibc serves aligned
/// requests under its arena lock (see README, "The eager per-instruction path").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// Have workers time every instruction while logging: an EXEC line each, drawn as
        /// execution slices by `gt trace` (default: GT_INSTRUCTION_LOG_TIMING).
        #[arg(long)]
        log_timing: bool,
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
    /// Turn an instruction log into a Chrome/Perfetto trace, or capture one from a running
    /// dispatcher.
    Trace {
        /// Read this instruction log (GT_INSTRUCTION_LOG / gt dispatcher --log).
        #[arg(long, value_name = "PATH", conflicts_with = "connect")]
        log: Option<std::path::PathBuf>,
        /// Attach to this running dispatcher (HOST:PORT or unix:/path) and capture until Ctrl-C
        /// or until the dispatcher exits.
        #[arg(long, value_name = "ADDR")]
        connect: Option<String>,
        /// Write Chrome trace-event JSON here (open it at https://ui.perfetto.dev).
        #[arg(long, value_name = "FILE")]
        chrome: Option<std::path::PathBuf>,
        /// With --connect: also write the captured lines here (an instruction log).
        #[arg(long, value_name = "FILE", requires = "connect")]
        out: Option<std::path::PathBuf>,
    },
    /// A live view of a running dispatcher's workers and clients (q or Esc quits).
    Top {
        /// The dispatcher's address: HOST:PORT or unix:/path.
        #[arg(long, value_name = "ADDR")]
        connect: String,
    },
    /// Draw a timeline (PNG or SVG, by the output's extension) from an instruction log.
    Visualize {
        /// The instruction log to draw.
        log: std::path::PathBuf,
        /// The picture to write: .png or .svg.
        #[arg(short, long, value_name = "FILE")]
        output: std::path::PathBuf,
        /// Width in pixels.
        #[arg(long, default_value_t = 1600)]
        width: u32,
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
    let base = match cli.command {
        Command::Bench { .. }
        | Command::Trace { .. }
        | Command::Top { .. }
        | Command::Visualize { .. } => "warn",
        Command::Dispatcher { .. } | Command::Worker { .. } => "info",
    };
    // GT_LOG (a full filter) wins; else the GT_VERBOSE / GT_DEBUG_* switches add to the base.
    let switches = Config::from_env()
        .ok()
        .and_then(|c| c.debug.filter(base))
        .unwrap_or_else(|| base.to_string());
    let filter = tracing_subscriber::EnvFilter::try_from_env("GT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(switches));
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
            log_timing,
        } => {
            let mut cfg = cfg;
            if let Some(p) = config {
                cfg.sharding = std::sync::Arc::new(gt::ShardConfig::from_file(&p)?);
            }
            dispatcher(&cfg, listen, unix, log, log_timing)
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
        Command::Trace {
            log,
            connect,
            chrome,
            out,
        } => trace::run(trace::TraceArgs {
            log,
            connect,
            chrome,
            out,
            token: cfg.token.clone(),
            max_frame: cfg.max_frame,
        }),
        Command::Top { connect } => top::run(&connect, cfg.token.clone(), cfg.max_frame),
        Command::Visualize { log, output, width } => visualize::run(&log, &output, width),
    }
}

fn dispatcher(
    cfg: &Config,
    listen: Option<String>,
    unix: Option<std::path::PathBuf>,
    log: Option<std::path::PathBuf>,
    log_timing: bool,
) -> Result<()> {
    let dcfg = gt_dispatcher::DispatcherConfig {
        core: cfg.core_config(),
        token: cfg.token.clone(),
        max_frame: cfg.max_frame,
        log: log.or_else(|| cfg.instruction_log.clone()),
        log_timing: log_timing || cfg.instruction_log_timing,
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
