//! A client session: the outgoing instruction batch, request ids and their waiting callers, and
//! what happens when the connection dies (every waiter and every later sync gets the error —
//! nothing hangs).

use gt_core::{Error, ReqId, Result, TensorId};
use gt_proto::{ClientMsg, ClientReply, WorkerStats};
use gt_transport::{parking_channel, Hunger, ParkSender, Tx};
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Routes replies to the callers waiting for them. Created before the connection so the
/// transport can deliver into it.
#[derive(Default)]
pub struct ReplyRouter {
    waiters: Mutex<FxHashMap<ReqId, ParkSender<ClientReply>>>,
    dead: Mutex<Option<Error>>,
}

impl ReplyRouter {
    /// A router with no waiters.
    pub fn new() -> Arc<ReplyRouter> {
        Arc::new(ReplyRouter::default())
    }

    /// Hands each reply to its waiter.
    pub fn deliver(&self, replies: Vec<ClientReply>) {
        let mut w = self.waiters.lock().unwrap();
        for r in replies {
            let req = match &r {
                ClientReply::Data { req, .. }
                | ClientReply::Stats { req, .. }
                | ClientReply::Synced { req, .. }
                | ClientReply::DispatcherStats { req, .. } => *req,
            };
            if let Some(tx) = w.remove(&req) {
                let _ = tx.send(r);
            }
        }
    }

    /// The connection is gone: wakes every waiter with `err` and fails later requests.
    pub fn fail(&self, err: Error) {
        *self.dead.lock().unwrap() = Some(err);
        self.waiters.lock().unwrap().clear(); // dropping the senders wakes the waiters
    }

    fn dead(&self) -> Option<Error> {
        self.dead.lock().unwrap().clone()
    }
}

/// Instructions in the first batch after a sync point; each later batch doubles, up to the
/// session's batch size.
///
/// One large batch per training step serializes the runtime: the dispatcher and the worker sit
/// idle while the client builds the whole step, then the client sits idle while they run it.
/// Sending the start of a burst early lets them work while the client is still producing, and
/// doubling keeps a long stream of tiny ops (where every extra send is a thread wake-up) at a
/// handful of extra batches. Measured with `gt bench compile` (same run, eager): see the
/// README's "Batching" paragraph.
///
/// It is also the smallest batch sent early: with a [`Hunger`] signal (the embedded runtime), a
/// client that sees a worker waiting for work, or executing the last batch it has, sends what it
/// holds once it holds this many, so the worker is not left idle while the client builds the
/// rest of a step (see `gt_transport::hunger`).
pub const FIRST_BATCH: usize = 16;

/// How many instructions after a sync point a client still sends early to a worker that is
/// only draining its last batch (see [`Hunger::soon`]). The seed MLP training step is 106.
pub const EARLY_BURST: usize = 256;

fn first_batch(batch_size: usize) -> usize {
    FIRST_BATCH.min(batch_size)
}

/// The outgoing batch and the size at which it is sent.
struct Batch {
    msgs: Vec<ClientMsg>,
    limit: usize,
    /// Instructions appended since the last sync point.
    since_sync: usize,
}

struct Inner {
    tx: Tx<ClientMsg>,
    router: Arc<ReplyRouter>,
    buf: Mutex<Batch>,
    batch_size: usize,
    /// Workers waiting for work (in-process runtimes only): batches go early while any waits.
    hunger: Option<Hunger>,
    next_id: AtomicU64,
    next_req: AtomicU64,
    seed: AtomicU64,
    random_stream: AtomicU64,
    workers: u32,
    name: String,
    tape: crate::autograd::TapeStore,
}

/// A connection to a dispatcher. Cheap to clone; tensors keep their session alive.
#[derive(Clone)]
pub struct Session(Arc<Inner>);

/// PyTorch's default seed, so unseeded programs are reproducible like PyTorch's.
pub const DEFAULT_SEED: u64 = 67_280_421_310_721;

