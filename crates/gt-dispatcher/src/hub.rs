//! Where events meet the core: a queue, and the core behind a lock that whichever thread brought
//! an event takes to handle everything queued ("flat combining").
//!
//! The core used to run on a thread of its own that every event woke. On the embedded runtime an
//! `item()` round trip was then four hand-offs (client → core thread → worker → core thread →
//! client), and at seed sizes a training step's wall time was mostly those wake-ups: in a
//! profile of the MLP step, ~45% of the core thread's samples and ~40% of the client's were
//! futex waits, yields and wake-ups, and the core thread's waiting took a core of the two from
//! the threads with work. Now the thread that sends an event (a client flushing its batch, a
//! worker replying, a socket reader, the heartbeat) queues it and then, if the core is free,
//! handles the queue itself: a round trip is two hand-offs (client → worker → client).
//!
//! - **Order.** Events are only taken from the queue under the core's lock, in queue order, so
//!   the core sees exactly the order a single core thread saw.
//! - **Nothing is stranded.** A sender that finds the core busy leaves its event to the holder:
//!   after unlocking, the holder looks at the queue again (a `SeqCst` fence on both sides orders
//!   "queue, then try the lock" against "unlock, then look at the queue") and goes round again.
//! - **Nobody is trapped.** A sender handles at most [`TURNS`] rounds; if events keep coming it
//!   kicks the core thread, which takes over, so a client's thread returns to its program.
//! - **The core thread** remains for what needs a clock: handing idle instruction-log records
//!   to the writer ([`LOG_IDLE_FLUSH`]), and a periodic look at the queue ([`IDLE_LOOK`]) as a
//!   safety net. It sleeps otherwise.
//! - **A panic** in the core (a bug) is caught on whichever thread hit it: it is reported, the
//!   core is stopped (every session and worker link is dropped, so clients get "connection
//!   closed" errors) and the sender's thread carries on.
//!
//! Nothing the core does while handling blocks on another thread that may be waiting for the
//! core: worker, client and socket-writer queues are unbounded, and the log's bounded queue is
//! emptied by a writer that never touches the core.

use crate::core::Core;
use crate::event::Event;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Rounds a sending thread handles before it hands a still-busy queue to the core thread.
const TURNS: usize = 4;
/// How long log records may wait in an idle core before going to the writer (a busy core hands
/// them over in full batches).
const LOG_IDLE_FLUSH: Duration = Duration::from_millis(2);
/// How often the core thread looks at the queue when nothing woke it.
const IDLE_LOOK: Duration = Duration::from_millis(100);

/// The dispatcher has stopped; the event was dropped.
#[derive(Debug, Clone, Copy)]
pub struct Stopped;

struct Inbox {
    events: VecDeque<Event>,
    /// The core stopped: events are refused.
    closed: bool,
    /// A sender asked the core thread to take over.
    kicked: bool,
}

/// The running core and the queue it is handling (swapped with the inbox's each round, so
/// neither side allocates in steady state).
struct Running {
    core: Core,
    batch: VecDeque<Event>,
}

/// The shared core and its queue.
pub(crate) struct Hub {
    inbox: Mutex<Inbox>,
    wake: Condvar,
    core: Mutex<Option<Running>>,
    /// Whether log records wait for a hand-over (read by the core thread without the lock).
    log_pending: AtomicBool,
    /// Whether the core thread sleeps the long [`IDLE_LOOK`].
    long_sleep: AtomicBool,
}

impl Hub {
    pub(crate) fn new(core: Core) -> Hub {
        Hub {
            inbox: Mutex::new(Inbox {
                events: VecDeque::new(),
                closed: false,
                kicked: false,
            }),
            wake: Condvar::new(),
            core: Mutex::new(Some(Running {
                core,
                batch: VecDeque::new(),
            })),
            log_pending: AtomicBool::new(false),
            long_sleep: AtomicBool::new(false),
        }
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // Every critical section on the inbox is a push, a swap or a flag: a panic cannot leave
        // it half-updated.
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `ev` and handles the queue on this thread if the core is free.
    pub(crate) fn send(&self, ev: Event) -> Result<(), Stopped> {
        {
            let mut inbox = self.inbox();
            if inbox.closed {
                return Err(Stopped);
            }
            inbox.events.push_back(ev);
        }
        fence(Ordering::SeqCst);
        self.pump();
        Ok(())
    }

    /// Handles queued events while there are any and the core is free (see the module docs).
    fn pump(&self) {
        for _ in 0..TURNS {
            let mut run = match self.core.try_lock() {
                Ok(run) => run,
                // The holder looks at the queue again after unlocking.
                Err(TryLockError::WouldBlock) => return,
                // Panics are caught inside the lock, so this is never poisoned in practice.
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
            };
            self.turn(&mut run);
            drop(run);
            fence(Ordering::SeqCst);
            if self.inbox().events.is_empty() {
                return;
            }
        }
        // Still busy: let the core thread carry on so this thread gets back to its own work.
        self.inbox().kicked = true;
        self.wake.notify_one();
    }

    /// One round: every queued event, then the session queues, then the outboxes.
    fn turn(&self, slot: &mut Option<Running>) {
        let Some(run) = slot else { return };
        std::mem::swap(&mut self.inbox().events, &mut run.batch);
        let now = Instant::now();
        let handled = catch_unwind(AssertUnwindSafe(|| {
            for ev in run.batch.drain(..) {
                run.core.handle(ev, now);
            }
            run.core.serve();
            run.core.flush();
        }));
        let stop = match handled {
            Ok(()) => run.core.stopped(),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                tracing::error!(target: "gt::dispatcher", "the dispatcher core failed ({what}); stopping it");
                true
            }
        };
        let pending = run.core.log_pending();
        if pending
            && !self.log_pending.swap(true, Ordering::Relaxed)
            && self.long_sleep.load(Ordering::Relaxed)
        {
            // The core thread is asleep for [`IDLE_LOOK`]; records should wait about
            // [`LOG_IDLE_FLUSH`]. (At most one wake-up per such sleep: a busy stream's core
            // thread sleeps the short time.)
            self.long_sleep.store(false, Ordering::Relaxed);
            self.wake.notify_one();
        } else if !pending {
            self.log_pending.store(false, Ordering::Relaxed);
        }
        if stop {
            // Dropping the core closes the log (writing it out) and every session and worker
            // link; only then is the inbox closed, which lets the core thread end, so a
            // `Dispatcher::shutdown` (which joins it) returns with the log on disk. Events
            // refused from now on, and those still queued, are dropped outside the inbox's lock
            // (dropping one may send another).
            *slot = None;
            let queued = {
                let mut inbox = self.inbox();
                inbox.closed = true;
                std::mem::take(&mut inbox.events)
            };
            self.wake.notify_one();
            drop(queued);
        }
    }

