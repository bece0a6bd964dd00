//! [`Hunger`]: how many consumers are waiting for work, or about to, for producers upstream to
//! read.
//!
//! A client buffers instructions and sends them in growing batches (see `gt-client`'s
//! `FIRST_BATCH`): few sends for a long stream of tiny ops. At a training step's sync point that
//! policy leaves the worker idle while the client still holds the step's last few dozen
//! instructions (the backward pass and the optimizer), which then run after the client stops.
//! A worker that waits marks itself hungry here, and a client that sees a hungry worker sends
//! what it has as soon as it is worth a send. A worker that executes its last queued batch
//! eagerly marks itself *draining*: it will wait as soon as that batch is done, so a client
//! feeds it early too, and the worker goes on without a gap (the dispatcher's hand-over, which
//! splits a batch being routed, reacts to waiting workers only). Only in-process links have
//! this signal (the embedded runtime); over sockets the producer cannot see the worker and
//! keeps its batching.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Shared counts of consumers waiting for work and of consumers draining their last batch.
/// Cheap to clone; clones share the counts.
#[derive(Clone, Default, Debug)]
pub struct Hunger(Arc<[AtomicUsize; 2]>);

const WAITING: usize = 0;
const DRAINING: usize = 1;

impl Hunger {
    /// A count with nobody waiting.
    pub fn new() -> Hunger {
        Hunger::default()
    }

    /// Whether any consumer is waiting for work now.
    #[inline]
    pub fn any(&self) -> bool {
        self.0[WAITING].load(Ordering::Relaxed) > 0
    }

    /// Whether any consumer is waiting for work now or will be once its current batch is done
    /// ([`Hunger::draining`]).
    #[inline]
    pub fn soon(&self) -> bool {
        self.any() || self.0[DRAINING].load(Ordering::Relaxed) > 0
    }

    /// Marks one consumer as waiting until the returned guard is dropped.
    #[inline]
    pub fn waiting(&self) -> HungerGuard<'_> {
        self.mark(WAITING)
    }

    /// Marks one consumer as working through the last batch it has until the returned guard
    /// is dropped.
    #[inline]
    pub fn draining(&self) -> HungerGuard<'_> {
        self.mark(DRAINING)
    }

    fn mark(&self, which: usize) -> HungerGuard<'_> {
        self.0[which].fetch_add(1, Ordering::Relaxed);
        HungerGuard(self, which)
    }
}

/// One consumer counted; see [`Hunger::waiting`] and [`Hunger::draining`].
pub struct HungerGuard<'a>(&'a Hunger, usize);

impl Drop for HungerGuard<'_> {
    fn drop(&mut self) {
        self.0 .0[self.1].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_waiters_across_clones_until_their_guards_drop() {
        let h = Hunger::new();
        let seen = h.clone();
        assert!(!seen.any());
        let a = h.waiting();
        let b = h.waiting();
        assert!(seen.any());
        drop(a);
        assert!(seen.any());
        drop(b);
        assert!(!seen.any());
    }

    #[test]
    fn a_draining_consumer_counts_as_soon_hungry_but_not_as_waiting() {
        let h = Hunger::new();
        assert!(!h.soon());
        let d = h.draining();
        assert!(h.soon());
        assert!(!h.any());
        let w = h.waiting();
        drop(d);
        assert!(h.soon() && h.any());
        drop(w);
        assert!(!h.soon());
    }
}
