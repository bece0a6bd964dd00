//! The process's default session. The first op without an explicit [`connect`] joins `GT_ADDR`
//! if set, and otherwise starts an embedded runtime: a dispatcher and `GT_WORKERS` workers in
//! this process, linked by in-process channels (no serialization).

use crate::config::Config;
use gt_client::connect::ConnectOptions;
use gt_client::{ReplyRouter, Session};
use gt_core::Result;
use gt_dispatcher::{CoreConfig, Dispatcher, DispatcherConfig};
use gt_transport::{Hunger, Tx};
use gt_worker::cpu::CpuEngine;
use gt_worker::peers::{InProcPeers, PeerNet};
use gt_worker::server::Worker;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

static CONFIG: OnceLock<Result<Config>> = OnceLock::new();
static DEFAULT: Mutex<Option<Session>> = Mutex::new(None);

/// The configuration read from the environment (once). When a debug switch is on
/// (`GT_VERBOSE`, `GT_DEBUG_*`), a stderr `tracing` subscriber is installed for them, unless the
/// program installed its own first.
pub fn config() -> Result<Config> {
    CONFIG
        .get_or_init(|| {
            let c = Config::from_env()?;
            install_debug_output(&c.debug);
            Ok(c)
        })
        .clone()
}

/// Installs a stderr subscriber for the switches in `d` (nothing when none is on, or when the
/// process already has a subscriber).
pub fn install_debug_output(d: &crate::config::Debug) {
    if let Some(filter) = d.filter("warn") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// An embedded runtime: a dispatcher and workers in this process.
pub struct Embedded {
    dispatcher: Dispatcher,
    config: Config,
    /// Workers waiting for work; sessions send their batches early while one waits.
    hunger: Hunger,
}

impl Embedded {
    /// Starts a dispatcher and `workers` workers with `threads` compute threads each. The
    /// config's debug switches (`GT_VERBOSE`, `GT_DEBUG_*`) install the stderr subscriber as
    /// [`config`] does, unless the program has one.
    pub fn start(workers: usize, threads: usize, config: &Config) -> Result<Embedded> {
        config.sharding.validate(Some(workers))?;
        install_debug_output(&config.debug);
        // Workers waiting for work: sessions and the dispatcher's core send early while one waits.
        let hunger = Hunger::new();
        let dcfg = DispatcherConfig {
            core: CoreConfig {
                hunger: Some(hunger.clone()),
                ..config.core_config()
            },
            token: config.token.clone(),
            max_frame: config.max_frame,
            log: config.instruction_log.clone(),
            log_timing: config.instruction_log_timing,
            ..Default::default()
        };
        let dispatcher = Dispatcher::try_start(dcfg)?;
        let peers = Arc::new(InProcPeers::default());

        for i in 0..workers {
            let w = Worker::new()
                .with_hotpath(config.hotpath.clone())
                .with_hunger(hunger.clone());
            let addr = format!("inproc:{i}");
            peers.register(&addr, w.mailbox());
            let (id, replies) = dispatcher.connect_worker(&addr, w.inbound().into_tx())?;
            w.start(
                id,
                replies,
                CpuEngine::new(threads),
                PeerNet::InProc(peers.clone()),
                Duration::from_secs(60),
            );
        }
        tracing::debug!(target: "gt::runtime", "embedded runtime with {workers} workers x {threads} threads");
        Ok(Embedded {
            dispatcher,
            config: config.clone(),
            hunger,
        })
    }

    /// A new client session on this runtime.
    pub fn session(&self, name: &str) -> Result<Session> {
        let router = ReplyRouter::new();
        let r = router.clone();
        let deliver = Tx::from_fn(move |replies| {
            r.deliver(replies);
            Ok(())
        });
        let (_, workers, tx) = self.dispatcher.connect_client(name, deliver)?;
        Ok(Session::watching(
            tx,
            router,
            workers,
            self.config.client_batch,
            name.into(),
            Some(self.hunger.clone()),
        ))
    }

    /// Starts listening on `addr` too, so other processes can join this runtime.
    pub fn listen(&self, addr: &str) -> Result<String> {
        Ok(self.dispatcher.listen(&addr.parse()?)?.to_string())
    }
}

static EMBEDDED: OnceLock<Embedded> = OnceLock::new();
/// Worker count set by [`set_embedded_workers`], overriding `GT_WORKERS`.
static WORKERS_OVERRIDE: Mutex<Option<usize>> = Mutex::new(None);

/// Sets how many workers the embedded runtime starts with (overrides `GT_WORKERS`; the Python
/// package's `gt.gpu_workers(n)`). Only possible before the runtime has started.
pub fn set_embedded_workers(n: usize) -> Result<()> {
    if n == 0 {
        return Err(gt_core::Error::invalid(
            "set_embedded_workers",
            "needs at least one worker",
        ));
    }
    let mut o = WORKERS_OVERRIDE.lock().unwrap();
    if EMBEDDED.get().is_some() {
        return Err(gt_core::Error::invalid(
            "set_embedded_workers",
            "the embedded runtime has already started; set the worker count before the first op",
        ));
    }
    *o = Some(n);
    Ok(())
}

fn start_default() -> Result<Session> {
    let cfg = config()?;
    if let Some(addr) = &cfg.addr {
        return gt_client::connect(addr, &connect_options(&cfg));
    }
    let rt = match EMBEDDED.get() {
        Some(rt) => rt,
        None => {
            let workers = WORKERS_OVERRIDE.lock().unwrap().unwrap_or(cfg.workers);
            let rt = Embedded::start(workers, cfg.threads_per_worker(workers), &cfg)?;
            if cfg.instruction_log.is_some() {
                finish_log_at_exit();
            }
            EMBEDDED.get_or_init(|| rt)
        }
    };
    rt.session("embedded")
}

/// The default runtime lives in a static, which is never dropped: without this, a program that
/// simply returns from `main` would lose the instruction log's last lines (still queued for the
/// writer thread). At exit, the dispatcher is shut down, which writes the log out.
#[cfg(unix)]
fn finish_log_at_exit() {
    extern "C" fn finish() {
        if let Some(rt) = EMBEDDED.get() {
            rt.dispatcher.shutdown();
        }
    }
    // SAFETY: registers a plain `extern "C"` function with no arguments, as atexit requires.
    let rc = unsafe { libc::atexit(finish) };
    if rc != 0 {
        tracing::warn!(target: "gt::runtime", "cannot register the exit hook; the end of the instruction log may be lost if the program exits without dropping its runtime");
    }
}

#[cfg(not(unix))]
fn finish_log_at_exit() {}

fn connect_options(cfg: &Config) -> ConnectOptions {
    ConnectOptions {
        token: cfg.token.clone(),
        batch_size: cfg.client_batch,
        max_frame: cfg.max_frame,
        ..Default::default()
    }
}

/// The default session, started on first use.
pub fn try_session() -> Result<Session> {
    let mut d = DEFAULT.lock().unwrap();
    if let Some(s) = d.as_ref() {
        return Ok(s.clone());
    }
    let s = start_default()?;
    *d = Some(s.clone());
    Ok(s)
}

/// The default session (panics if no runtime can be started, e.g. `GT_ADDR` is unreachable).
#[track_caller]
pub fn session() -> Session {
    match try_session() {
        Ok(s) => s,
        Err(e) => panic!("GT runtime unavailable: {e}"),
    }
}

/// Joins the dispatcher at `addr` (`host:port` or `unix:/path`); later ops of this process use
/// it. Tensors created before keep their old session.
pub fn connect(addr: &str) -> Result<()> {
    let cfg = config()?;
    let s = gt_client::connect(addr, &connect_options(&cfg))?;
    *DEFAULT.lock().unwrap() = Some(s);
    Ok(())
}

/// Makes `session` the process's default session — e.g. one of an [`Embedded`] runtime started
/// with an explicit config and worker count; later ops without an explicit session use it.
pub fn set_default_session(session: Session) {
    *DEFAULT.lock().unwrap() = Some(session);
}

/// Waits until all work issued so far has executed; reports a worker lost while holding this
/// process's tensors.
pub fn sync() -> Result<()> {
    try_session()?.sync()
}

/// Reads a sharding/compile config (YAML) from `path`, validates it against the workers of the
/// default session and makes it this session's config from now on (signals opened later use it).
pub fn load_config(path: impl AsRef<std::path::Path>) -> Result<()> {
    set_config(&gt_dispatcher::ShardConfig::from_file(path.as_ref())?)
}

/// Makes `config` the default session's sharding/compile config (see [`load_config`]).
pub fn set_config(config: &gt_dispatcher::ShardConfig) -> Result<()> {
    let s = try_session()?;
    config.validate(Some(s.workers() as usize))?;
    s.configure(&config.to_yaml())
}

/// Seeds the default session's random generator.
pub fn manual_seed(seed: u64) {
    session().manual_seed(seed)
}

/// Runs `f` with gradient recording off and returns its result.
pub fn no_grad_eval<T>(f: impl FnOnce() -> T) -> T {
    let _g = gt_client::no_grad();
    f()
}
