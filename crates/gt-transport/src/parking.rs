//! A many-to-one queue whose receiver never busy-spins: it yields its core for a while, then parks.
//!
//! The runtime's hot queues carry *batches* (a client batch, a worker's share of a round), so a
//! lock per message costs nothing measurable. What does cost is how the receiver waits.
//! `crossbeam_channel::recv` busy-spins (`pause`) before it yields and parks; on a 2-core machine
//! with three busy threads (client, dispatcher, worker) the spinning takes the core from the very
//! thread that would produce the next message (a profile of the Python add loop showed ~10% of
//! all samples spinning in `recv`, and `pause` is slow under virtualisation). Parking at once
//! avoids that but makes every hand-off a sleep and a wake-up, and on a loaded machine about a
//! third of the runs fell into a slow mode (90–150 µs per `item()` round trip). A few
//! `sched_yield`s first hand the core straight to a runnable partner thread on the same core and
//! catch quick answers without a wake-up. Measured with `gt bench ops` (embedded sync round trip,
//! 15 runs each, load ~3.5): spinning `recv` median 23.6 µs, parking at once 43.0 µs, three yields
//! then parking 14.2 µs (max 26 µs); any busy-spin made it worse (1,000 polls: ~120 µs).
//! A sender makes the wake-up system call only when the receiver is actually asleep.
//!
//! Ten yields rather than three: on the idle dev VM (same session, binaries alternated, two to
//! four runs each) `gt bench compile --iters 200` eager median iterations went from 0.060–0.085
//! to 0.058–0.065 ms (MLP step) and 0.070–0.105 to 0.042–0.060 ms (mixed), the matmul chain and
//! attention unchanged; `gt bench ops` sync round trips stayed at 9.3–12 µs embedded and went
//! from 148–218 to 69–129 µs over TCP. Thirty yields were faster still on the compile workloads
//! but doubled the embedded round trip (18 µs): the yielding threads delay the one with work.
//! A yield is not a spin: with a runnable partner on the core it hands the core over at once.
//!
//! Then [`POLL`] (50 µs) of yields rather than ten. Once the dispatcher core stopped having a
//! thread of its own (`gt-dispatcher/src/hub.rs`), an embedded stream has two busy threads
//! (client and worker), one per core here, so a waiting thread that keeps polling takes nothing
//! from the other. Ten yields (a few µs) were shorter than the gaps inside a training step, so
//! the client and the worker kept putting each other to sleep: `perf stat` of 5,000 mixed
//! workload steps counted 34,904 futex calls and 10,127 context switches, against 129 and 637
//! polling for 50 µs, and a wake-up on this VM costs the waker several µs (22% of the worker's
//! samples were in `futex_wake`). Median iterations, one runtime (eager): MLP step 0.068 →
//! 0.035 ms, mixed 0.061–0.068 → 0.019–0.020 ms; `gt bench ops` embedded sync round trip
//! 3.3–18 → 2.0–2.3 µs (20, 50, 100 and 200 µs all measured alike; 50 leaves margin for a
//! loaded machine's longer gaps). The cost is CPU time: a thread that goes idle burns up to
//! 50 µs of yields before it sleeps.
//!
//! Polling threads do not migrate, so a client and a worker that start on the same core stay
//! there and run one after the other: some runs of the MLP step were stuck at 0.051–0.057 ms
//! for their whole life. A yield that took over `SHARED_CORE` (20 µs) ran another thread on
//! this core, so the poller parks at once; the partner keeps the core, and the wake-up that
//! follows lets the scheduler put the poller on an idle one. With that check, twelve fresh runs
//! all measured 0.033–0.036 ms (MLP) and 0.019–0.020 ms (mixed).
//!
//! That check misses the common case, though: the partner sends its message before it gives the
//! core back, so the poller finds a message after its long yield and never parks. Each sender
//! therefore records its CPU with the message. A poller that finds a message from its own CPU
//! after a long yield moves to another core, if one is likely idle ([`crate::migrate`]).
//! Measured on the 2-core VM with `gt bench compile --iters 300`, four runs of five rounds
//! alternating the two binaries (20 rounds each), the rounds' steady-state speedups went as
//! follows:
//! - MLP step: 0.54–1.74 → 0.88–1.13, with 5 of 20 rounds under 0.85x before and none after;
//! - mixed: 0.58–2.07 → 0.84–1.78;
//! - medians: unchanged.
//!
//! Semantics match `crossbeam_channel::unbounded` for what GT uses: `send` fails once the receiver
//! is gone, `recv` fails once every sender is gone and the queue is empty, and messages still
//! queued when the receiver is dropped are dropped.

