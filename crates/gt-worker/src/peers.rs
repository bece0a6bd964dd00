//! Worker-to-worker transfers. The receiving worker's [`Mailbox`] collects tensors as they
//! arrive (from a peer socket thread or an in-process peer) and wakes the executor waiting in a
//! `Recv`; a lost peer or a timeout fails the wait instead of hanging it.

use crate::state::Peers;
use gt_core::{Error, Result, WorkerId};
use gt_proto::{Hello, PeerMsg, Role, TensorData};
use gt_transport::{connect_handshake, spawn_writer, Addr, Stream, Tx};
use rustc_hash::FxHashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Inner {
    arrived: FxHashMap<u64, Result<TensorData>>,
    lost: FxHashMap<WorkerId, Error>,
}

/// Transfers that arrived (or can never arrive) at one worker.
#[derive(Default)]
pub struct Mailbox {
    inner: Mutex<Inner>,
    cv: Condvar,
}

impl Mailbox {
    /// Stores an arrived transfer.
    pub fn put(&self, msg: PeerMsg) {
        let PeerMsg::Tensor { xfer, result, .. } = msg;
        self.inner.lock().unwrap().arrived.insert(xfer, result);
        self.cv.notify_all();
    }

    /// Marks `worker` lost: waits for its transfers fail with `error`.
    pub fn lose(&self, worker: WorkerId, error: Error) {
        self.inner.lock().unwrap().lost.insert(worker, error);
        self.cv.notify_all();
    }

    /// Waits for transfer `xfer` from `from`, at most `timeout`.
    pub fn take(&self, from: WorkerId, xfer: u64, timeout: Duration) -> Result<TensorData> {
        let deadline = Instant::now() + timeout;
        let mut g = self.inner.lock().unwrap();
        loop {
            if let Some(r) = g.arrived.remove(&xfer) {
                return r;
            }
            if let Some(e) = g.lost.get(&from) {
                return Err(e.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::WorkerLost {
                    worker: from.0,
                    reason: format!("transfer {xfer} did not arrive within {timeout:?}"),
                });
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }
}

/// The in-process peer registry of an embedded runtime: address → mailbox.
#[derive(Default)]
pub struct InProcPeers {
    boxes: Mutex<FxHashMap<String, Arc<Mailbox>>>,
}

impl InProcPeers {
    /// Registers `mailbox` under `addr`.
    pub fn register(&self, addr: &str, mailbox: Arc<Mailbox>) {
        self.boxes.lock().unwrap().insert(addr.to_string(), mailbox);
    }
    fn get(&self, addr: &str) -> Option<Arc<Mailbox>> {
        self.boxes.lock().unwrap().get(addr).cloned()
    }
}

/// How this worker reaches the others.
pub enum PeerNet {
    /// Same process: deliver straight into the peer's mailbox.
    InProc(Arc<InProcPeers>),
    /// Over sockets: one framed connection per peer, opened on first use.
    Socket {
        token: Option<String>,
        max_frame: usize,
        conns: FxHashMap<WorkerId, Tx<PeerMsg>>,
    },
}

/// [`Peers`] over a [`PeerNet`] and this worker's own mailbox.
pub struct PeerLinks {
    net: PeerNet,
    mailbox: Arc<Mailbox>,
    addrs: FxHashMap<WorkerId, String>,
    me: Option<WorkerId>,
    timeout: Duration,
}

impl PeerLinks {
    /// Links using `net`, receiving into `mailbox`.
    pub fn new(net: PeerNet, mailbox: Arc<Mailbox>, timeout: Duration) -> PeerLinks {
        PeerLinks {
            net,
            mailbox,
            addrs: FxHashMap::default(),
            me: None,
            timeout,
        }
    }
}

impl Peers for PeerLinks {
    fn set_peers(&mut self, me: WorkerId, peers: Vec<(WorkerId, String)>) {
        self.me = Some(me);
        self.addrs = peers.into_iter().collect();
    }

    fn send(&mut self, to: WorkerId, msg: PeerMsg) -> Result<()> {
        let addr = self
            .addrs
            .get(&to)
            .ok_or_else(|| Error::Connection(format!("no address known for worker {}", to.0)))?
            .clone();
        match &mut self.net {
            PeerNet::InProc(reg) => {
                let mb = reg
                    .get(&addr)
                    .ok_or_else(|| Error::Connection(format!("no in-process peer at {addr}")))?;
                mb.put(msg);
                Ok(())
            }
            PeerNet::Socket {
                token,
                max_frame,
                conns,
            } => {
                let tx = match conns.entry(to) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let a: Addr = addr.parse()?;
                        let stream = Stream::connect(&a, Duration::from_secs(5))?;
                        let me = self.me.map(|w| w.0).unwrap_or(u32::MAX);
                        let hello = Hello::new(Role::Peer, token.clone(), format!("worker {me}"));
                        connect_handshake(&stream, &hello, *max_frame)?;
                        v.insert(spawn_writer(stream, format!("peer-{}", to.0)))
                    }
                };
                let r = tx.send(vec![msg]);
                r.map_err(|_| {
                    conns.remove(&to);
                    Error::Connection(format!("connection to worker {} closed", to.0))
                })
            }
        }
    }

    fn recv(&mut self, from: WorkerId, xfer: u64) -> Result<TensorData> {
        self.mailbox.take(from, xfer, self.timeout)
    }

    fn lost(&mut self, worker: WorkerId, error: Error) {
        self.mailbox.lose(worker, error);
        if let PeerNet::Socket { conns, .. } = &mut self.net {
            conns.remove(&worker);
        }
    }
}
