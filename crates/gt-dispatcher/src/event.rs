//! Events: the only input of the dispatcher core. Connection threads and in-process links turn
//! what they receive into events on one channel; the core handles them in order.

use gt_core::{SessionId, WorkerId};
use gt_proto::{ClientMsg, ClientReply, MonitorMsg, WorkerMsg, WorkerReply};
use gt_transport::{Recycler, Tx};
use std::sync::Arc;

/// Something the dispatcher core must handle.
pub enum Event {
    /// A client finished its handshake; the core answers on `accepted` with the session id (or a
    /// reason to refuse) once a worker is available.
    ClientJoined {
        name: String,
        tx: Tx<ClientReply>,
        accepted: crossbeam_channel::Sender<Result<(SessionId, u32), String>>,
        /// Where this session's emptied instruction batches go back to its client (in-process
        /// clients; `None` for sockets, whose reader decodes into fresh vectors).
        spares: Option<Arc<Recycler<ClientMsg>>>,
    },
    /// Instructions from a session.
    ClientBatch {
        session: SessionId,
        msgs: Vec<ClientMsg>,
    },
    /// A client connection ended; its tensors are freed.
    ClientLeft {
        session: SessionId,
        reason: Option<String>,
    },
    /// A worker finished its handshake; the core answers on `accepted` with its id.
    WorkerJoined {
        peer_addr: String,
        tx: Tx<WorkerMsg>,
        accepted: crossbeam_channel::Sender<WorkerId>,
    },
    /// Replies from a worker.
    WorkerBatch {
        worker: WorkerId,
        msgs: Vec<WorkerReply>,
    },
    /// A worker connection ended.
    WorkerLeft { worker: WorkerId, reason: String },
    /// A monitor attached: it receives log lines and a snapshot about once a second.
    MonitorJoined {
        tx: Tx<MonitorMsg>,
        /// Whether it wants log lines (`gt trace`) or only snapshots (`gt top`).
        lines: bool,
    },
    /// Heartbeat timer: ping workers, declare silent ones lost.
    Tick,
    /// Stop the core.
    Shutdown,
}
