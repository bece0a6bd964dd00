//! Every environment variable GT reads, in one place, read once per process. The README lists
//! them with their defaults.

use gt_core::{Error, Result};
use gt_dispatcher::ShardConfig;
pub use gt_worker::hotpath::HotPathConfig;
use std::sync::Arc;
use std::time::Duration;

/// The process-wide configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `GT_ADDR`: join this dispatcher (`host:port` or `unix:/path`) instead of starting an
    /// embedded runtime.
    pub addr: Option<String>,
    /// `GT_WORKERS` (default 1): workers of the embedded runtime.
    pub workers: usize,
    /// `GT_WORKER_THREADS` (default: available cores divided among the workers of this machine).
    pub worker_threads: Option<usize>,
    /// `GT_TOKEN`: shared secret presented to (and required by) dispatchers and workers.
    pub token: Option<String>,
    /// `GT_MAX_FRAME` (default 1 GiB): largest frame accepted, in bytes.
    pub max_frame: usize,
    /// `GT_CLIENT_BATCH` (default 1024): instructions a client buffers before sending.
    pub client_batch: usize,
    /// `GT_HEARTBEAT_TIMEOUT_MS` (default 1500): a worker silent this long is declared lost.
    pub heartbeat_timeout: Duration,
    /// `GT_INSTRUCTION_LOG`: the dispatcher writes one line per event to this file.
    pub instruction_log: Option<std::path::PathBuf>,
    /// `GT_CONFIG`: the sharding/compile config (YAML) the dispatcher starts every session with;
    /// read and validated here, so a bad file fails before anything runs.
    pub sharding: Arc<ShardConfig>,
    /// `GT_AUTO_SHARD=1` (default off): large creations are sharded along axis 0 over every
    /// worker.
    pub auto_shard: bool,
    /// `GT_SHARD_THRESHOLD` (default 65536): elements from which `GT_AUTO_SHARD` shards.
    pub shard_threshold: usize,
    /// `GT_AUTO_COMPILE`, `GT_COMPILE`, `GT_HOTPATH_THRESHOLD`, `GT_HOTPATH_MIN_SEQ`,
    /// `GT_HOTPATH_WINDOW`, `GT_COMPILE_CACHE`, `GT_COMPILE_KEEP_SLOWER`: hot-path detection
    /// and trace compilation in the workers this process starts.
    pub hotpath: HotPathConfig,
    /// `GT_WORKER_BATCH_SIZE` (default: unlimited): most instructions per dispatcher → worker
    /// transport batch.
    pub worker_batch: Option<usize>,
    /// `GT_INSTRUCTION_LOG_TIMING` (default off): workers time every instruction and the log
    /// gets an `EXEC` line for each (what `gt trace --chrome` draws as execution slices).
    pub instruction_log_timing: bool,
    /// `GT_VERBOSE`, `GT_DEBUG_CLIENT`, `GT_DEBUG_DISPATCHER`, `GT_DEBUG_WORKER`,
    /// `GT_DEBUG_COMPILE`: which `tracing` output to switch on.
    pub debug: Debug,
}

/// The debug switches: each turns on `tracing` output for one part of GT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Debug {
    /// `GT_VERBOSE`: informational messages from every part (`gt=info`).
    pub verbose: bool,
    /// `GT_DEBUG_CLIENT`: debug output of the client library (`gt::client`).
    pub client: bool,
    /// `GT_DEBUG_DISPATCHER`: debug output of the dispatcher (`gt::dispatcher`).
    pub dispatcher: bool,
    /// `GT_DEBUG_WORKER`: debug output of workers (`gt::worker`).
    pub worker: bool,
    /// `GT_DEBUG_COMPILE`: debug output of the hot-path detector and compiler (`gt::compile`).
    pub compile: bool,
}

impl Debug {
    /// Whether any switch is on.
    pub fn any(&self) -> bool {
        self.verbose || self.client || self.dispatcher || self.worker || self.compile
    }

    /// The `tracing` filter directives the switches stand for, added to `base` (e.g. `warn`);
    /// `None` when no switch is on.
    pub fn filter(&self, base: &str) -> Option<String> {
        if !self.any() {
            return None;
        }
        let mut d = vec![base.to_string()];
        if self.verbose {
            d.push("gt=info".into());
        }
        for (on, target) in [
            (self.client, "gt::client"),
            (self.dispatcher, "gt::dispatcher"),
            (self.worker, "gt::worker"),
            (self.compile, "gt::compile"),
        ] {
            if on {
                d.push(format!("{target}=debug"));
            }
        }
        Some(d.join(","))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: None,
            workers: 1,
            worker_threads: None,
            token: None,
            max_frame: gt_proto::DEFAULT_MAX_FRAME,
            client_batch: 1024,
            heartbeat_timeout: Duration::from_millis(1500),
            instruction_log: None,
            sharding: Arc::default(),
            auto_shard: false,
            shard_threshold: 65536,
            hotpath: HotPathConfig::default(),
            worker_batch: None,
            instruction_log_timing: false,
            debug: Debug::default(),
        }
    }
}