use crossbeam_channel::{RecvError, SendError, TryRecvError};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// How long a receiver keeps yielding and looking before it parks (see the module docs for the
/// measurements).
pub const POLL: std::time::Duration = std::time::Duration::from_micros(50);

/// A yield that took this long ran another thread on this core. If a message came meanwhile from
/// a sender on this CPU, the waiting thread moves to another core ([`crate::migrate`]); if none
/// came, it parks at once, so that the partner keeps the core and its wake-up may place it on
/// another one (polling threads never migrate, and a client and worker polling on one core run
/// serially).
const SHARED_CORE: std::time::Duration = std::time::Duration::from_micros(20);

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiver: bool,
    sleeping: bool,
    /// The CPU the last message was sent from, where known ([`crate::migrate::current_cpu`]).
    sender_cpu: Option<u32>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock cannot leave the queue half-updated (every critical
        // section is a push, a pop or a counter change), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side; cheap to clone.
pub struct ParkSender<T>(Arc<Shared<T>>);

/// The receiving side (one per queue).
pub struct ParkReceiver<T>(Arc<Shared<T>>);

/// A new empty queue.
pub fn parking_channel<T>() -> (ParkSender<T>, ParkReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiver: true,
            sleeping: false,
            sender_cpu: None,
        }),
        ready: Condvar::new(),
    });
    (ParkSender(shared.clone()), ParkReceiver(shared))
}

impl<T> ParkSender<T> {
    /// Queues `msg`; fails (handing it back) once the receiver is gone.
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        let mut s = self.0.lock();
        if !s.receiver {
            return Err(SendError(msg));
        }
        s.queue.push_back(msg);
        s.sender_cpu = crate::migrate::current_cpu();
        let wake = s.sleeping;
        drop(s);
        if wake {
            self.0.ready.notify_one();
        }
        Ok(())
    }
}

impl<T> Clone for ParkSender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        ParkSender(self.0.clone())
    }
}

impl<T> Drop for ParkSender<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.senders -= 1;
        let wake = s.senders == 0 && s.sleeping;
        drop(s);
        if wake {
            self.0.ready.notify_one();
        }
    }
}

impl<T> ParkReceiver<T> {
    /// The next message, sleeping until there is one; fails once every sender is gone and the
    /// queue is empty.
    pub fn recv(&self) -> Result<T, RecvError> {
        if let Some(got) = self.poll(POLL) {
            return got;
        }
        let mut s = self.0.lock();
        loop {
            if let Some(msg) = s.queue.pop_front() {
                return Ok(msg);
            }
            if s.senders == 0 {
                return Err(RecvError);
            }
            s.sleeping = true;
            s = self.0.ready.wait(s).unwrap_or_else(|e| e.into_inner());
            s.sleeping = false;
        }
    }

    /// Like [`ParkReceiver::recv`] (the same yields before sleeping), but gives up after
    /// `timeout` (`Ok(None)`).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Result<Option<T>, RecvError> {
        let deadline = std::time::Instant::now() + timeout;
        if let Some(got) = self.poll(POLL.min(timeout)) {
            return got.map(Some);
        }
        let mut s = self.0.lock();
        loop {
            if let Some(msg) = s.queue.pop_front() {
                return Ok(Some(msg));
            }
            if s.senders == 0 {
                return Err(RecvError);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            s.sleeping = true;
            s = self
                .0
                .ready
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            s.sleeping = false;
        }
    }

    /// Yields and looks for a message for up to `limit`; `None` if none came, or as soon as a
    /// yield shows that another thread wants this core ([`SHARED_CORE`]).
    fn poll(&self, limit: std::time::Duration) -> Option<Result<T, RecvError>> {
        let start = std::time::Instant::now();
        let mut shared = false;
        loop {
            if let Some(got) = self.take(shared) {
                return Some(got);
            }
            let before = std::time::Instant::now();
            if shared || before - start >= limit {
                return None;
            }
            std::thread::yield_now();
            shared = before.elapsed() >= SHARED_CORE;
        }
    }

    /// The next message if one is queued (`None` if not). After a long yield (`shared`), a
    /// message sent from this very CPU means the sender shares this core: this thread then
    /// moves to another ([`crate::migrate`]), since the sender left the message before it gave
    /// the core back and so parking would never separate the two.
    fn take(&self, shared: bool) -> Option<Result<T, RecvError>> {
        let mut s = self.0.lock();
        match s.queue.pop_front() {
            Some(msg) => {
                let sender_cpu = s.sender_cpu;
                drop(s);
                if shared && sender_cpu.is_some() && sender_cpu == crate::migrate::current_cpu() {
                    crate::migrate::leave_shared_core();
                }
                Some(Ok(msg))
            }
            None if s.senders == 0 => Some(Err(RecvError)),
            None => None,
        }
    }

