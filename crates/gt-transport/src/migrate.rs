//! Moving a polling thread off a core it shares with its partner.
//!
//! An embedded runtime has two busy threads: the client and the worker. Each one waits for the
//! other by polling its queue with `sched_yield` ([`crate::parking`]). While they run on two
//! cores this is the fast hand-off. When both start on one core, though, neither ever sleeps.
//! Each yield hands the core to the other thread, which runs until it waits in turn, and the
//! load balancer leaves them there (both tasks are cache-hot). The runtime then runs its
//! threads one after the other for its whole life. On the 2-core dev VM, 5 of 16 fresh
//! runtimes of the seed-size mixed workload ran in this mode: 26.7–27.0 µs per step instead of
//! 17.0–17.3 µs. `/proc` showed client and worker on one CPU and one involuntary context switch
//! per step each, with no sleeps. `gt bench compile` rounds swung between 0.6x and 1.7x, on
//! A/A runs too.
//!
//! The existing remedy in [`crate::parking`] parks a poller whose yield took over
//! `SHARED_CORE`, so that its wake-up may place it on an idle core. It never fires in this mode,
//! because the partner always leaves a message behind before it yields the core back. So a
//! poller that finds a message sent from its own CPU after such a yield calls
//! [`leave_shared_core`]. On Linux this moves the calling thread to another CPU it may run on:
//! its affinity mask is set without the current CPU, then restored, so the kernel migrates it
//! at once and it stays free to move later.
//!
//! It moves only when some CPU is likely idle: the system's runnable threads (`/proc/loadavg`),
//! less the two partners on this CPU, must be fewer than the other CPUs. When another process
//! keeps a core busy, a partner moved beside it competes with a thread that never yields, which
//! is far worse than taking turns with its partner. Moving regardless made a runtime 4.5x slower
//! (the matmul chain step at 243–258 µs instead of 55 while a Python interpreter started beside
//! it, the load balancer moving the thread back every time). A process moves at most once per
//! [`MIN_GAP`]: a few system calls and a small file read every few milliseconds at worst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Least time between two moves in one process.
pub const MIN_GAP: Duration = Duration::from_millis(2);

/// Moves made by this process's threads so far.
static MOVES: AtomicU64 = AtomicU64::new(0);
/// When the last move was tried (nanoseconds since [`EPOCH`]; 0: never).
static LAST_TRY: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// How many times this process's threads moved off a shared core so far.
pub fn moves() -> u64 {
    MOVES.load(Ordering::Relaxed)
}

/// The CPU the calling thread runs on (`None` where unknown or not Linux). Cheap: glibc reads
/// it from the thread's `rseq` area or the vDSO, without a system call.
pub fn current_cpu() -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no arguments, no memory handed over.
        let cpu = unsafe { libc::sched_getcpu() };
        u32::try_from(cpu).ok()
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Moves the calling thread, which shares its CPU with a partner, to another CPU of its
/// affinity mask. It does not move if this process tried less than [`MIN_GAP`] ago, if the
/// mask holds only this CPU, or if no other CPU is likely idle ([`idle_cpu_likely`]). Returns
/// whether it moved. Does nothing except on Linux.
///
/// The gap is per process, not per thread: with a gap per thread, both partners moved at
/// nearly the same time and only swapped cores (seed MLP step, 2-core VM: 3 of 16 fresh
/// runtimes stayed shared at 42–45 µs per step against 25).
pub fn leave_shared_core() -> bool {
    let epoch = *EPOCH.get_or_init(Instant::now);
    let now = (epoch.elapsed().as_nanos() as u64).max(1);
    let last = LAST_TRY.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < MIN_GAP.as_nanos() as u64 {
        return false;
    }
    if LAST_TRY
        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return false; // another thread is moving
    }
    let moved = move_off_this_cpu();
    if moved {
        MOVES.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(target: "gt::transport", "moved a polling thread off a shared core");
    }
    moved
}

/// Whether a CPU other than the caller's is likely idle, given the system's runnable threads
/// (`running`, which counts the caller and its partner on the caller's CPU) and the CPUs the
/// caller may use (`cpus`).
pub fn idle_cpu_likely(running: usize, cpus: usize) -> bool {
    running.saturating_sub(2) < cpus.saturating_sub(1)
}

/// Runnable threads on the whole system: the fourth field of `/proc/loadavg` (`running/total`).
#[cfg(target_os = "linux")]
pub(crate) fn running_threads() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[cfg(target_os = "linux")]
fn move_off_this_cpu() -> bool {
    // SAFETY: `cpu_set_t` is plain data, for which all-zero is the empty set; the calls get
    // its true size, and act on the calling thread only (pid 0).
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut mask: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut mask) != 0 || libc::CPU_COUNT(&mask) < 2 {
            return false;
        }
        let cpus = libc::CPU_COUNT(&mask) as usize;
        if !running_threads().is_some_and(|r| idle_cpu_likely(r, cpus)) {
            return false;
        }
        let cpu = libc::sched_getcpu();
        if cpu < 0 || cpu as usize >= 8 * size || !libc::CPU_ISSET(cpu as usize, &mask) {
            return false;
        }
        let mut others = mask;
        libc::CPU_CLR(cpu as usize, &mut others);
        if libc::sched_setaffinity(0, size, &others) != 0 {
            return false;
        }
        // Back to the full mask: the thread stays where it was moved, free to move again.
        libc::sched_setaffinity(0, size, &mask);
        libc::sched_getcpu() != cpu
    }
}

#[cfg(not(target_os = "linux"))]
fn move_off_this_cpu() -> bool {
    false
}

/// The CPUs the calling thread may run on (`None` where unknown or not Linux).
#[cfg(test)]
pub(crate) fn allowed_cpus() -> Option<Vec<usize>> {
    #[cfg(target_os = "linux")]
    // SAFETY: as in `move_off_this_cpu`.
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut mask: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut mask) != 0 {
            return None;
        }
        Some(
            (0..8 * size)
                .filter(|&c| libc::CPU_ISSET(c, &mask))
                .collect(),
        )
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Serializes this crate's tests that move threads: the gap between moves is per process.
#[cfg(test)]
pub(crate) static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_moves_at_most_once_per_gap_and_threads_keep_their_affinity() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            let before = allowed_cpus();
            // Another test of this process may have just moved: wait out its gap.
            std::thread::sleep(MIN_GAP);
            let moves = super::moves();
            let moved = leave_shared_core();
            assert_eq!(super::moves(), moves + u64::from(moved));
            assert!(!leave_shared_core(), "a second move within MIN_GAP");
            assert_eq!(allowed_cpus(), before, "the affinity mask was not restored");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_moves_only_where_a_cpu_is_likely_idle() {
        // The two partners on one of two CPUs: the other is idle.
        assert!(idle_cpu_likely(2, 2));
        // A third busy thread (another process) holds the other one.
        assert!(!idle_cpu_likely(3, 2));
        assert!(idle_cpu_likely(3, 4));
        assert!(!idle_cpu_likely(5, 4));
        assert!(!idle_cpu_likely(2, 1));
    }
}
