//! Identifier newtypes. Clients choose their own [`TensorId`]s (so they never wait for the
//! dispatcher to name a result); the dispatcher turns `(session, tensor id)` into a worker-side
//! [`Key`], which is how sessions stay isolated: a client can only ever name keys inside its own
//! session.

use serde::{Deserialize, Serialize};

/// A tensor id chosen by a client, unique within its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TensorId(pub u64);

/// A client session, assigned by the dispatcher at connect time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId(pub u32);

/// A worker's index in the dispatcher's registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub u32);

/// A request id for sync points (reads, stats, barriers), chosen by whoever asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReqId(pub u64);

/// The name of a tensor on a worker: the owning session in the high 24 bits and a per-session
/// number in the low 40. Session 0 is reserved for the dispatcher's own temporaries
/// (cross-worker moves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key(pub u64);

impl Key {
    const LOCAL_BITS: u32 = 40;
    const LOCAL_MASK: u64 = (1 << Self::LOCAL_BITS) - 1;
    /// The largest per-session number a key can hold.
    pub const MAX_LOCAL: u64 = Self::LOCAL_MASK;

    /// Builds a key; `local` must fit in 40 bits (the dispatcher checks client ids first).
    pub fn new(session: SessionId, local: u64) -> Key {
        debug_assert!(local <= Self::LOCAL_MASK);
        Key(((session.0 as u64) << Self::LOCAL_BITS) | (local & Self::LOCAL_MASK))
    }
    /// The session that owns this key.
    pub fn session(self) -> SessionId {
        SessionId((self.0 >> Self::LOCAL_BITS) as u32)
    }
    /// The per-session part.
    pub fn local(self) -> u64 {
        self.0 & Self::LOCAL_MASK
    }
}

impl std::fmt::Display for TensorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.0)
    }
}
impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}
impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "worker {}", self.0)
    }
}
impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.session(), self.local())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_packs_session_and_local() {
        let k = Key::new(SessionId(7), 123_456);
        assert_eq!(k.session(), SessionId(7));
        assert_eq!(k.local(), 123_456);
        assert_eq!(
            Key::new(SessionId(0), Key::MAX_LOCAL).local(),
            Key::MAX_LOCAL
        );
    }
}