/// A boolean switch: unset, empty, `0`, `false`, `no` and `off` are off; anything else is on.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    name: &str,
    min: T,
) -> Result<Option<T>> {
    match var(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<T>() {
            Ok(x) if x >= min => Ok(Some(x)),
            _ => Err(Error::Config(format!("{name}={v} is not a number ≥ {min}"))),
        },
    }
}

/// A boolean switch: `1`/`true`/`on`/`yes` or `0`/`false`/`off`/`no` (unset: off).
fn flag(name: &str) -> Result<bool> {
    match var(name) {
        None => Ok(false),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "on" | "yes" => Ok(true),
            "0" | "false" | "off" | "no" => Ok(false),
            _ => Err(Error::Config(format!("{name}={v} is not 0 or 1"))),
        },
    }
}

impl Config {
    /// Reads the environment. Invalid values are errors that name the variable.
    pub fn from_env() -> Result<Config> {
        let d = Config::default();
        Ok(Config {
            addr: var("GT_ADDR"),
            workers: parse("GT_WORKERS", 1usize)?.unwrap_or(d.workers),
            worker_threads: parse("GT_WORKER_THREADS", 1usize)?,
            token: var("GT_TOKEN"),
            max_frame: parse("GT_MAX_FRAME", 1024usize)?.unwrap_or(d.max_frame),
            client_batch: parse("GT_CLIENT_BATCH", 1usize)?.unwrap_or(d.client_batch),
            heartbeat_timeout: parse("GT_HEARTBEAT_TIMEOUT_MS", 10u64)?
                .map(Duration::from_millis)
                .unwrap_or(d.heartbeat_timeout),
            instruction_log: var("GT_INSTRUCTION_LOG").map(Into::into),
            sharding: match var("GT_CONFIG") {
                Some(p) => Arc::new(ShardConfig::from_file(std::path::Path::new(&p))?),
                None => d.sharding,
            },
            auto_shard: flag("GT_AUTO_SHARD")?,
            shard_threshold: parse("GT_SHARD_THRESHOLD", 1usize)?.unwrap_or(d.shard_threshold),
            hotpath: HotPathConfig {
                auto_compile: flag("GT_AUTO_COMPILE")?,
                compile_all: flag("GT_COMPILE")?,
                threshold: parse("GT_HOTPATH_THRESHOLD", 1u32)?.unwrap_or(d.hotpath.threshold),
                min_seq: parse("GT_HOTPATH_MIN_SEQ", 1usize)?.unwrap_or(d.hotpath.min_seq),
                window: parse("GT_HOTPATH_WINDOW", 1usize)?.unwrap_or(d.hotpath.window),
                cache_dir: var("GT_COMPILE_CACHE").map(Into::into),
                compile_inline: false,
                keep_slower: flag("GT_COMPILE_KEEP_SLOWER")?,
            },
            worker_batch: parse("GT_WORKER_BATCH_SIZE", 1usize)?,
            instruction_log_timing: flag("GT_INSTRUCTION_LOG_TIMING")?,
            debug: Debug {
                verbose: flag("GT_VERBOSE")?,
                client: flag("GT_DEBUG_CLIENT")?,
                dispatcher: flag("GT_DEBUG_DISPATCHER")?,
                worker: flag("GT_DEBUG_WORKER")?,
                compile: flag("GT_DEBUG_COMPILE")?,
            },
        })
    }

    /// The dispatcher core settings this config asks for.
    pub fn core_config(&self) -> gt_dispatcher::CoreConfig {
        gt_dispatcher::CoreConfig {
            heartbeat_timeout: self.heartbeat_timeout,
            shard: self.sharding.clone(),
            worker_batch: self.worker_batch,
            auto_shard: self.auto_shard.then_some(self.shard_threshold),
            ..Default::default()
        }
    }

    /// Compute threads for each of `workers` workers sharing this machine.
    pub fn threads_per_worker(&self, workers: usize) -> usize {
        self.worker_threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            (cores / workers.max(1)).max(1)
        })
    }
}

#[cfg(test)]
mod debug_tests {
    use super::Debug;

    #[test]
    fn switches_become_tracing_filters_per_role() {
        assert_eq!(Debug::default().filter("warn"), None);
        let d = Debug {
            verbose: true,
            worker: true,
            compile: true,
            ..Default::default()
        };
        assert_eq!(
            d.filter("warn").as_deref(),
            Some("warn,gt=info,gt::worker=debug,gt::compile=debug")
        );
        let d = Debug {
            client: true,
            dispatcher: true,
            ..Default::default()
        };
        assert_eq!(
            d.filter("info").as_deref(),
            Some("info,gt::client=debug,gt::dispatcher=debug")
        );
    }
}
