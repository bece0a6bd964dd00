//! Lazy live-outs of compiled traces (see [`crate::compile::program::Split`]): a deferred value
//! is a [`Promise`] in the worker's `deferred` map instead of a tensor in its table. Anything
//! that uses the key (an instruction's input, a read, a transfer, an alias) first forces it —
//! running, with the trace's own instructions and retained inputs, just the steps that value
//! needs — so every observation sees exactly what eager execution would have produced. A free
//! before any use drops the promise; when a trace's last promise goes, so do the values it kept
//! alive, and the work is never done.

use crate::compile::program::Plan;
use crate::engine::Engine;
use gt_core::{Key, Result};
use gt_ops::Meta;
use gt_proto::WorkerMsg;
use std::sync::{Arc, Mutex, Weak};

/// What a compiled run left to compute.
pub(crate) struct Group<T> {
    /// The trace's signature (for learning which live-outs get used).
    pub sig: u64,
    pub plan: Arc<Plan>,
    pub msgs: Vec<WorkerMsg>,
    pub slots: Vec<Option<T>>,
    pub ext: Vec<Option<T>>,
    /// Steps already run.
    pub done: Vec<bool>,
}

/// Traces whose deferred values may be pending at once (per worker). A deferred value keeps
/// every input of the work it still needs alive, so a program that holds results without ever
/// reading them (a list of loss tensors, say) would otherwise retain a whole step per
/// iteration: beyond this many, the oldest trace's values are computed and its inputs freed.
pub(crate) const MAX_GROUPS: usize = 4;

/// A weak handle on a [`Group`] (alive while any of its promises is).
pub(crate) type GroupRef<T> = Weak<Mutex<Group<T>>>;

/// A deferred live-out: live-out `idx` of `group`, with the meta it will have.
pub(crate) struct Promise<T> {
    pub group: Arc<Mutex<Group<T>>>,
    pub idx: usize,
    pub meta: Meta,
}

impl<T: Clone> Promise<T> {
    /// Computes the value, running the steps it still needs. Returns it, and how many
    /// instructions ran.
    pub fn force<E: Engine<Tensor = T>>(&self, engine: &mut E) -> (Result<T>, u64) {
        let mut g = self.group.lock().unwrap_or_else(|p| p.into_inner());
        let g = &mut *g;
        let steps = g.plan.steps_for_live(self.idx, &g.done);
        let mut ran = 0;
        for s in steps {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                g.plan
                    .run_step(s, engine, &g.msgs, (&mut g.slots, &mut []), &g.ext)
            }));
            match run {
                Ok(Ok(())) => {
                    g.done[s] = true;
                    ran += 1;
                }
                Ok(Err(e)) => return (Err(e), ran),
                Err(_) => {
                    return (
                        Err(gt_core::Error::invalid(
                            "compiled trace",
                            "a kernel panicked while computing a deferred value",
                        )),
                        ran,
                    )
                }
            }
        }
        let node = g.plan.bound().live[self.idx].0 as usize;
        let v = g.slots[node].clone().ok_or_else(|| {
            gt_core::Error::invalid("compiled trace", "a deferred value was not produced")
        });
        (v, ran)
    }
}

/// The keys `msg` reads (a free reads nothing: it may drop a promise unforced).
///
/// A slice into the message, not a collected vector: this runs for every instruction while any
/// value is deferred, and collecting into a `SmallVec` stalled on its own store (the copy of the
/// freshly written vector missed store forwarding) — a visible share of the compiled path.
pub(crate) fn reads(msg: &WorkerMsg) -> &[Key] {
    match msg {
        WorkerMsg::Exec { inputs, .. } => inputs,
        WorkerMsg::Read { key, .. }
        | WorkerMsg::Send { key, .. }
        | WorkerMsg::Poison { key, .. } => std::slice::from_ref(key),
        WorkerMsg::Alias { src, .. } => std::slice::from_ref(src),
        WorkerMsg::Upload { .. }
        | WorkerMsg::Free { .. }
        | WorkerMsg::FreeSession { .. }
        | WorkerMsg::Recv { .. }
        | WorkerMsg::Stats { .. }
        | WorkerMsg::Barrier { .. }
        | WorkerMsg::Peers { .. }
        | WorkerMsg::PeerLost { .. }
        | WorkerMsg::Ping
        | WorkerMsg::Timing { .. }
        | WorkerMsg::CompileRegion { .. } => &[],
    }
}
