//! The sharding/compile config: which signal scopes shard or replicate what they create, over
//! which workers, and which signal's placement the gradient ops of a region use. Read from YAML
//! (`GT_CONFIG`, `gt dispatcher --config`, `gt::load_config`) or built in Rust; validated before
//! anything runs.
//!
//! ```yaml
//! batch:                 # a signal name, as in gt::signal("batch")
//!   shard:
//!     axis: 0            # split along axis 0 (default 0)
//!     workers: [0, 1]    # default: every worker
//!   backward: batch      # gradient ops of this region use this signal's placement
//! params:
//!   shard:
//!     replicated: true   # a full copy on each worker instead of shards
//!   compile: true        # workers compile the region at first sight (with GT_AUTO_COMPILE)
//! ```

use gt_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a signal region puts what it creates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSpec {
    /// The axis tensors are split along (ignored when `replicated`).
    #[serde(default)]
    pub axis: usize,
    /// Worker indices taking part, in shard order; `None` means every live worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<u32>>,
    /// A full copy on each worker instead of shards.
    #[serde(default)]
    pub replicated: bool,
}

/// The settings of one signal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalConfig {
    /// Placement of tensors created inside the region; `None`: no sharding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardSpec>,
    /// Whether workers compile the region at first sight: the dispatcher brackets it with
    /// `WorkerMsg::CompileRegion` markers (acted on when hot-path detection is on).
    #[serde(default)]
    pub compile: bool,
    /// The signal whose placement the region's gradient ops use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backward: Option<String>,
}

/// Signal name → settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardConfig {
    /// The configured signals.
    pub signals: BTreeMap<String, SignalConfig>,
}

impl ShardConfig {
    /// Parses YAML text and checks what can be checked without knowing the workers.
    pub fn from_yaml(text: &str) -> Result<ShardConfig> {
        if text.trim().is_empty() {
            return Ok(ShardConfig::default());
        }
        let cfg: ShardConfig = serde_saphyr::from_str(text)
            .map_err(|e| Error::Config(format!("invalid sharding config: {e}")))?;
        cfg.validate(None)?;
        Ok(cfg)
    }

    /// Reads and parses a YAML file.
    pub fn from_file(path: &std::path::Path) -> Result<ShardConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        ShardConfig::from_yaml(&text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), strip(&e))))
    }

    /// The config as YAML text (what `gt::set_config` sends to the dispatcher).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a config always serializes")
    }

    /// Adds or replaces one signal (builder style).
    pub fn signal(mut self, name: &str, cfg: SignalConfig) -> ShardConfig {
        self.signals.insert(name.into(), cfg);
        self
    }

    /// Whether any signal places tensors.
    pub fn shards_anything(&self) -> bool {
        self.signals.values().any(|s| s.shard.is_some())
    }

    /// Checks names, `backward` references and (when `workers` is known) worker indices.
    pub fn validate(&self, workers: Option<usize>) -> Result<()> {
        for (name, s) in &self.signals {
            if name.trim().is_empty() {
                return Err(Error::Config("a signal name is empty".into()));
            }
            if name == gt_proto::BACKWARD_SCOPE {
                return Err(Error::Config(format!(
                    "'{name}' is reserved for the backward pass; name the signal differently"
                )));
            }
            if let Some(b) = &s.backward {
                if !self.signals.contains_key(b) {
                    return Err(Error::Config(format!(
                        "signal '{name}': backward names '{b}', which is not a configured signal"
                    )));
                }
            }
            let Some(spec) = &s.shard else { continue };
            let Some(list) = &spec.workers else { continue };
            if list.is_empty() {
                return Err(Error::Config(format!(
                    "signal '{name}': shard.workers is empty (leave it out to use every worker)"
                )));
            }
            let mut seen = std::collections::BTreeSet::new();
            for &w in list {
                if !seen.insert(w) {
                    return Err(Error::Config(format!(
                        "signal '{name}': worker {w} appears twice in shard.workers"
                    )));
                }
                if let Some(n) = workers {
                    if w as usize >= n {
                        return Err(Error::Config(format!(
                            "signal '{name}': worker index {w} is out of range ({n} workers)"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The placement spec of `name`, if it shards.
    pub fn spec(&self, name: &str) -> Option<&ShardSpec> {
        self.signals.get(name).and_then(|s| s.shard.as_ref())
    }
}

fn strip(e: &Error) -> String {
    match e {
        Error::Config(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
batch:
  shard:
    axis: 0
    workers: [0, 1]
  backward: batch
params:
  shard:
    replicated: true
  compile: true
plain: {}
";

    #[test]
    fn parses_defaults_and_round_trips() {
        let c = ShardConfig::from_yaml(GOOD).unwrap();
        assert_eq!(c.signals.len(), 3);
        let b = &c.signals["batch"];
        assert_eq!(b.shard.as_ref().unwrap().workers, Some(vec![0, 1]));
        assert_eq!(b.backward.as_deref(), Some("batch"));
        let p = &c.signals["params"];
        assert!(p.compile && p.shard.as_ref().unwrap().replicated);
        assert_eq!(p.shard.as_ref().unwrap().axis, 0);
        assert_eq!(p.shard.as_ref().unwrap().workers, None);
        assert_eq!(c.signals["plain"], SignalConfig::default());
        assert!(c.shards_anything());
        let back = ShardConfig::from_yaml(&c.to_yaml()).unwrap();
        assert_eq!(back, c);
        assert_eq!(ShardConfig::from_yaml("").unwrap(), ShardConfig::default());
    }

    fn err(yaml: &str, workers: Option<usize>) -> String {
        match ShardConfig::from_yaml(yaml).and_then(|c| c.validate(workers)) {
            Ok(_) => panic!("accepted {yaml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let e = err("a:\n  shard:\n    axes: 1\n", None);
        assert!(e.contains("axes"), "{e}");
        let e = err("a:\n  sharding: {}\n", None);
        assert!(e.contains("sharding"), "{e}");
        let e = err("a:\n  shard:\n    axis: -1\n", None);
        assert!(e.contains("invalid sharding config"), "{e}");
        let e = err("a:\n  shard:\n    workers: [0, 2]\n", Some(2));
        assert!(
            e.contains("worker index 2 is out of range (2 workers)"),
            "{e}"
        );
        let e = err("a:\n  shard:\n    workers: [1, 1]\n", None);
        assert!(e.contains("appears twice"), "{e}");
        let e = err("a:\n  shard:\n    workers: []\n", None);
        assert!(e.contains("empty"), "{e}");
        let e = err("a:\n  backward: b\n", None);
        assert!(e.contains("'b'"), "{e}");
        let e = err("a:\n  compile: maybe\n", None);
        assert!(e.contains("invalid sharding config"), "{e}");
        let e = err("- 1\n- 2\n", None);
        assert!(e.contains("invalid sharding config"), "{e}");
    }

    #[test]
    fn files_name_their_path() {
        let dir = std::env::temp_dir().join(format!("gt-shard-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.yaml");
        std::fs::write(&p, "a:\n  shard:\n    replicate: true\n").unwrap();
        let e = ShardConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("bad.yaml") && e.contains("replicate"), "{e}");
        let e = ShardConfig::from_file(&dir.join("missing.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.yaml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