impl Session {
    /// A session sending on `tx` and receiving through `router`; `batch_size` instructions are
    /// buffered before a send (sync points send at once).
    pub fn new(
        tx: Tx<ClientMsg>,
        router: Arc<ReplyRouter>,
        workers: u32,
        batch_size: usize,
        name: String,
    ) -> Session {
        Session::watching(tx, router, workers, batch_size, name, None)
    }

    /// Like [`Session::new`], and sends a batch early (once it holds [`FIRST_BATCH`]
    /// instructions) while `hunger` says a worker waits for work.
    pub fn watching(
        tx: Tx<ClientMsg>,
        router: Arc<ReplyRouter>,
        workers: u32,
        batch_size: usize,
        name: String,
        hunger: Option<Hunger>,
    ) -> Session {
        Session(Arc::new(Inner {
            buf: Mutex::new(Batch {
                msgs: tx.spare(batch_size.max(1)),
                limit: first_batch(batch_size.max(1)),
                since_sync: 0,
            }),
            tx,
            router,
            batch_size: batch_size.max(1),
            hunger,
            next_id: AtomicU64::new(1),
            next_req: AtomicU64::new(1),
            seed: AtomicU64::new(DEFAULT_SEED),
            random_stream: AtomicU64::new(0),
            workers,
            name,
            tape: Default::default(),
        }))
    }

    /// How many workers were live when this session joined.
    pub fn workers(&self) -> u32 {
        self.0.workers
    }