    /// Waits until no thread is inside the core (after the core thread has ended, the core is
    /// gone).
    pub(crate) fn wait_idle(&self) {
        drop(self.core.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The core thread: hands idle log records to the writer, takes over a busy queue when a
    /// sender kicks it, and stops with the core.
    pub(crate) fn run_core_thread(&self) {
        loop {
            let idle = {
                let mut inbox = self.inbox();
                let mut idle = false;
                if !inbox.kicked && !inbox.closed && inbox.events.is_empty() {
                    let long = !self.log_pending.load(Ordering::Relaxed);
                    self.long_sleep.store(long, Ordering::Relaxed);
                    let wait = if long { IDLE_LOOK } else { LOG_IDLE_FLUSH };
                    let (guard, waited) = self
                        .wake
                        .wait_timeout(inbox, wait)
                        .unwrap_or_else(|e| e.into_inner());
                    inbox = guard;
                    idle = waited.timed_out();
                    if !idle && !inbox.kicked && !inbox.closed && inbox.events.is_empty() {
                        // Woken to wait for a shorter time (log records became pending).
                        continue;
                    }
                }
                if inbox.closed {
                    break;
                }
                inbox.kicked = false;
                idle
            };
            let mut run = self.core.lock().unwrap_or_else(|e| e.into_inner());
            self.turn(&mut run);
            if let (true, Some(r)) = (idle, run.as_mut()) {
                r.core.flush_log();
                self.log_pending.store(false, Ordering::Relaxed);
            }
        }
        tracing::debug!(target: "gt::dispatcher", "core stopped");
    }
}

#[cfg(test)]
mod tests {
    use crate::server::{Dispatcher, DispatcherConfig};
    use crate::tests::full;
    use gt_core::SessionId;
    use gt_proto::WorkerMsg;
    use gt_transport::Tx;
    use rustc_hash::FxHashMap;
    use std::sync::{Arc, Mutex};

    /// Clients on four threads send small batches at once; every instruction reaches the worker
    /// exactly once and each session's in its order, whichever thread handled it.
    #[test]
    fn concurrent_senders_lose_nothing_and_keep_each_sessions_order() {
        const CLIENTS: u64 = 4;
        const BATCHES: u64 = 2000;
        let d = Dispatcher::start(DispatcherConfig::default());
        let seen: Arc<Mutex<Vec<WorkerMsg>>> = Arc::default();
        let s = seen.clone();
        let worker = Tx::from_fn(move |b| {
            s.lock().unwrap().extend(b);
            Ok(())
        });
        d.connect_worker("inproc", worker).unwrap();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (sid, _, tx) = d
                    .connect_client(&format!("c{i}"), Tx::from_fn(|_| Ok(())))
                    .unwrap();
                (sid, tx)
            })
            .collect();
        std::thread::scope(|scope| {
            for (_, tx) in &clients {
                scope.spawn(move || {
                    for n in 0..BATCHES {
                        tx.send(vec![full(2 * n + 1), full(2 * n + 2)]).unwrap();
                    }
                });
            }
        });
        // The last batches may still sit with a thread that queued them for the holder, which
        // hands them over before unlocking; shutting down handles whatever is queued first.
        drop(clients);
        d.shutdown();
        let mut next: FxHashMap<SessionId, u64> = FxHashMap::default();
        let mut execs = 0;
        for m in seen.lock().unwrap().iter() {
            if let WorkerMsg::Exec { out, .. } = m {
                let want = next.entry(out.session()).or_insert(1);
                assert_eq!(out.local(), *want, "session {} out of order", out.session());
                *want += 1;
                execs += 1;
            }
        }
        assert_eq!(execs, CLIENTS * BATCHES * 2);
        assert_eq!(next.len() as u64, CLIENTS);
    }

    /// After a shutdown, joining fails with an error instead of waiting.
    #[test]
    fn a_stopped_core_refuses_events() {
        let d = Dispatcher::start(DispatcherConfig::default());
        d.shutdown();
        let Err(err) = d.connect_client("late", Tx::from_fn(|_| Ok(()))) else {
            panic!("joined a stopped dispatcher");
        };
        assert!(err.to_string().contains("dispatcher stopped"), "{err}");
    }
}
