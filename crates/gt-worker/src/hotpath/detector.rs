//! The per-stream detector: instruction signatures, segment counting at sync points, period
//! detection for loops without sync points, and the matcher that recognizes a hot sequence as it
//! begins again (so the worker can buffer it and run it compiled).
//!
//! A stream whose segments keep being a hot sequence that is disabled (its plan failed or lost
//! to eager) gains nothing from being watched, yet every instruction would still pay for its
//! hash and dataflow names (~8% of the worker's time on the seed-size MLP step). Such a stream
//! goes dormant: the next segments are skipped unobserved (only counted), 4 at first, doubling
//! up to 256 while each segment observed in between is still that sequence; any other segment
//! ends it. A skipped segment is still counted, and one of another length than the disabled
//! sequence also ends it (the program moved on to another loop; before this check, a new loop
//! could run up to 256 iterations unobserved, and a Rust run alternating two workloads every 200
//! steps compiled only 133 of one's 200). Dormancy never spans a `compile: true` region
//! ([`StreamDetector::wake`]).
//!
//! Warm-up: frees right after a sync point are outside every segment ([`Step::Outside`]), so a
//! loop's first iteration (which has no previous iteration's values to free) counts; and the
//! segment that will become hot at its end is armed for recording ([`StreamDetector::arm`]), so
//! it can be compiled the moment it ends. A loop runs compiled from its third iteration.

use super::signature::{self, InputRef, TAG_EXEC, TAG_FREE, TAG_UPLOAD};
use gt_core::Key;
use gt_ops::Meta;
use gt_proto::WorkerMsg;
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use std::sync::Arc;

/// Longest segment counted (longer ones are not candidates; bounds memory).
pub const MAX_SEGMENT: usize = 1 << 16;
/// The period detector forgets hashes once it has seen this many distinct ones.
const MAX_LAST_SEEN: usize = 1 << 16;
/// Distinct segment signatures counted before the counts are reset.
const MAX_COUNTED: usize = 1 << 14;
/// Segments skipped after the first segment seen to be a disabled hot sequence, and the most
/// (the count doubles each time the next observed segment is again one).
const DORMANT_FIRST: u32 = 4;
const DORMANT_MAX: u32 = 256;
/// Armed segments with one first instruction that may fail to become hot before that first
/// instruction is no longer armed ([`StreamDetector::arm`]).
const SPEC_MISSES: u32 = 2;

/// A hot sequence: the instruction hashes it consists of, in order.
#[derive(Clone, Debug)]
pub struct HotSeq {
    /// The sequence's signature (hash of its instruction hashes).
    pub sig: u64,
    /// One hash per instruction.
    pub hashes: Arc<[u64]>,
    /// Found between sync points: it only starts right after one.
    pub anchored: bool,
    /// Compilation failed or lost to eager: no longer buffered.
    pub disabled: bool,
}

/// What the worker should do with the instruction just observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Execute it now.
    Eager,
    /// It begins a hot sequence: buffer it.
    Begin,
    /// It continues the hot sequence being buffered: buffer it.
    Buffer,
    /// It completes hot sequence number `.0`: buffer it, then run the buffered sequence.
    Complete(u32),
    /// It breaks the sequence being buffered: flush the buffer eagerly, then execute it.
    Deviate,
    /// Execute it now; it is not part of any segment (a `Free` right after a sync point).
    Outside,
}

/// Detection parameters.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Repetitions after which a sequence is hot.
    pub threshold: u32,
    /// The shortest sequence considered.
    pub min_seq: usize,
    /// The longest period detected, and the farthest reference named by distance.
    pub window: usize,
}

/// One stream's detector state.
pub struct StreamDetector {
    p: Params,
    pos: u64,
    seg_start: u64,
    produced: FxHashMap<Key, u64>,
    /// The last ended segment: the values it made (by position), where it started, and its
    /// signature when it was a whole segment of countable length (see
    /// [`StreamDetector::made_in_last_segment`]).
    last_produced: FxHashMap<Key, u64>,
    last_start: u64,
    last_sig: Option<u64>,
    ext: FxHashMap<Key, u32>,
    seg_hash: u64,
    seg: Vec<u64>,
    counts: FxHashMap<u64, u32>,
    ring: Vec<u64>,
    last_seen: FxHashMap<u64, u64>,
    period: u64,
    run: u64,
    hot: Vec<HotSeq>,
    hot_sigs: FxHashSet<u64>,
    starts: FxHashMap<u64, SmallVec<[u32; 2]>>,
    active: Option<(SmallVec<[u32; 4]>, usize)>,
    new_hot: Vec<u32>,
    /// Segments still to skip unobserved, and how many the last dormancy skipped.
    dormant: u32,
    last_dormancy: u32,
    /// The length of the disabled segment that made the stream dormant, and the instructions
    /// of the current dormant segment so far.
    dormant_len: u64,
    dormant_seen: u64,
    /// Speculative recording: for each first instruction (hash) of a whole segment, how often
    /// the last such segment had been seen; armed segments that did not become hot, by first
    /// instruction; whether the current segment is armed (recorded so that it can be compiled
    /// the moment it becomes hot), and the signature of the armed segment that just did.
    warm: FxHashMap<u64, u32>,
    spec_misses: FxHashMap<u64, u32>,
    armed: Option<u64>,
    spec_hot: Option<u64>,
    /// Instructions observed (or skipped while dormant).
    pub total: u64,
    /// Instructions that completed a hot sequence (counted when it completes).
    pub hot_instructions: u64,
    periods_found: u64,
}

