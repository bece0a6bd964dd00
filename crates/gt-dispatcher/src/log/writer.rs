//! The writer thread: receives record batches from the core, formats them into lines (see
//! [`super::render`]), writes them to the file in big chunks ([`WRITE`] bytes, or whatever there
//! is once no batch came for [`LINGER`], and at least every [`FLUSH_EVERY`]) and streams each
//! batch's lines to the attached monitors.
//!
//! The queue is short ([`QUEUE`] batches: 64k records, about 4 MB, a few milliseconds of a busy
//! stream, enough to ride out the writer losing its core for a scheduler time slice): a writer
//! that falls further behind makes the core wait rather than fill memory. A long queue (it was
//! 512 batches) only hid the writer's cost until the stream paused, and made the core page-fault
//! fresh batches meanwhile, which doubled its cost per record. For the same reason the thread
//! runs at normal priority: the core may be waiting on it, and a lowered one (it was nice 10)
//! lost to every other busy process.

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
pub(crate) const QUEUE: usize = 64;

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
        // Batches circulate between the core and the writer, all of them made up front (their
        // pages are touched once, on first use) and every one coming back.
        let (back, spare) = crossbeam_channel::bounded(QUEUE + 2);
        for _ in 0..QUEUE + 2 {
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
    let (mut out, name) = match file {
        Some((f, name)) => (Some(LogFile::new(f)), name),
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
                for r in batch.drain(..) {
                    fmt.line(&mut text, &r);
                    if let Record::Monitor(tx) = r {
                        watchers.push(tx);
                        monitors.store(watchers.len(), Ordering::Relaxed);
                    }
                }
                let _ = back.try_send(batch);
                // Caught up with the core: write now rather than linger, so the file is at
                // most one hand-over behind (a dispatcher that is killed loses little). Under
                // a steady stream batches queue up and text still goes out in big writes.
                let caught_up = rx.is_empty();
                if !watchers.is_empty() && text.len() > from {
                    let lines = String::from_utf8_lossy(&text[from..]).into_owned();
                    watchers.retain(|w| w.send(vec![MonitorMsg::Lines(lines.clone())]).is_ok());
                    monitors.store(watchers.len(), Ordering::Relaxed);
                }
                (false, caught_up)
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
    if let Some(f) = &mut out {
        f.finish();
    }
}

/// Disk space reserved ahead of the log's end at a time.
const RESERVE: u64 = 8 << 20;

/// The log file, appended to, with disk space reserved ahead of its end on Linux: writing into
/// reserved blocks skips the filesystem's per-block delayed-allocation bookkeeping, about a third
/// of the kernel's time per written page on ext4. The file's size is only what was written; what
/// was reserved past it is given back when the log closes.
struct LogFile {
    file: std::fs::File,
    len: u64,
    reserved: u64,
    /// Cleared once the filesystem (or file type) turns a reservation down.
    reserve: bool,
}

impl LogFile {
    fn new(file: std::fs::File) -> LogFile {
        LogFile {
            file,
            len: 0,
            reserved: 0,
            reserve: cfg!(target_os = "linux"),
        }
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        if self.reserve && self.len + b.len() as u64 > self.reserved {
            self.reserve_more(b.len() as u64);
        }
        self.file.write_all(b)?;
        self.len += b.len() as u64;
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn reserve_more(&mut self, need: u64) {
        use std::os::fd::AsRawFd as _;
        let from = self.reserved.max(self.len);
        let n = RESERVE.max(need);
        // SAFETY: fallocate only reads its integer arguments; the descriptor is our open file.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                from as libc::off_t,
                n as libc::off_t,
            )
        };
        if rc == 0 {
            self.reserved = from + n;
        } else {
            // Not a regular file, or a filesystem without fallocate: write without reserving.
            self.reserve = false;
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn reserve_more(&mut self, _need: u64) {
        self.reserve = false;
    }

    /// Gives back the space reserved past the end.
    fn finish(&mut self) {
        if self.reserved > self.len {
            if let Err(e) = self.file.set_len(self.len) {
                tracing::debug!(target: "gt::dispatcher", "could not release the instruction log's reserved space: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_space_is_given_back_and_the_size_is_what_was_written() {
        let path = std::env::temp_dir().join(format!("gt-logfile-{}.log", std::process::id()));
        let mut f = LogFile::new(std::fs::File::create(&path).unwrap());
        let chunk = vec![b'x'; 100_000];
        for _ in 0..3 {
            f.write_all(&chunk).unwrap();
        }
        f.finish();
        drop(f);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 300_000);
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            // Well under the 8 MiB reserved ahead (a filesystem may round up a little).
            assert!(
                meta.blocks() * 512 < 1 << 20,
                "{} bytes allocated",
                meta.blocks() * 512
            );
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [&chunk[..], &chunk, &chunk].concat()
        );
        let _ = std::fs::remove_file(&path);
    }
}
