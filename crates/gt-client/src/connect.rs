//! Joining a dispatcher over TCP or a Unix socket.

use crate::session::{ReplyRouter, Session};
use gt_core::{Error, Result};
use gt_proto::{ClientMsg, ClientReply, Hello, Role};
use gt_transport::{connect_handshake, spawn_reader, spawn_writer, Addr, Stream};
use std::time::Duration;

/// Options for [`connect`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Shared secret (`GT_TOKEN`).
    pub token: Option<String>,
    /// Instructions buffered before a send.
    pub batch_size: usize,
    /// Largest frame accepted from the dispatcher.
    pub max_frame: usize,
    /// How long to keep retrying a refused connection.
    pub connect_timeout: Duration,
    /// The name shown in the dispatcher's logs.
    pub name: String,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            token: None,
            batch_size: 1024,
            max_frame: gt_proto::DEFAULT_MAX_FRAME,
            connect_timeout: Duration::from_secs(5),
            name: format!("pid {}", std::process::id()),
        }
    }
}

/// Connects to the dispatcher at `addr` (`host:port` or `unix:/path`).
pub fn connect(addr: &str, opts: &ConnectOptions) -> Result<Session> {
    let addr: Addr = addr.parse()?;
    let stream = Stream::connect(&addr, opts.connect_timeout)
        .map_err(|e| Error::Connection(format!("no dispatcher at {addr}: {e}")))?;
    let hello = Hello::new(Role::Client, opts.token.clone(), opts.name.clone());
    let (sid, workers) = connect_handshake(&stream, &hello, opts.max_frame)?;
    tracing::debug!(target: "gt::client", "joined {addr} as session {sid} ({workers} workers)");
    let router = ReplyRouter::new();
    let tx = spawn_writer::<ClientMsg>(stream.try_clone()?, format!("to-{addr}"));
    let (r_ok, r_err) = (router.clone(), router.clone());
    let where_ = addr.to_string();
    spawn_reader::<ClientReply, _, _>(
        stream,
        opts.max_frame,
        format!("from-{addr}"),
        move |replies| {
            r_ok.deliver(replies);
            true
        },
        move |err| {
            let why = err
                .map(|e| e.to_string())
                .unwrap_or_else(|| "closed by the dispatcher".into());
            r_err.fail(Error::Connection(format!(
                "lost the dispatcher at {where_}: {why}"
            )));
        },
    );
    Ok(Session::new(
        tx,
        router,
        workers,
        opts.batch_size,
        opts.name.clone(),
    ))
}
