//! [`Hunger`]: how many consumers are waiting for work, for producers upstream to read.
//!
//! A client buffers instructions and sends them in growing batches (see `gt-client`'s
//! `FIRST_BATCH`): few sends for a long stream of tiny ops. At a training step's sync point that
//! policy leaves the worker idle while the client still holds the step's last few dozen
//! instructions (the backward pass and the optimizer), which then run after the client stops.
//! A worker that waits marks itself hungry here, and a client that sees a hungry worker sends
//! what it has as soon as it is worth a send. Only in-process links have this signal (the
//! embedded runtime); over sockets the producer cannot see the worker and keeps its batching.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shared count of consumers waiting for work. Cheap to clone; clones share the count.
#[derive(Clone, Default, Debug)]
pub struct Hunger(Arc<AtomicUsize>);

impl Hunger {
    /// A count with nobody waiting.
    pub fn new() -> Hunger {
        Hunger::default()
    }

    /// Whether any consumer is waiting for work now.
    #[inline]
    pub fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }

    /// Marks one consumer as waiting until the returned guard is dropped.
    #[inline]
    pub fn waiting(&self) -> HungerGuard<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        HungerGuard(self)
    }
}

/// One consumer waiting; see [`Hunger::waiting`].
pub struct HungerGuard<'a>(&'a Hunger);

impl Drop for HungerGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
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
}
