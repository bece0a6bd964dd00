//! The writer thread: receives record batches from the core, formats them into lines (see
//! [`super::render`]), writes them to the file in big chunks ([`WRITE`] bytes, or whatever there
//! is once no batch came for [`LINGER`], and at least every [`FLUSH_EVERY`]) and streams each
//! batch's lines to the attached monitors.
//!
//! The thread runs at a lower scheduling priority (nice 10 on Linux): on a machine whose cores
//! are all busy with the client, the core and the workers, the log catches up when they pause
//! instead of taking their time. The queue is bounded ([`QUEUE`] batches), so a writer that
//! falls that far behind slows the core down rather than filling memory.

use super::render::Formatter;
use super::Record;
use crossbeam_channel::{Receiver, Sender};
use gt_proto::MonitorMsg;
use gt_transport::Tx;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batches the writer may lag behind before the core waits for it.
pub(crate) const QUEUE: usize = 512;

/// The core's handle on the writer thread.
pub(crate) struct Writer {
    tx: Option<Sender<Vec<Record>>>,
    /// Emptied batches coming back for reuse (fresh large allocations page-fault).
    spare: Receiver<Vec<Record>>,
    thread: Option<JoinHandle<()>>,
    monitors: Arc<AtomicUsize>,
    pub(crate) has_file: bool,
}

impl Writer {
    pub(crate) fn spawn(file: Option<(std::fs::File, String)>) -> std::io::Result<Writer> {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<Record>>(QUEUE);
        // Batches circulate between the core and the writer; a few made up front mean the core
        // never waits on a fresh allocation (and its page faults) in steady state. Every batch
        // comes back (as many as the queue can hold), so a writer that fell behind once does not
        // make the core allocate and fault in fresh batches again the next time.
        let (back, spare) = crossbeam_channel::bounded(QUEUE + 8);
        for _ in 0..8 {
            let _ = back.try_send(Vec::with_capacity(super::BATCH));
        }
        let monitors = Arc::new(AtomicUsize::new(0));
        let has_file = file.is_some();
        let m = monitors.clone();
        let thread = std::thread::Builder::new()
            .name("gt-instruction-log".into())
            .spawn(move || write_loop(file, rx, back, m))?;
        Ok(Writer {
            tx: Some(tx),
            spare,
            thread: Some(thread),
            monitors,
            has_file,
        })
    }

    pub(crate) fn send(&self, batch: Vec<Record>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(batch);
        }
    }

    /// An empty batch to fill next.
    pub(crate) fn empty_batch(&self) -> Vec<Record> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(super::BATCH))
    }

    pub(crate) fn monitors(&self) -> usize {
        self.monitors.load(Ordering::Relaxed)
    }

    /// Writes everything sent so far and stops the thread.
    pub(crate) fn close(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Text the writer collects before writing it to the file in one call.
const WRITE: usize = 256 << 10;
/// How long the writer waits for more records before writing what it has (so an idle log's
/// last lines reach the file promptly).
const LINGER: Duration = Duration::from_millis(10);
/// Under a steady stream, text is written at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

fn write_loop(
    file: Option<(std::fs::File, String)>,
    rx: Receiver<Vec<Record>>,
    back: Sender<Vec<Record>>,
    monitors: Arc<AtomicUsize>,
) {
    lower_priority();
    let (mut out, name) = match file {
        Some((f, name)) => (Some(f), name),
        None => (None, String::new()),
    };
    let mut fmt = Formatter::new();
    let mut watchers: Vec<Tx<MonitorMsg>> = Vec::new();
    // Lines not yet written; written straight to the file (no second copy through a BufWriter).
    let mut text: Vec<u8> = Vec::with_capacity(2 * WRITE);
    let mut last = Instant::now();
    loop {
        let wait = if text.is_empty() { FLUSH_EVERY } else { LINGER };
        // `write`: nothing more came for a while (or the core is gone), so write what there is.
        let (done, write) = match rx.recv_timeout(wait) {
            Ok(mut batch) => {
                let from = text.len();
                for r in &batch {
                    fmt.line(&mut text, r);
                }
                for r in batch.drain(..) {
                    if let Record::Monitor(tx) = r {
                        watchers.push(tx);
                        monitors.store(watchers.len(), Ordering::Relaxed);
                    }
                }
                let _ = back.try_send(batch);
                if !watchers.is_empty() && text.len() > from {
                    let lines = String::from_utf8_lossy(&text[from..]).into_owned();
                    watchers.retain(|w| w.send(vec![MonitorMsg::Lines(lines.clone())]).is_ok());
                    monitors.store(watchers.len(), Ordering::Relaxed);
                }
                (false, false)
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => (false, true),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => (true, true),
        };
        if out.is_none() {
            text.clear();
        } else if !text.is_empty()
            && (write || text.len() >= WRITE || last.elapsed() >= FLUSH_EVERY)
        {
            if let Some(f) = &mut out {
                if let Err(e) = f.write_all(&text) {
                    tracing::error!(target: "gt::dispatcher", "writing the instruction log {name}: {e}; logging stops");
                    out = None;
                }
            }
            text.clear();
            last = Instant::now();
        }
        if done {
            break;
        }
    }
}

/// Makes the calling thread yield to the runtime's threads.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments; on Linux `who = 0` with
    // PRIO_PROCESS names the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        tracing::debug!(target: "gt::dispatcher", "could not lower the log writer's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}
