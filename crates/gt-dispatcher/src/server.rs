//! The dispatcher's shell: the core thread, the heartbeat ticker, listeners with handshakes, and
//! in-process links for the embedded runtime. `Dispatcher::start` + `listen` is the library entry
//! point that the `gt` binary, the embedded runtime and the tests all share.

use crate::core::{Core, CoreConfig};
use crate::event::Event;
use crate::hub::Hub;
use crossbeam_channel::RecvTimeoutError;
use gt_core::{Error, SessionId, WorkerId};
use gt_proto::{ClientMsg, ClientReply, MonitorMsg, Role, WorkerMsg, WorkerReply};
use gt_transport::{
    accept_handshake, deferred_writer, send_welcome, spawn_reader, Addr, Listener, Stream, Tx,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Everything the dispatcher needs to know, read once by the binary.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Core timing.
    pub core: CoreConfig,
    /// How often workers are pinged.
    pub heartbeat_interval: Duration,
    /// Shared secret every connection must present (`GT_TOKEN`).
    pub token: Option<String>,
    /// Largest frame accepted from any connection.
    pub max_frame: usize,
    /// Write the instruction log here (`GT_INSTRUCTION_LOG`, `gt dispatcher --log`).
    pub log: Option<std::path::PathBuf>,
    /// Ask workers for per-instruction timing records while the log is open (`EXEC` lines;
    /// `GT_INSTRUCTION_LOG_TIMING`, `gt dispatcher --log-timing`).
    pub log_timing: bool,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            core: CoreConfig::default(),
            heartbeat_interval: Duration::from_millis(250),
            token: None,
            max_frame: gt_proto::DEFAULT_MAX_FRAME,
            log: None,
            log_timing: false,
        }
    }
}

/// A running dispatcher.
pub struct Dispatcher {
    /// The way into the core (see [`crate::hub`]): sending an event may handle it on the spot.
    events: Arc<Hub>,
    cfg: DispatcherConfig,
    stop: Arc<AtomicBool>,
    core_thread: Mutex<Option<JoinHandle<()>>>,
    /// Dropping the sender stops the heartbeat thread.
    heartbeat: Mutex<Option<(crossbeam_channel::Sender<()>, JoinHandle<()>)>>,
    /// Each listener with its accept thread (joined at shutdown, so a Unix socket file is gone
    /// by the time [`Dispatcher::shutdown`] returns).
    listeners: Mutex<Vec<(Arc<Listener>, JoinHandle<()>)>>,
}