    /// The name this session gave the dispatcher.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub(crate) fn tape(&self) -> &crate::autograd::TapeStore {
        &self.0.tape
    }

    /// Whether two handles are the same session.
    pub fn same(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn new_id(&self) -> TensorId {
        TensorId(self.0.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Resets the random generator: later random tensors depend only on `seed` and their order.
    pub fn manual_seed(&self, seed: u64) {
        self.0.seed.store(seed, Ordering::Relaxed);
        self.0.random_stream.store(0, Ordering::Relaxed);
    }

    pub(crate) fn next_random(&self) -> (u64, u64) {
        (
            self.0.seed.load(Ordering::Relaxed),
            self.0.random_stream.fetch_add(1, Ordering::Relaxed),
        )
    }

    /// Appends one instruction; sends the batch when it reaches the current limit, or early
    /// when a worker waits for work or soon will (see [`FIRST_BATCH`]).
    pub(crate) fn push(&self, msg: ClientMsg) {
        let mut buf = self.0.buf.lock().unwrap();
        buf.msgs.push(msg);
        buf.since_sync += 1;
        let full = buf.msgs.len() >= buf.limit;
        let hunger = self.0.hunger.as_ref();
        // Early while a worker waits, or will once its batch is done ("draining"); the latter
        // only in a short burst after a sync point (a training step's tail then reaches the
        // worker in small batches), since in a long stream of tiny ops the extra sends cost
        // more than the worker gains (see the README's "Batching").
        let early = buf.msgs.len() >= FIRST_BATCH
            && hunger.is_some_and(|h| h.any() || (buf.since_sync <= EARLY_BURST && h.soon()));
        if full || early {
            let batch = std::mem::replace(&mut buf.msgs, self.0.tx.spare(self.0.batch_size));
            if full {
                buf.limit = (buf.limit * 2).min(self.0.batch_size);
            }
            drop(buf);
            tracing::debug!(target: "gt::client", "sending a batch of {} instructions", batch.len());
            let _ = self.0.tx.send(batch);
        }
    }

    /// Sends whatever is buffered.
    pub fn flush(&self) -> Result<()> {
        let batch = {
            let mut buf = self.0.buf.lock().unwrap();
            // A sync point: the program waits for the runtime now, so the next instructions
            // start a new burst.
            buf.limit = first_batch(self.0.batch_size);
            buf.since_sync = 0;
            if buf.msgs.is_empty() {
                return self.0.router.dead().map_or(Ok(()), Err);
            }
            // The consumer hands emptied batches back, so a sync point (a flush of a few
            // instructions) reuses a warm buffer instead of allocating a full batch's worth.
            std::mem::replace(&mut buf.msgs, self.0.tx.spare(self.0.batch_size))
        };
        tracing::debug!(target: "gt::client", "flushing {} instructions", batch.len());
        self.0.tx.send(batch).map_err(|_| self.connection_error())
    }

    fn connection_error(&self) -> Error {
        self.0
            .router
            .dead()
            .unwrap_or_else(|| Error::Connection("the dispatcher connection is closed".into()))
    }

    /// Sends a request and waits for its reply.
    pub(crate) fn request(&self, make: impl FnOnce(ReqId) -> ClientMsg) -> Result<ClientReply> {
        if let Some(e) = self.0.router.dead() {
            return Err(e);
        }
        let req = ReqId(self.0.next_req.fetch_add(1, Ordering::Relaxed));
        // Never spins: a spinning waiter would take a core from the threads answering it.
        let (tx, rx) = parking_channel();
        self.0.router.waiters.lock().unwrap().insert(req, tx);
        // The router may have died between the check and the insert; check again.
        if let Some(e) = self.0.router.dead() {
            self.0.router.waiters.lock().unwrap().remove(&req);
            return Err(e);
        }
        let msg = make(req);
        let what = match &msg {
            ClientMsg::Read { .. } => "read",
            ClientMsg::Stats { .. } => "stats",
            ClientMsg::Sync { .. } => "sync",
            _ => "request",
        };
        self.push(msg);
        self.flush()?;
        let waited = std::time::Instant::now();
        let reply = rx.recv().map_err(|_| self.connection_error());
        tracing::debug!(target: "gt::client", "sync point: {what} {} answered after {:?}", req.0, waited.elapsed());
        reply
    }

    /// Waits until everything sent so far has executed. Returns an error naming a worker that
    /// was lost while holding this session's tensors.
    pub fn sync(&self) -> Result<()> {
        match self.request(|req| ClientMsg::Sync { req })? {
            ClientReply::Synced { result, .. } => result,
            other => Err(Error::Protocol(format!(
                "unexpected reply to sync: {other:?}"
            ))),
        }
    }

    /// Enters the signal scope `name` (streamed; the dispatcher keeps the scope stack).
    pub fn scope_enter(&self, name: &str) {
        self.push(ClientMsg::ScopeEnter { name: name.into() });
    }

    /// Leaves the innermost signal scope.
    pub fn scope_exit(&self) {
        self.push(ClientMsg::ScopeExit);
    }

    /// Sends a sharding/compile config (YAML text) for this session to the dispatcher and waits
    /// for it to be accepted; the error names what is wrong with it.
    pub fn configure(&self, yaml: &str) -> Result<()> {
        match self.request(|req| ClientMsg::Configure {
            req,
            yaml: yaml.into(),
        })? {
            ClientReply::Synced { result, .. } => result,
            other => Err(Error::Protocol(format!(
                "unexpected reply to configure: {other:?}"
            ))),
        }
    }

    /// The dispatcher's own statistics (sharding counters; a sync point).
    pub fn dispatcher_stats(&self) -> Result<gt_proto::DispatcherStats> {
        match self.request(|req| ClientMsg::DispatcherStats { req })? {
            ClientReply::DispatcherStats { result, .. } => result,
            other => Err(Error::Protocol(format!(
                "unexpected reply to dispatcher stats: {other:?}"
            ))),
        }
    }

    /// Every worker's statistics (a sync point).
    pub fn worker_stats(&self) -> Result<Vec<WorkerStats>> {
        match self.request(|req| ClientMsg::Stats { req })? {
            ClientReply::Stats { result, .. } => result,
            other => Err(Error::Protocol(format!(
                "unexpected reply to stats: {other:?}"
            ))),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let batch = std::mem::take(&mut self.buf.lock().unwrap().msgs);
        if !batch.is_empty() {
            let _ = self.tx.send(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::Receiver;

    /// Appends `n` instructions to `s`.
    fn push(s: &Session, n: usize) {
        for i in 0..n {
            s.push(ClientMsg::Free {
                id: TensorId(i as u64),
            });
        }
    }

    /// The sizes of the batches sent so far (and not yet looked at).
    fn sizes(rx: &Receiver<Vec<ClientMsg>>) -> Vec<usize> {
        rx.try_iter().map(|b| b.len()).collect()
    }

    /// A session of batch size 1024 that watches `hunger`, and what it sends.
    fn watching(hunger: &Hunger) -> (Session, Receiver<Vec<ClientMsg>>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let s = Session::watching(
            Tx::from_channel(tx),
            ReplyRouter::new(),
            1,
            1024,
            "t".into(),
            Some(hunger.clone()),
        );
        (s, rx)
    }

    #[test]
    fn bursts_start_small_and_double_after_each_sync_point() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let s = Session::new(Tx::from_channel(tx), ReplyRouter::new(), 1, 100, "t".into());
        // 16, 32, 64, then capped at the batch size (100); the rest waits for a flush.
        push(&s, 16 + 32 + 64 + 100 + 7);
        assert_eq!(sizes(&rx), vec![16, 32, 64, 100]);
        s.flush().unwrap();
        assert_eq!(sizes(&rx), vec![7]);
        // A sync point starts the next burst small again.
        push(&s, 20);
        assert_eq!(sizes(&rx), vec![16]);
        // A batch size below the first burst is respected.
        let (tx, rx) = crossbeam_channel::unbounded();
        let small = Session::new(Tx::from_channel(tx), ReplyRouter::new(), 1, 4, "t".into());
        push(&small, 9);
        assert_eq!(sizes(&rx), vec![4, 4]);
    }

    #[test]
    fn a_waiting_worker_gets_batches_early_without_growing_the_burst() {
        let hunger = Hunger::new();
        let (s, rx) = watching(&hunger);
        // Nobody waits: the usual doubling (the 40 below wait for the burst of 64).
        push(&s, 16 + 32 + 40);
        assert_eq!(sizes(&rx), vec![16, 32]);
        s.flush().unwrap();
        assert_eq!(sizes(&rx), vec![40]);
        // A worker waits: every FIRST_BATCH instructions go at once, and the burst limit stays
        // where it was, so the batching resumes as before once the worker is busy again.
        push(&s, 16);
        assert_eq!(sizes(&rx), vec![16]);
        let waiting = hunger.waiting();
        push(&s, 3 * FIRST_BATCH + 5);
        assert_eq!(sizes(&rx), vec![16, 16, 16]);
        drop(waiting);
        push(&s, 32 - 5 + 2);
        assert_eq!(sizes(&rx), vec![32]);
    }

    #[test]
    fn a_draining_worker_gets_batches_early_only_in_a_short_burst() {
        let hunger = Hunger::new();
        let (s, rx) = watching(&hunger);
        let draining = hunger.draining();
        // Up to EARLY_BURST instructions after a sync point go in batches of FIRST_BATCH.
        push(&s, EARLY_BURST);
        assert_eq!(sizes(&rx), vec![FIRST_BATCH; EARLY_BURST / FIRST_BATCH]);
        // Past it, the burst limit decides again (it stayed at 32 after the first batch).
        push(&s, FIRST_BATCH);
        assert_eq!(sizes(&rx), Vec::<usize>::new());
        push(&s, 32 - FIRST_BATCH);
        assert_eq!(sizes(&rx), vec![32]);
        // A sync point starts a new short burst.
        s.flush().unwrap();
        assert_eq!(sizes(&rx), Vec::<usize>::new());
        push(&s, FIRST_BATCH);
        assert_eq!(sizes(&rx), vec![FIRST_BATCH]);
        drop(draining);
    }
}
