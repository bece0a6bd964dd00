//! The monitor stream: a connection whose handshake names [`crate::Role::Monitor`] receives
//! [`MonitorMsg`] frames until it or the dispatcher closes — instruction-log lines as they are
//! written (`gt trace --connect`) and a cluster [`Snapshot`] about once a second (`gt top`).

use crate::{WorkerLoad, WorkerStats};
use gt_core::SessionId;
use serde::{Deserialize, Serialize};

/// A monitor's `Hello::info` asking for snapshots only (no log lines, so no logging cost).
pub const SNAPSHOTS_ONLY: &str = "snapshots-only";

/// Dispatcher → monitor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MonitorMsg {
    /// Complete instruction-log lines (seed 003's format, `\n`-terminated), in order.
    Lines(String),
    /// The cluster's state.
    Snapshot(Snapshot),
    /// The dispatcher is shutting down; nothing follows.
    Bye { reason: String },
}

/// Every worker's and client's state at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Milliseconds since the dispatcher started (rates come from differences).
    pub at_ms: u64,
    /// Workers in id order (dead ones included, `stats.alive == false`).
    pub workers: Vec<WorkerView>,
    /// Connected client sessions.
    pub clients: Vec<ClientView>,
}

/// One worker in a [`Snapshot`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    /// Its statistics (answered to this snapshot's request).
    pub stats: WorkerStats,
    /// Its executor load from its latest heartbeat, if any arrived yet.
    pub load: Option<WorkerLoad>,
    /// The address other workers reach it at.
    pub peer_addr: String,
}

/// One client session in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientView {
    /// Its session id.
    pub session: SessionId,
    /// The name it gave when connecting.
    pub name: String,
    /// Instructions received from it so far.
    pub instructions: u64,
    /// Tensors it holds.
    pub tensors: u64,
    /// Its open signal scopes, outermost first.
    pub scopes: Vec<String>,
}