impl Dispatcher {
    /// Starts the core and heartbeat threads. Nothing listens until [`Dispatcher::listen`].
    /// An instruction log that cannot be created is reported and left out; see
    /// [`Dispatcher::try_start`] to get that as an error.
    pub fn start(mut cfg: DispatcherConfig) -> Dispatcher {
        match Dispatcher::try_start(cfg.clone()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(target: "gt::dispatcher", "{e}; continuing without it");
                cfg.log = None;
                Dispatcher::try_start(cfg).expect("no log, nothing to fail")
            }
        }
    }

    /// Like [`Dispatcher::start`], but an instruction log that cannot be created is an error.
    pub fn try_start(cfg: DispatcherConfig) -> std::io::Result<Dispatcher> {
        let mut core = Core::new(cfg.core.clone());
        if let Some(path) = &cfg.log {
            let mut log = crate::log::InstructionLog::create(path)?;
            log.set_timing(cfg.log_timing);
            core.set_log(Some(log));
        }
        let events = Arc::new(Hub::new(core));
        let hub = events.clone();
        let core_thread = std::thread::Builder::new()
            .name("gt-dispatcher".into())
            .spawn(move || hub.run_core_thread())
            .expect("spawning a thread");
        let stop = Arc::new(AtomicBool::new(false));
        // The heartbeat ticks until shutdown drops `ticking` (it used to sleep out its interval
        // first, so each runtime a program started and stopped left a thread behind for up to
        // 250 ms).
        let (ticking, stopped) = crossbeam_channel::bounded::<()>(0);
        let (tick_tx, interval) = (events.clone(), cfg.heartbeat_interval);
        let heartbeat = std::thread::Builder::new()
            .name("gt-heartbeat".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    if tick_tx.send(Event::Tick).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning a thread");
        Ok(Dispatcher {
            events,
            cfg,
            stop,
            core_thread: Mutex::new(Some(core_thread)),
            heartbeat: Mutex::new(Some((ticking, heartbeat))),
            listeners: Mutex::new(Vec::new()),
        })
    }

    /// Accepts connections on `addr` (TCP or Unix) in a background thread; returns the bound
    /// address (the real port when `addr` asked for port 0).
    pub fn listen(&self, addr: &Addr) -> std::io::Result<Addr> {
        let listener = Arc::new(Listener::bind(addr)?);
        let bound = listener.local_addr();
        let accepting = listener.clone();
        let (events, stop, cfg) = (self.events.clone(), self.stop.clone(), self.cfg.clone());
        let thread = std::thread::Builder::new()
            .name(format!("gt-accept-{bound}"))
            .spawn(move || loop {
                let stream = accepting.accept();
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match stream {
                    Ok(s) => {
                        let (events, cfg) = (events.clone(), cfg.clone());
                        std::thread::spawn(move || serve_connection(s, events, cfg));
                    }
                    Err(e) => {
                        tracing::warn!(target: "gt::dispatcher", "accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
            .expect("spawning a thread");
        self.listeners.lock().unwrap().push((listener, thread));
        tracing::info!(target: "gt::dispatcher", "listening on {bound}");
        Ok(bound)
    }

    /// Joins an in-process client: replies go to `deliver`; returns its session, the live worker
    /// count and the `Tx` for its instructions. Dropping every clone of that `Tx` ends the session.
    pub fn connect_client(
        &self,
        name: &str,
        deliver: Tx<ClientReply>,
    ) -> Result<(SessionId, u32, Tx<ClientMsg>), Error> {
        let (acc_tx, acc_rx) = crossbeam_channel::bounded(1);
        let spares = Arc::new(gt_transport::Recycler::new());
        self.events
            .send(Event::ClientJoined {
                name: name.into(),
                tx: deliver,
                accepted: acc_tx,
                spares: Some(spares.clone()),
            })
            .map_err(|_| Error::Connection("dispatcher stopped".into()))?;
        let (sid, workers) = acc_rx
            .recv()
            .map_err(|_| Error::Connection("dispatcher stopped".into()))?
            .map_err(Error::Connection)?;
        let guard = LeaveGuard {
            events: self.events.clone(),
            session: sid,
        };
        let events = self.events.clone();
        let tx = Tx::recycling(
            move |msgs| {
                let _keep = &guard;
                events
                    .send(Event::ClientBatch { session: sid, msgs })
                    .map_err(|_| gt_transport::Closed)
            },
            spares,
        );
        Ok((sid, workers, tx))
    }

    /// Joins an in-process worker whose instructions go to `tx`; returns its id and the `Tx` for
    /// its replies.
    pub fn connect_worker(
        &self,
        peer_addr: &str,
        tx: Tx<WorkerMsg>,
    ) -> Result<(WorkerId, Tx<WorkerReply>), Error> {
        let (acc_tx, acc_rx) = crossbeam_channel::bounded(1);
        self.events
            .send(Event::WorkerJoined {
                peer_addr: peer_addr.into(),
                tx,
                accepted: acc_tx,
            })
            .map_err(|_| Error::Connection("dispatcher stopped".into()))?;
        let id = acc_rx
            .recv()
            .map_err(|_| Error::Connection("dispatcher stopped".into()))?;
        let events = self.events.clone();
        let reply = Tx::from_fn(move |msgs| {
            events
                .send(Event::WorkerBatch { worker: id, msgs })
                .map_err(|_| gt_transport::Closed)
        });
        Ok((id, reply))
    }

    /// Tells the core that an in-process worker is gone.
    pub fn worker_left(&self, worker: WorkerId, reason: &str) {
        let _ = self.events.send(Event::WorkerLeft {
            worker,
            reason: reason.into(),
        });
    }

    /// Stops accepting, stops the core, and waits for it.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some((ticking, thread)) = self.heartbeat.lock().unwrap().take() {
            drop(ticking);
            let _ = thread.join();
        }
        for (l, thread) in self.listeners.lock().unwrap().drain(..) {
            l.wake();
            // Joined when it ends soon; a wake-up that could not connect leaves it blocked in
            // `accept`, and shutting down must not hang on it.
            let deadline = Instant::now() + Duration::from_secs(1);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        let _ = self.events.send(Event::Shutdown);
        if let Some(t) = self.core_thread.lock().unwrap().take() {
            let _ = t.join();
        }
        // The thread that handled the shutdown has dropped the core (writing the log out)
        // before the core thread could end; wait for it to leave the lock too.
        self.events.wait_idle();
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct LeaveGuard {
    events: Arc<Hub>,
    session: SessionId,
}

impl Drop for LeaveGuard {
    fn drop(&mut self) {
        let _ = self.events.send(Event::ClientLeft {
            session: self.session,
            reason: None,
        });
    }
}

/// Handshake, then hand the connection to the core as a client or worker.
fn serve_connection(stream: Stream, events: Arc<Hub>, cfg: DispatcherConfig) {
    let peer = stream.peer_name();
    let hello = match accept_handshake(&stream, cfg.token.as_deref(), Duration::from_secs(5)) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(target: "gt::dispatcher", "rejected connection from {peer}: {e}");
            stream.shutdown();
            return;
        }
    };
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    match hello.role {
        Role::Client => {
            let name = if hello.info.is_empty() {
                peer.clone()
            } else {
                hello.info.clone()
            };
            let (tx, writer) = deferred_writer::<ClientReply>();
            let (acc_tx, acc_rx) = crossbeam_channel::bounded(1);
            let _ = events.send(Event::ClientJoined {
                name: name.clone(),
                tx,
                accepted: acc_tx,
                spares: None,
            });
            match acc_rx.recv() {
                Ok(Ok((sid, workers))) => {
                    if send_welcome(&stream, sid.0, workers).is_err() {
                        let _ = events.send(Event::ClientLeft {
                            session: sid,
                            reason: Some("closed during handshake".into()),
                        });
                        return;
                    }
                    writer.start(write_half, format!("client-{sid}"));
                    let (ev_batch, ev_close) = (events.clone(), events);
                    spawn_reader::<ClientMsg, _, _>(
                        stream,
                        cfg.max_frame,
                        format!("client-{sid}"),
                        move |msgs| {
                            ev_batch
                                .send(Event::ClientBatch { session: sid, msgs })
                                .is_ok()
                        },
                        move |err| {
                            if let Some(e) = &err {
                                tracing::error!(target: "gt::dispatcher", "closing connection of client '{name}' ({sid}): {e}");
                            }
                            let _ = ev_close.send(Event::ClientLeft {
                                session: sid,
                                reason: err.map(|e| e.to_string()),
                            });
                        },
                    );
                }
                Ok(Err(reason)) => reject(&stream, &reason),
                Err(_) => reject(&stream, "dispatcher is shutting down"),
            }
        }
        Role::Worker => {
            let (tx, writer) = deferred_writer::<WorkerMsg>();
            let (acc_tx, acc_rx) = crossbeam_channel::bounded(1);
            let _ = events.send(Event::WorkerJoined {
                peer_addr: hello.info.clone(),
                tx,
                accepted: acc_tx,
            });
            let Ok(id) = acc_rx.recv() else {
                return reject(&stream, "dispatcher is shutting down");
            };
            if send_welcome(&stream, id.0, 0).is_err() {
                let _ = events.send(Event::WorkerLeft {
                    worker: id,
                    reason: "closed during handshake".into(),
                });
                return;
            }
            writer.start(write_half, format!("{id}"));
            let (ev_batch, ev_close) = (events.clone(), events);
            spawn_reader::<WorkerReply, _, _>(
                stream,
                cfg.max_frame,
                format!("{id}"),
                move |msgs| {
                    ev_batch
                        .send(Event::WorkerBatch { worker: id, msgs })
                        .is_ok()
                },
                move |err| {
                    let reason = match err {
                        Some(e) => format!("connection failed: {e}"),
                        None => "connection closed".into(),
                    };
                    let _ = ev_close.send(Event::WorkerLeft { worker: id, reason });
                },
            );
        }
        Role::Monitor => {
            if send_welcome(&stream, 0, 0).is_err() {
                return;
            }
            let (inner, writer) = deferred_writer::<MonitorMsg>();
            writer.start(write_half, format!("monitor-{peer}"));
            // Monitors send nothing; the reader only notices the close, after which sends to
            // the monitor fail and the core forgets it.
            let closed = Arc::new(AtomicBool::new(false));
            let flag = closed.clone();
            let tx = Tx::from_fn(move |batch| {
                if flag.load(Ordering::Relaxed) {
                    return Err(gt_transport::Closed);
                }
                inner.send(batch)
            });
            let name = peer.clone();
            spawn_reader::<MonitorMsg, _, _>(
                stream,
                cfg.max_frame,
                format!("monitor-{peer}"),
                |_| true,
                move |_| {
                    tracing::info!(target: "gt::dispatcher", "monitor {name} detached");
                    closed.store(true, Ordering::Relaxed);
                },
            );
            let lines = hello.info != gt_proto::monitor::SNAPSHOTS_ONLY;
            let _ = events.send(Event::MonitorJoined { tx, lines });
        }
        Role::Peer => reject(
            &stream,
            &format!(
                "the dispatcher does not accept {:?} connections",
                hello.role
            ),
        ),
    }
}

fn reject(stream: &Stream, reason: &str) {
    tracing::warn!(target: "gt::dispatcher", "refusing connection: {reason}");
    if let Ok(s) = stream.try_clone() {
        let _ = gt_transport::FrameWriter::new(s).send(&[gt_proto::Welcome::Rejected {
            reason: reason.into(),
        }]);
    }
    stream.shutdown();
}