impl StreamDetector {
    /// A fresh detector.
    pub fn new(p: Params) -> StreamDetector {
        let ring = vec![0; (p.window + 1).next_power_of_two()];
        StreamDetector {
            p,
            pos: 0,
            seg_start: 0,
            produced: FxHashMap::default(),
            last_produced: FxHashMap::default(),
            last_start: 0,
            last_sig: None,
            ext: FxHashMap::default(),
            seg_hash: 0,
            seg: Vec::new(),
            counts: FxHashMap::default(),
            ring,
            last_seen: FxHashMap::default(),
            period: 0,
            run: 0,
            hot: Vec::new(),
            hot_sigs: FxHashSet::default(),
            starts: FxHashMap::default(),
            active: None,
            new_hot: Vec::new(),
            dormant: 0,
            dormant_len: 0,
            dormant_seen: 0,
            last_dormancy: 0,
            warm: FxHashMap::default(),
            spec_misses: FxHashMap::default(),
            armed: None,
            spec_hot: None,
            total: 0,
            hot_instructions: 0,
            periods_found: 0,
        }
    }

    /// Where the last ended segment made `k`, if it did and that segment was a whole one
    /// (every instruction observed): the segment's signature and the instruction's index in
    /// it. The worker learns from it which results of a hot sequence the next segment uses (a
    /// training step's updated parameters), so that their values are not deferred.
    pub fn made_in_last_segment(&self, k: Key) -> Option<(u64, u32)> {
        let sig = self.last_sig?;
        let at = *self.last_produced.get(&k)?;
        Some((sig, (at - self.last_start) as u32))
    }

    /// The hot sequences found so far.
    pub fn hot(&self) -> &[HotSeq] {
        &self.hot
    }

    /// Distinct sequences counted (segments between sync points, plus periods found).
    pub fn unique_sequences(&self) -> u64 {
        self.counts.len() as u64 + self.periods_found
    }