    /// The next message if one is queued.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut s = self.0.lock();
        match s.queue.pop_front() {
            Some(msg) => Ok(msg),
            None if s.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Drop for ParkReceiver<T> {
    fn drop(&mut self) {
        let queued = {
            let mut s = self.0.lock();
            s.receiver = false;
            std::mem::take(&mut s.queue)
        };
        drop(queued); // outside the lock: dropping a batch may free a lot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_in_order_across_threads() {
        let (tx, rx) = parking_channel();
        let tx2 = tx.clone();
        let a = std::thread::spawn(move || {
            for i in 0..1000u32 {
                tx.send(i).unwrap();
            }
        });
        let b = std::thread::spawn(move || {
            for i in 1000..2000u32 {
                tx2.send(i).unwrap();
            }
        });
        let mut got = Vec::new();
        while let Ok(v) = rx.recv() {
            got.push(v);
        }
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(got.len(), 2000);
        // Each sender's messages stay in its order.
        let first: Vec<u32> = got.iter().copied().filter(|v| *v < 1000).collect();
        let second: Vec<u32> = got.iter().copied().filter(|v| *v >= 1000).collect();
        assert_eq!(first, (0..1000).collect::<Vec<_>>());
        assert_eq!(second, (1000..2000).collect::<Vec<_>>());
    }

    #[test]
    fn a_sleeping_receiver_wakes_when_the_last_sender_leaves() {
        let (tx, rx) = parking_channel::<u8>();
        let t = std::thread::spawn(move || rx.recv());
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(tx);
        assert_eq!(t.join().unwrap(), Err(RecvError));
    }

    #[test]
    fn sending_to_a_dropped_receiver_fails_and_queued_messages_are_dropped() {
        let (tx, rx) = parking_channel();
        let a = Arc::new(());
        tx.send(a.clone()).unwrap();
        assert_eq!(Arc::strong_count(&a), 2);
        drop(rx);
        assert_eq!(Arc::strong_count(&a), 1);
        assert!(tx.send(a.clone()).is_err());
    }

    /// Pins the calling thread to `cpus`.
    #[cfg(target_os = "linux")]
    fn pin(cpus: &[usize]) {
        // SAFETY: an all-zero `cpu_set_t` is the empty set; the call gets its true size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cpus {
                libc::CPU_SET(c, &mut set);
            }
            let size = std::mem::size_of::<libc::cpu_set_t>();
            assert_eq!(
                libc::sched_setaffinity(0, size, &set),
                0,
                "pinning to {cpus:?}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_receiver_sharing_its_senders_core_moves_off_it() {
        let _serial = crate::migrate::SERIAL
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(cpus) = crate::migrate::allowed_cpus() else {
            return; // affinity unknown
        };
        if cpus.len() < 2 {
            return; // nowhere to move to
        }
        let (x, n_cpus) = (cpus[0], cpus.len());
        let (to_rx, rx) = parking_channel::<u32>();
        let (to_tx, back) = parking_channel::<u32>();
        // The sender may only run on `x`; it works 50 µs per message, so the receiver's yields
        // on `x` are long, and each message comes from its own CPU.
        let sender = std::thread::spawn(move || {
            pin(&[x]);
            for i in 0..200 {
                let t = std::time::Instant::now();
                while t.elapsed() < std::time::Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
                to_rx.send(i).unwrap();
                back.recv().unwrap();
            }
        });
        let receiver = std::thread::spawn(move || {
            pin(&[x]);
            // Free to move, but polling threads stay where they are. Watched for the whole
            // exchange: whether it was ever seen off `x`, and whether, while on `x`, no other
            // CPU was likely idle (other tests or processes busy), since the kernel may later
            // move it back and the load may change.
            pin(&cpus);
            let (mut left, mut busy) = (false, false);
            for i in 0..200 {
                assert_eq!(rx.recv().unwrap(), i);
                if crate::migrate::current_cpu() == Some(x as u32) {
                    busy |= crate::migrate::running_threads()
                        .is_some_and(|r| !crate::migrate::idle_cpu_likely(r, n_cpus));
                } else {
                    left = true;
                }
                to_tx.send(i).unwrap();
            }
            (left, busy)
        });
        sender.join().unwrap();
        let (left, busy) = receiver.join().unwrap();
        // It may stay only while no other CPU was likely idle.
        assert!(left || busy, "the receiver stayed on its sender's core");
    }

    #[test]
    fn try_recv_reports_empty_then_disconnected() {
        let (tx, rx) = parking_channel();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(7).unwrap();
        assert_eq!(rx.try_recv(), Ok(7));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }
}
