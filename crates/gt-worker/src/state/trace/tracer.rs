//! The tracer's own bookkeeping: one detector and mode per client stream, the deferral mask
//! and split of each plan, and the hot-path statistics.

use super::{Stream, Tracer};
use crate::compile::cache::PlanCache;
use crate::compile::persist::{self, Saved};
use crate::compile::program::{Plan, Split};
use crate::hotpath::detector::Params;
use crate::hotpath::{HotPathConfig, StreamDetector};
use crate::state::ahead::Ahead;
use crate::state::stream::Mode;
use gt_core::{Key, SessionId};
use gt_proto::HotPathStats;
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

impl<T> Tracer<T> {
    pub(crate) fn new(cfg: HotPathConfig) -> Tracer<T> {
        let saved = cfg
            .cache_dir
            .as_deref()
            .map(persist::load)
            .unwrap_or_default();
        if !saved.is_empty() {
            tracing::info!(target: "gt::compile", "{} hot sequences loaded from the compile cache", saved.len());
        }
        Tracer {
            cache: PlanCache::new(cfg.compile_inline, cfg.keep_slower),
            cfg,
            streams: FxHashMap::default(),
            idle: Vec::new(),
            saved,
            defer: FxHashMap::default(),
            used_after: FxHashMap::default(),
            gone: (0, 0, 0, 0),
        }
    }

    pub(super) fn stream(&mut self, s: SessionId) -> &mut Stream<T> {
        let (cfg, saved) = (&self.cfg, &self.saved);
        self.streams.entry(s).or_insert_with(|| {
            let mut det = StreamDetector::new(Params {
                threshold: cfg.effective_threshold(),
                min_seq: cfg.min_seq,
                window: cfg.window,
            });
            for sv in saved {
                det.preload(sv.sig, sv.hashes.clone(), sv.anchored);
            }
            Stream {
                det,
                mode: Mode::Idle,
                started: None,
                seen: FxHashSet::default(),
                region: None,
                spec: None,
                carried: Vec::new(),
                spare: None,
                ahead: Ahead::default(),
                settle: None,
            }
        })
    }

    /// The split a run of `plan` uses now (made from the plan's mask when that changed).
    pub(super) fn split_for(&mut self, plan: &Plan) -> Arc<Split> {
        let used_after = &mut self.used_after;
        let (mask, split) = self.defer.entry(plan.sig).or_insert_with(|| {
            // Results the instances before this plan's first run used afterwards are computed
            // from the start: deferred, each would be computed on its own at its first use,
            // and the next instance could not be predicted while they are pending.
            let used = used_after.remove(&plan.sig).unwrap_or_default();
            let mask = plan.bound().live.iter();
            (mask.map(|(node, _)| !used.contains(node)).collect(), None)
        });
        split
            .get_or_insert_with(|| Arc::new(plan.split(mask)))
            .clone()
    }

    /// Whether some stream is inside a streamed run of a plan that has steps left to run (one
    /// whose steps all ran ahead only matches what arrives, as fast as it arrives).
    pub(crate) fn streaming(&self) -> bool {
        self.streams
            .values()
            .any(|s| matches!(&s.mode, Mode::Stream(r) if !r.ran_ahead()))
    }

    /// `key` is used right after its stream's segment ended (a read of a loss ends a training
    /// step): if that segment is being compiled from its recording, the result is used.
    pub(super) fn used_after_sync(&mut self, key: Key) {
        let Some(st) = self.streams.get(&key.session()) else {
            return;
        };
        if let Some((sig, at)) = st.det.made_in_last_segment(key) {
            if let Some(used) = self.used_after.get_mut(&sig) {
                used.push(at);
            }
        }
    }

    /// Live-out `idx` of plan `sig` was used after its run: compute it eagerly from now on.
    /// The split is made again at the next run's start, once for all the live-outs used
    /// meanwhile (a training step's first use of its parameters forces each in turn).
    pub(crate) fn live_out_used(&mut self, sig: u64, idx: usize) {
        let Some((mask, split)) = self.defer.get_mut(&sig) else {
            return;
        };
        if !mask.get(idx).copied().unwrap_or(false) {
            return;
        }
        mask[idx] = false;
        *split = None;
        self.cache.restart_guard(sig);
    }

    /// Seed 000's `hotpath` section, summed over streams.
    pub(crate) fn hotpath_stats(&self) -> HotPathStats {
        let (mut total, mut hot, mut uniq, mut hseq) = self.gone;
        for s in self.streams.values() {
            total += s.det.total;
            hot += s.det.hot_instructions;
            uniq += s.det.unique_sequences();
            hseq += s.det.hot().len() as u64;
        }
        HotPathStats {
            enabled: true,
            total_instructions: total,
            hot_instructions: hot,
            unique_sequences: uniq,
            hot_sequences: hseq,
            hot_threshold: self.cfg.effective_threshold() as u64,
            window_size: self.cfg.window as u64,
        }
    }

    /// Persists sequences that just became hot in stream `s`.
    pub(super) fn persist_new(&mut self, s: SessionId) {
        let Some(dir) = self.cfg.cache_dir.clone() else {
            return;
        };
        let Some(st) = self.streams.get_mut(&s) else {
            return;
        };
        for i in st.det.take_new_hot() {
            let h = &st.det.hot()[i as usize];
            let sv = Saved {
                anchored: h.anchored,
                sig: h.sig,
                hashes: h.hashes.clone(),
            };
            if self.saved.iter().any(|x| x.sig == sv.sig) {
                continue;
            }
            if let Err(e) = persist::save(&dir, &sv) {
                tracing::warn!(target: "gt::compile", "cannot write the compile cache in {}: {e}", dir.display());
            }
            self.saved.push(sv);
        }
    }
}