    /// Sequences that became hot that the caller has not seen yet.
    pub fn take_new_hot(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.new_hot)
    }

    fn name(&mut self, k: Key, meta_of: &impl Fn(Key) -> Option<Meta>) -> u64 {
        let here = self.pos;
        let produced = self.produced.get(&k).copied();
        let r = match produced {
            Some(p) if p >= self.seg_start && here - p <= self.p.window as u64 => {
                InputRef::Ago(here - p)
            }
            _ => {
                let next = self.ext.len() as u32;
                InputRef::External(*self.ext.entry(k).or_insert(next))
            }
        };
        // Values made earlier in this segment have metas implied by the program; only values
        // from before it (parameters, data) carry their own.
        let meta = match (r, produced) {
            (InputRef::External(_), Some(p)) if p >= self.seg_start => {
                return signature::input_hash(0x51, r, None)
            }
            (InputRef::External(_), _) => meta_of(k),
            (InputRef::Ago(_), _) => None,
        };
        signature::input_hash(0x51, r, meta.as_ref())
    }

    /// The signature of `msg` (an `Exec`, `Upload` or `Free`; anything else hashes to a
    /// constant), updating dataflow, segment and period state, then the matcher's verdict.
    pub fn observe(&mut self, msg: &WorkerMsg, meta_of: impl Fn(Key) -> Option<Meta>) -> Step {
        if let WorkerMsg::Free { key } = msg {
            let at_start = if self.dormant > 0 {
                self.dormant_seen == 0
            } else {
                self.pos == self.seg_start
            };
            if at_start {
                // A segment begins with its first value-making instruction. The frees that
                // follow a sync point drop values of earlier segments (a loop's previous
                // iteration), which the first iteration has none of: counted in, they made
                // iteration 1 a different sequence from the rest, so a loop became hot one
                // iteration later.
                self.total += 1;
                self.produced.remove(key);
                return Step::Outside;
            }
        }
        if self.dormant > 0 {
            self.total += 1;
            self.dormant_seen += 1;
            return Step::Eager;
        }
        let h = match msg {
            WorkerMsg::Exec { out, op, inputs } => {
                let mut h = signature::mix(TAG_EXEC, signature::op_hash(op));
                for &k in inputs {
                    h = signature::mix(h, self.name(k, &meta_of));
                }
                self.produced.insert(*out, self.pos);
                h
            }
            WorkerMsg::Upload { out, data } => {
                let m = Meta {
                    shape: data.shape.clone(),
                    dtype: data.dtype,
                };
                self.produced.insert(*out, self.pos);
                signature::meta_hash(TAG_UPLOAD, &m)
            }
            WorkerMsg::Free { key } => {
                let h = signature::mix(TAG_FREE, self.name(*key, &meta_of));
                self.produced.remove(key);
                h
            }
            _ => 0x0BAD,
        };
        let h = signature::finish(h);
        self.record(h);
        self.step(h)
    }

    /// The hash hot sequence `sig` has at position `at` of the match in progress, if `sig` is
    /// still a candidate there. A caller that has checked the instruction at `at` against the
    /// compiled program of `sig` hands it to [`StreamDetector::observe_known`].
    pub fn expects(&self, sig: u64, at: usize) -> Option<u64> {
        let (cands, idx) = self.active.as_ref()?;
        if *idx != at {
            return None;
        }
        cands
            .iter()
            .map(|&c| &self.hot[c as usize])
            .find(|s| s.sig == sig && !s.disabled)
            .and_then(|s| s.hashes.get(at).copied())
    }

    /// Observes `msg`, which the caller matched against the compiled program of a candidate
    /// that expects hash `h` here ([`StreamDetector::expects`]): the state changes and verdict
    /// of [`StreamDetector::observe`] without computing the signature (the op's hash and the
    /// dataflow names of its inputs, which the plan's match has just checked). External inputs
    /// are not numbered; a caller that goes back to [`StreamDetector::observe`] within the
    /// segment first hands them over with [`StreamDetector::adopt_externals`].
    pub fn observe_known(&mut self, msg: &WorkerMsg, h: u64) -> Step {
        match msg {
            WorkerMsg::Exec { out, .. } | WorkerMsg::Upload { out, .. } => {
                self.produced.insert(*out, self.pos);
            }
            WorkerMsg::Free { key } => {
                self.produced.remove(key);
            }
            _ => {}
        }
        self.record(h);
        self.step(h)
    }

    /// Numbers `keys` (external inputs in first-use order) as [`StreamDetector::observe`] would
    /// have, after instructions observed with [`StreamDetector::observe_known`].
    pub fn adopt_externals(&mut self, keys: &[Key]) {
        for &k in keys {
            let next = self.ext.len() as u32;
            self.ext.entry(k).or_insert(next);
        }
    }

    fn record(&mut self, h: u64) {
        self.total += 1;
        let i = self.pos;
        self.pos += 1;
        if self.seg.len() < MAX_SEGMENT {
            self.seg.push(h);
        }
        self.seg_hash = signature::mix(self.seg_hash, h);
        // Period detection: `run` counts consecutive positions equal to the one a period back.
        let mask = self.ring.len() as u64 - 1;
        self.ring[(i & mask) as usize] = h;
        if self.period > 0 && self.ring[((i - self.period) & mask) as usize] == h {
            self.run += 1;
        } else {
            self.period = 0;
            self.run = 0;
            // Periods never straddle a sync point: those repetitions are the segment counter's.
            if let Some(&j) = self.last_seen.get(&h).filter(|&&j| j >= self.seg_start) {
                let p = i - j;
                if p as usize >= self.p.min_seq.max(1) && p as usize <= self.p.window {
                    self.period = p;
                    self.run = 1;
                }
            }
        }
        if self.last_seen.len() >= MAX_LAST_SEEN {
            self.last_seen.clear();
        }
        self.last_seen.insert(h, i);
        let reps = self.p.threshold.max(2) as u64 - 1;
        if self.period > 0 && self.run == self.period * reps {
            let p = self.period;
            let hashes: Vec<u64> = (0..p)
                .map(|k| self.ring[((i + 1 - p + k) & mask) as usize])
                .collect();
            let sig = signature::finish(hashes.iter().fold(0x9E71, |a, &x| signature::mix(a, x)));
            if !self.hot_sigs.contains(&sig) {
                self.periods_found += 1;
                self.register(sig, hashes.into(), false);
            }
        }
    }

    fn register(&mut self, sig: u64, hashes: Arc<[u64]>, anchored: bool) {
        let idx = self.hot.len() as u32;
        self.hot_sigs.insert(sig);
        self.starts.entry(hashes[0]).or_default().push(idx);
        self.hot.push(HotSeq {
            sig,
            hashes,
            anchored,
            disabled: false,
        });
        self.new_hot.push(idx);
    }

    /// Adds a hot sequence known from elsewhere (the persistent cache).
    pub fn preload(&mut self, sig: u64, hashes: Arc<[u64]>, anchored: bool) {
        if !hashes.is_empty() && !self.hot_sigs.contains(&sig) {
            self.register(sig, hashes, anchored);
            self.new_hot.pop();
        }
    }

    fn step(&mut self, h: u64) -> Step {
        if let Some((cands, idx)) = &mut self.active {
            let hot = &self.hot;
            let at = *idx;
            cands.retain(|c| {
                let s = &hot[*c as usize];
                !s.disabled && s.hashes.get(at) == Some(&h)
            });
            if cands.is_empty() {
                self.active = None;
                return Step::Deviate;
            }
            *idx += 1;
            let done = cands
                .iter()
                .copied()
                .find(|&c| hot[c as usize].hashes.len() == at + 1);
            if let Some(c) = done {
                self.active = None;
                self.hot_instructions += (at + 1) as u64;
                self.most_recent(c);
                return Step::Complete(c);
            }
            return Step::Buffer;
        }
        let at_start = self.pos - self.seg_start == 1;
        if at_start {
            self.arm(h);
        }
        let Some(list) = self.starts.get(&h) else {
            return Step::Eager;
        };
        let cands: SmallVec<[u32; 4]> = list
            .iter()
            .copied()
            .filter(|&c| {
                let s = &self.hot[c as usize];
                !s.disabled && (!s.anchored || at_start)
            })
            .collect();
        if cands.is_empty() {
            return Step::Eager;
        }
        // A hot sequence begins: it is matched, not recorded.
        self.armed = None;
        if let Some(&c) = cands
            .iter()
            .find(|&&c| self.hot[c as usize].hashes.len() == 1)
        {
            self.hot_instructions += 1;
            return Step::Complete(c);
        }
        self.active = Some((cands, 1));
        Step::Begin
    }

    /// Arms speculative recording for the segment that begins with instruction hash `h` when
    /// it would become hot at its end: the last whole segment that began with `h` had been seen
    /// `threshold - 1` times. The worker then records this instance as it runs, and compiles
    /// it as soon as the segment ends hot, so the next instance already runs compiled (without
    /// this, the next instance was recorded and the one after it was the first compiled).
    /// A first instruction whose armed segments twice did not become hot is not armed again
    /// (recording costs the worker time; a stream of ever-new segments pays it at most twice
    /// per first instruction).
    fn arm(&mut self, h: u64) {
        let seen = self.warm.get(&h).copied().unwrap_or(0);
        let misses = self.spec_misses.get(&h).copied().unwrap_or(0);
        if seen + 1 >= self.p.threshold.max(1) && misses < SPEC_MISSES {
            self.armed = Some(h);
        }
    }

    /// Whether the current segment is being recorded speculatively (see
    /// [`StreamDetector::take_spec_hot`]).
    pub fn armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Stops recording the current segment (the worker could not keep its recording).
    pub fn disarm(&mut self) {
        self.armed = None;
    }

    /// The signature of the armed segment that has just ended hot (once): its recording is an
    /// instance of that hot sequence.
    pub fn take_spec_hot(&mut self) -> Option<u64> {
        self.spec_hot.take()
    }

    /// Puts hot sequence `c`, which just completed, first among the sequences starting with its
    /// first instruction. The first candidate is the one a stream begins streaming through its
    /// plan ([`StreamDetector::active_sig`]); when a program moves on to a new loop whose first
    /// instruction hashes like an old loop's, the old sequence would otherwise stay first, and
    /// every instance of the new one would start streaming through the wrong plan, give up and
    /// run eagerly (a Python run of four workloads in one process lost 2x on the second one).
    fn most_recent(&mut self, c: u32) {
        let first = self.hot[c as usize].hashes[0];
        if let Some(list) = self.starts.get_mut(&first) {
            if let Some(i) = list.iter().position(|&x| x == c) {
                list[..=i].rotate_right(1);
            }
        }
    }

    /// A sync point (or an instruction that cannot be traced): ends the segment, counting it,
    /// and abandons any sequence being matched. Returns whether one was (the caller flushes).
    pub fn sync(&mut self) -> bool {
        self.end_segment(self.p.threshold).0
    }

    /// Ends the segment like [`StreamDetector::sync`], making it hot at once (a `compile: true`
    /// region); returns its signature when it is hot (`None` when too short or too long).
    pub fn sync_hot(&mut self) -> Option<u64> {
        self.end_segment(1).1
    }

    /// Ends dormancy at once (the stream enters a `compile: true` region, which must be seen).
    pub fn wake(&mut self) {
        self.dormant = 0;
        self.last_dormancy = 0;
    }

    /// Whether the stream's segments are being skipped unobserved.
    pub fn is_dormant(&self) -> bool {
        self.dormant > 0
    }

    fn end_segment(&mut self, threshold: u32) -> (bool, Option<u64>) {
        if self.dormant > 0 {
            // A segment of another length is another loop: watch again from the next one (a
            // counter is all a dormant stream pays per instruction).
            if std::mem::take(&mut self.dormant_seen) != self.dormant_len {
                self.wake();
            } else {
                self.dormant -= 1;
            }
            self.seg_start = self.pos;
            self.last_sig = None;
            return (false, None);
        }
        let was = self.active.take().is_some();
        let armed = self.armed.take();
        self.spec_hot = None;
        let mut hot = None;
        let mut new_hot = false;
        let n = self.seg.len();
        let whole = (self.pos - self.seg_start) as usize == n;
        self.last_sig = None;
        if whole && n >= self.p.min_seq.max(1) {
            if self.counts.len() >= MAX_COUNTED {
                self.counts.clear();
                self.warm.clear();
                self.spec_misses.clear();
            }
            let sig = signature::finish(signature::mix(self.seg_hash, n as u64));
            self.last_sig = Some(sig);
            let c = self.counts.entry(sig).or_insert(0);
            *c += 1;
            let count = *c;
            if count >= threshold.max(1) && !self.hot_sigs.contains(&sig) {
                let hashes: Arc<[u64]> = self.seg.as_slice().into();
                self.register(sig, hashes, true);
                new_hot = true;
            }
            if self.hot_sigs.contains(&sig) {
                hot = Some(sig);
            }
            self.warm.insert(self.seg[0], count);
        }
        if let Some(first) = armed {
            if new_hot {
                self.spec_hot = hot;
                self.spec_misses.remove(&first);
            } else {
                *self.spec_misses.entry(first).or_insert(0) += 1;
            }
        }
        // Dormancy: the segment just ended is a hot sequence nobody runs compiled any more.
        let disabled =
            hot.is_some_and(|sig| self.hot.iter().filter(|s| s.sig == sig).all(|s| s.disabled));
        if disabled && whole {
            self.last_dormancy = (self.last_dormancy * 2).clamp(DORMANT_FIRST, DORMANT_MAX);
            self.dormant = self.last_dormancy;
            self.dormant_len = n as u64;
            self.dormant_seen = 0;
        } else {
            self.last_dormancy = 0;
        }
        self.seg.clear();
        self.seg_hash = 0;
        self.ext.clear();
        // Names of values made before a segment never depend on where they were made (they are
        // external inputs named by meta), so the map only needs this segment's values; the
        // last segment's are kept aside for `made_in_last_segment`.
        std::mem::swap(&mut self.produced, &mut self.last_produced);
        self.produced.clear();
        self.last_start = self.seg_start;
        self.seg_start = self.pos;
        // A sync point also breaks any period being tracked.
        self.period = 0;
        self.run = 0;
        (was, hot)
    }

    /// The signature and length of the first candidate of the sequence being matched.
    pub fn active_sig(&self) -> Option<u64> {
        let (c, _) = self.active.as_ref()?;
        Some(self.hot[*c.first()? as usize].sig)
    }

    /// How many instructions of the sequence being matched have been observed (0: none is).
    pub fn active_at(&self) -> usize {
        self.active.as_ref().map_or(0, |(_, idx)| *idx)
    }

    /// The length of the first candidate of the sequence being matched.
    pub fn active_len(&self) -> Option<usize> {
        let (c, _) = self.active.as_ref()?;
        Some(self.hot[*c.first()? as usize].hashes.len())
    }

    /// Abandons the sequence being matched without ending the segment (a forced flush).
    pub fn abandon(&mut self) -> bool {
        self.active.take().is_some()
    }

    /// Stops buffering every hot sequence with signature `sig`.
    pub fn disable(&mut self, sig: u64) {
        for s in self.hot.iter_mut().filter(|s| s.sig == sig) {
            s.disabled = true;
        }
    }
}

#[cfg(test)]
mod tests;
