//! [`Tx`]: how a core sends a batch, whether the other end is a socket writer thread or another
//! core in the same process; and the threads that pump sockets.

use crate::{FrameReader, FrameWriter, Recycler, Stream};
use gt_core::Error;
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;

/// The other end is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

type SendFn<M> = dyn Fn(Vec<M>) -> Result<(), Closed> + Send + Sync;

/// Sends batches of `M`. Cheap to clone. A `Tx` whose consumer hands emptied batches back
/// (see [`Recycler`]) gives them out again through [`Tx::spare`].
pub struct Tx<M> {
    send: Arc<SendFn<M>>,
    spares: Option<Arc<Recycler<M>>>,
}

impl<M> Clone for Tx<M> {
    fn clone(&self) -> Self {
        Tx {
            send: self.send.clone(),
            spares: self.spares.clone(),
        }
    }
}

impl<M: Send + 'static> Tx<M> {
    /// A `Tx` that calls `f` with each batch (in-process links, e.g. tagging a session id).
    pub fn from_fn(f: impl Fn(Vec<M>) -> Result<(), Closed> + Send + Sync + 'static) -> Tx<M> {
        Tx {
            send: Arc::new(f),
            spares: None,
        }
    }

    /// A `Tx` that calls `f` with each batch, whose consumer gives the emptied batches back to
    /// `spares`.
    pub fn recycling(
        f: impl Fn(Vec<M>) -> Result<(), Closed> + Send + Sync + 'static,
        spares: Arc<Recycler<M>>,
    ) -> Tx<M> {
        Tx {
            send: Arc::new(f),
            spares: Some(spares),
        }
    }

    /// An empty vector to fill with the next batch: one the consumer gave back if there is one,
    /// else a new one with room for `capacity` messages.
    #[inline]
    pub fn spare(&self, capacity: usize) -> Vec<M> {
        match &self.spares {
            Some(r) => r.take(capacity),
            None => Vec::with_capacity(capacity),
        }
    }

    /// A `Tx` feeding a channel.
    pub fn from_channel(tx: crossbeam_channel::Sender<Vec<M>>) -> Tx<M> {
        Tx::from_fn(move |b| tx.send(b).map_err(|_| Closed))
    }

    /// Hands back a vector taken with [`Tx::spare`] that was not sent after all.
    pub fn give_back(&self, v: Vec<M>) {
        if let Some(r) = &self.spares {
            r.give(v);
        }
    }

    /// Sends one batch.
    #[inline]
    pub fn send(&self, batch: Vec<M>) -> Result<(), Closed> {
        (self.send)(batch)
    }
}

/// Starts a writer thread for `stream`: batches sent on the returned `Tx` are framed and
/// written (and their vectors handed back through [`Tx::spare`]); everything queued at once goes
/// out in one write. The thread ends (and shuts the
/// stream down) when every `Tx` clone is dropped or a write fails.
pub fn spawn_writer<M: Serialize + Send + 'static>(stream: Stream, name: String) -> Tx<M> {
    let (tx, pending) = deferred_writer();
    pending.start(stream, name);
    tx
}

/// A `Tx` whose writer thread starts later (after the handshake answer has been written, so
/// nothing the core sends can overtake it). Batches sent before `start` wait in the queue.
pub fn deferred_writer<M: Serialize + Send + 'static>() -> (Tx<M>, PendingWriter<M>) {
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<M>>();
    let spares = Arc::new(Recycler::new());
    let send = Tx::recycling(move |b| tx.send(b).map_err(|_| Closed), spares.clone());
    (send, PendingWriter(rx, spares))
}

/// The queue of a [`deferred_writer`], waiting for its stream.
pub struct PendingWriter<M>(crossbeam_channel::Receiver<Vec<M>>, Arc<Recycler<M>>);

impl<M: Serialize + Send + 'static> PendingWriter<M> {
    /// Starts writing the queue to `stream`.
    pub fn start(self, stream: Stream, name: String) {
        let PendingWriter(rx, spares) = self;
        std::thread::Builder::new()
            .name(format!("gt-write-{name}"))
            .spawn(move || {
                let mut w = FrameWriter::new(stream);
                while let Ok(batch) = rx.recv() {
                    w.push(&batch);
                    spares.give(batch);
                    while let Ok(more) = rx.try_recv() {
                        w.push(&more);
                        spares.give(more);
                    }
                    if let Err(e) = w.flush() {
                        tracing::debug!(target: "gt::transport", "write to {name} failed: {e}");
                        break;
                    }
                }
                w.shutdown();
            })
            .expect("spawning a thread");
    }
}

/// Starts a reader thread for `stream`: each decoded batch goes to `on_batch` (which returns
/// `false` to stop); when the connection ends `on_close` gets `None` for a clean close or the
/// error (malformed or oversized frame, I/O error). The stream is shut down on exit, so the
/// peer sees the close.
pub fn spawn_reader<M, F, C>(
    stream: Stream,
    max_frame: usize,
    name: String,
    mut on_batch: F,
    on_close: C,
) -> std::thread::JoinHandle<()>
where
    M: DeserializeOwned + Send + 'static,
    F: FnMut(Vec<M>) -> bool + Send + 'static,
    C: FnOnce(Option<Error>) + Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("gt-read-{name}"))
        .spawn(move || {
            let shutdown_handle = stream.try_clone();
            let mut r = FrameReader::new(stream, max_frame);
            let end = loop {
                match r.recv::<M>() {
                    Ok(Some(batch)) => {
                        if !on_batch(batch) {
                            break None;
                        }
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            if let Ok(s) = shutdown_handle {
                s.shutdown();
            }
            on_close(end);
        })
        .expect("spawning a thread")
}
