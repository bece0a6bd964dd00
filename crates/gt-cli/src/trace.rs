//! `gt trace`: turn an instruction log into a Chrome/Perfetto trace, or capture one live.
//!
//! ```text
//! gt trace --log /tmp/gt.log --chrome trace.json          # from a log file
//! gt trace --connect 127.0.0.1:29000 --out live.log       # stream lines until Ctrl-C
//! gt trace --connect unix:/tmp/gt.sock --chrome trace.json --out live.log
//! ```
//! Live capture attaches with the monitor role: the dispatcher streams every log line (and turns
//! on per-instruction timing on its workers while a monitor is attached). It ends on Ctrl-C or
//! when the dispatcher goes away, with a message saying which.

use crate::trace_chrome::chrome_trace;
use crate::trace_parse::parse_all;
use anyhow::{bail, Context, Result};
use gt_proto::{Hello, MonitorMsg, Role};
use gt_transport::{connect_handshake, Addr, FrameReader, Stream};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What `gt trace` was asked to do.
pub struct TraceArgs {
    pub log: Option<PathBuf>,
    pub connect: Option<String>,
    pub chrome: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub token: Option<String>,
    pub max_frame: usize,
}

/// A monitor connection to a dispatcher.
pub struct Monitor {
    reader: FrameReader,
}

impl Monitor {
    /// Connects to `addr` (`host:port` or `unix:/path`) with the monitor role.
    /// `info` is the handshake's info field (`gt_proto::monitor::SNAPSHOTS_ONLY` for no lines).
    pub fn connect(
        addr: &str,
        token: Option<String>,
        max_frame: usize,
        info: &str,
    ) -> Result<Monitor> {
        let a: Addr = addr.parse()?;
        // An interactive tool: a dispatcher that is not there is reported after a short retry.
        let stream = Stream::connect(&a, Duration::from_secs(2))
            .with_context(|| format!("connecting to the dispatcher at {addr}"))?;
        let hello = Hello::new(Role::Monitor, token, info);
        connect_handshake(&stream, &hello, max_frame)
            .with_context(|| format!("attaching to the dispatcher at {addr}"))?;
        Ok(Monitor {
            reader: FrameReader::new(stream, max_frame),
        })
    }

    /// The next batch of messages; `None` when the dispatcher closed the connection.
    pub fn recv(&mut self) -> Result<Option<Vec<MonitorMsg>>> {
        Ok(self.reader.recv::<MonitorMsg>()?)
    }

    /// A handle that unblocks [`Monitor::recv`] from another thread (it then returns `None`).
    pub fn closer(&self) -> Result<Stream> {
        Ok(self.reader.stream().try_clone()?)
    }
}

pub fn run(a: TraceArgs) -> Result<()> {
    let text = match (&a.log, &a.connect) {
        (Some(_), Some(_)) => bail!("give either --log or --connect, not both"),
        (None, None) => bail!("give --log PATH (a log file) or --connect ADDR (a live dispatcher)"),
        (Some(path), None) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the instruction log {}", path.display()))?,
        (None, Some(addr)) => capture(addr, &a)?,
    };
    if let Some(out) = &a.chrome {
        let lines = parse_all(&text)?;
        let doc = chrome_trace(&lines);
        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        serde_json::to_writer(std::io::BufWriter::new(file), &doc)?;
        let n = doc["traceEvents"].as_array().map(Vec::len).unwrap_or(0);
        println!(
            "wrote {} ({} lines → {n} trace events); open it at https://ui.perfetto.dev",
            out.display(),
            lines.len()
        );
    } else if a.out.is_none() {
        bail!("nothing to write: give --chrome FILE and/or (with --connect) --out FILE");
    }
    Ok(())
}

/// Streams lines from a live dispatcher until Ctrl-C or until it goes away; returns them.
fn capture(addr: &str, a: &TraceArgs) -> Result<String> {
    let mut mon = Monitor::connect(addr, a.token.clone(), a.max_frame, "gt trace")?;
    let mut out = match &a.out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, closer) = (stop.clone(), mon.closer()?);
    ctrlc::set_handler(move || {
        flag.store(true, Ordering::Relaxed);
        closer.shutdown();
    })
    .context("installing the Ctrl-C handler")?;
    eprintln!("gt trace: attached to {addr}; capturing until Ctrl-C");
    let mut text = String::new();
    let mut lines = 0usize;
    // After a goodbye the last lines may still be on their way; read until the close.
    let mut bye: Option<String> = None;
    let why = loop {
        let batch = match mon.recv() {
            Ok(Some(b)) => b,
            Ok(None) if stop.load(Ordering::Relaxed) => break "stopped (Ctrl-C)".to_string(),
            Ok(None) => match &bye {
                Some(r) => break format!("the dispatcher shut down ({r})"),
                None => break "the dispatcher closed the connection".to_string(),
            },
            Err(_) if stop.load(Ordering::Relaxed) => break "stopped (Ctrl-C)".to_string(),
            Err(e) => break format!("the connection failed: {e}"),
        };
        for m in batch {
            match m {
                MonitorMsg::Lines(chunk) => {
                    lines += chunk.lines().count();
                    if let Some(o) = &mut out {
                        o.write_all(chunk.as_bytes())?;
                    }
                    if a.chrome.is_some() {
                        text.push_str(&chunk);
                    }
                }
                MonitorMsg::Snapshot(_) => {}
                MonitorMsg::Bye { reason } => bye = Some(reason),
            }
        }
        if let Some(o) = &mut out {
            o.flush()?;
        }
    };
    eprintln!("gt trace: capture ended — {why}; {lines} lines captured");
    Ok(text)
}
