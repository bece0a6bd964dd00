//! Framed connections between GT processes: TCP (across hosts), Unix sockets (same host) and
//! in-process channels (the embedded runtime; no serialization at all).
//!
//! Every role's core talks to the outside through two shapes only: a [`Tx`] to send a batch of
//! messages and a channel `Receiver<Vec<M>>` of incoming batches. Socket connections get one
//! reader thread (frames → batches) and one writer thread (batches → frames; everything queued
//! is coalesced into one write), so a slow peer never blocks the core that serves everyone else.
//!
//! # Layout
//! - [`addr`]: `host:port` / `unix:/path` addresses, listeners and streams.
//! - [`framed`]: blocking frame reader/writer with the size limit, and the handshake.
//! - [`link`]: [`Tx`], and the reader/writer threads that pump a socket.
//! - [`recycle`]: [`Recycler`], emptied batch vectors handed back to the producer.
//! - [`parking`]: the hot in-process queues, whose receiver parks at once instead of spinning.
//! - [`migrate`]: moving a polling thread off a core it shares with its partner.
//! - [`hunger`]: [`Hunger`], consumers waiting for work, so a producer can send early.
//!
//! Why threads and not tokio: a GT process has a handful of long-lived connections, and the hot
//! path is "decode a batch, hand it to the core". Blocking reads on dedicated threads have the
//! lowest latency for that shape and keep every core synchronous and testable; there is no
//! per-request task to schedule.

pub mod addr;
pub mod framed;
pub mod hunger;
pub mod link;
pub mod migrate;
pub mod parking;
pub mod recycle;

pub use addr::{Addr, Listener, Stream};
pub use framed::{accept_handshake, connect_handshake, send_welcome, FrameReader, FrameWriter};
pub use hunger::{Hunger, HungerGuard};
pub use link::{deferred_writer, spawn_reader, spawn_writer, Closed, PendingWriter, Tx};
pub use parking::{parking_channel, ParkReceiver, ParkSender};
pub use recycle::Recycler;
