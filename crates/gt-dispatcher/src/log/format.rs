//! The details column of rare events, formatted by the core when they happen (they may borrow
//! data the core keeps, like error messages), and the command names of messages. The hot records
//! (`Exec`, `Free`) are formatted on the writer thread by [`super::render`].

use super::Kind;
use gt_core::{Error, WorkerId};
use gt_proto::{
    ClientMsg, ClientReply, ExecSpan, HotPathEvent, TensorData, WorkerMsg, WorkerReply,
};
use std::fmt::Write as _;

/// The variant name of a client message.
pub fn client_msg_name(m: &ClientMsg) -> &'static str {
    match m {
        ClientMsg::Exec { .. } => "Exec",
        ClientMsg::Upload { .. } => "Upload",
        ClientMsg::Free { .. } => "Free",
        ClientMsg::ToWorker { .. } => "ToWorker",
        ClientMsg::Read { .. } => "Read",
        ClientMsg::Stats { .. } => "Stats",
        ClientMsg::Sync { .. } => "Sync",
        ClientMsg::ScopeEnter { .. } => "ScopeEnter",
        ClientMsg::ScopeExit => "ScopeExit",
        ClientMsg::Configure { .. } => "Configure",
        ClientMsg::DispatcherStats { .. } => "DispatcherStats",
    }
}

/// The variant name of a worker message.
pub fn worker_msg_name(m: &WorkerMsg) -> &'static str {
    match m {
        WorkerMsg::Exec { .. } => "Exec",
        WorkerMsg::Upload { .. } => "Upload",
        WorkerMsg::Free { .. } => "Free",
        WorkerMsg::Alias { .. } => "Alias",
        WorkerMsg::FreeSession { .. } => "FreeSession",
        WorkerMsg::Poison { .. } => "Poison",
        WorkerMsg::Read { .. } => "Read",
        WorkerMsg::Stats { .. } => "Stats",
        WorkerMsg::Barrier { .. } => "Barrier",
        WorkerMsg::Send { .. } => "Send",
        WorkerMsg::Recv { .. } => "Recv",
        WorkerMsg::Peers { .. } => "Peers",
        WorkerMsg::PeerLost { .. } => "PeerLost",
        WorkerMsg::Ping => "Ping",
        WorkerMsg::Timing { .. } => "Timing",
        WorkerMsg::CompileRegion { .. } => "CompileRegion",
    }
}

/// The details of a client message.
pub(crate) fn client_msg_details(m: &ClientMsg) -> String {
    let mut b = String::new();
    let _ = match m {
        ClientMsg::Exec { out, op, inputs } => {
            let _ = write!(b, "out={out} op={op}");
            list(&mut b, inputs.iter());
            Ok(())
        }
        ClientMsg::Upload { out, data } => {
            let _ = write!(b, "out={out} ");
            data_summary(&mut b, data);
            Ok(())
        }
        ClientMsg::Free { id } => write!(b, "id={id}"),
        ClientMsg::ToWorker { out, src, worker } => {
            write!(b, "out={out} src={src} worker={}", worker.0)
        }
        ClientMsg::Read { req, id } => write!(b, "req={} id={id}", req.0),
        ClientMsg::Stats { req } | ClientMsg::Sync { req } => write!(b, "req={}", req.0),
        ClientMsg::ScopeEnter { name } => write!(b, "name={name}"),
        ClientMsg::ScopeExit => Ok(()),
        ClientMsg::Configure { req, yaml } => write!(b, "req={} bytes={}", req.0, yaml.len()),
        ClientMsg::DispatcherStats { req } => write!(b, "req={}", req.0),
    };
    b
}

/// The command and details of a reply to a client.
pub(crate) fn client_reply(r: &ClientReply) -> (&'static str, String) {
    let mut b = String::new();
    let cmd = match r {
        ClientReply::Data { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            data_result(&mut b, result);
            "Data"
        }
        ClientReply::Stats { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            match result {
                Ok(list) => drop(write!(b, "workers={}", list.len())),
                Err(e) => error(&mut b, e),
            }
            "Stats"
        }
        ClientReply::Synced { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            match result {
                Ok(()) => b.push_str("ok"),
                Err(e) => error(&mut b, e),
            }
            "Synced"
        }
        ClientReply::DispatcherStats { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            match result {
                Ok(st) => drop(write!(b, "sharded_ops={}", st.shard.sharded_ops)),
                Err(e) => error(&mut b, e),
            }
            "DispatcherStats"
        }
    };
    (cmd, b)
}

/// The details of a message to a worker.
pub(crate) fn worker_msg_details(m: &WorkerMsg) -> String {
    let mut b = String::new();
    let _ = match m {
        WorkerMsg::Exec { out, op, inputs } => {
            let _ = write!(b, "out={out} op={op}");
            list(&mut b, inputs.iter());
            Ok(())
        }
        WorkerMsg::Upload { out, data } => {
            let _ = write!(b, "out={out} ");
            data_summary(&mut b, data);
            Ok(())
        }
        WorkerMsg::Free { key } => write!(b, "key={key}"),
        WorkerMsg::Alias { out, src } => write!(b, "out={out} src={src}"),
        WorkerMsg::FreeSession { session } => write!(b, "session={session}"),
        WorkerMsg::Poison { key, error: e } => {
            let _ = write!(b, "key={key} ");
            error(&mut b, e);
            Ok(())
        }
        WorkerMsg::Read { req, key } => write!(b, "req={} key={key}", req.0),
        WorkerMsg::Stats { req } | WorkerMsg::Barrier { req } => write!(b, "req={}", req.0),
        WorkerMsg::Send { key, to, xfer } => write!(b, "key={key} to={} xfer={xfer}", to.0),
        WorkerMsg::Recv { out, from, xfer } => {
            write!(b, "out={out} from={} xfer={xfer}", from.0)
        }
        WorkerMsg::Peers { peers } => write!(b, "peers={}", peers.len()),
        WorkerMsg::PeerLost { worker, error: e } => {
            let _ = write!(b, "worker={} ", worker.0);
            error(&mut b, e);
            Ok(())
        }
        WorkerMsg::Ping => Ok(()),
        WorkerMsg::Timing { on } => write!(b, "on={on}"),
        WorkerMsg::CompileRegion { session, enter } => {
            write!(b, "session={session} enter={enter}")
        }
    };
    b
}

/// The command and details of a worker's reply (not hot-path events or timing records).
pub(crate) fn worker_reply(r: &WorkerReply) -> (&'static str, String) {
    let mut b = String::new();
    let cmd = match r {
        WorkerReply::Data { req, result } => {
            let _ = write!(b, "req={} ", req.0);
            data_result(&mut b, result);
            "Data"
        }
        WorkerReply::Stats { req, stats } => {
            let _ = write!(
                b,
                "req={} executed={} live={} bytes={}",
                req.0, stats.ops_executed, stats.live_tensors, stats.bytes_in_use
            );
            "Stats"
        }
        WorkerReply::BarrierDone { req } => {
            let _ = write!(b, "req={}", req.0);
            "BarrierDone"
        }
        WorkerReply::Pong => "Pong",
        WorkerReply::HotPath { session, event } => {
            let _ = write!(b, "session={session} {event:?}");
            "HotPath"
        }
        WorkerReply::Load(l) => {
            let _ = write!(
                b,
                "busy_us={} uptime_us={} handled={} queued={}",
                l.busy_ns / 1000,
                l.uptime_ns / 1000,
                l.handled,
                l.queued
            );
            "Load"
        }
        WorkerReply::Timing { spans } => {
            let _ = write!(b, "spans={}", spans.len());
            "Timing"
        }
    };
    (cmd, b)
}

/// The kind and details of a hot-path event reported by worker `w`.
pub(crate) fn hotpath(w: WorkerId, e: &HotPathEvent) -> (Kind, String) {
    match e {
        HotPathEvent::Start { signature, len } => (
            Kind::HotpathStart,
            format!("signature={signature:016x} len={len} worker={}", w.0),
        ),
        HotPathEvent::End {
            signature,
            compiled,
        } => (
            Kind::HotpathEnd,
            format!(
                "signature={signature:016x} compiled={compiled} worker={}",
                w.0
            ),
        ),
    }
}

/// The details of a timing record that started `t_us` after the log started.
pub(crate) fn exec_span(s: &ExecSpan, t_us: u64) -> String {
    format!(
        "key={} op={} t={}.{:06}s dur={}.{:03}us",
        s.key,
        s.op,
        t_us / 1_000_000,
        t_us % 1_000_000,
        s.dur_ns / 1000,
        s.dur_ns % 1000
    )
}

/// ` inputs=a,b` (nothing when there are none).
fn list<T: std::fmt::Display>(b: &mut String, items: impl Iterator<Item = T>) {
    for (i, x) in items.enumerate() {
        b.push_str(if i == 0 { " inputs=" } else { "," });
        let _ = write!(b, "{x}");
    }
}

fn data_summary(b: &mut String, d: &TensorData) {
    let _ = write!(b, "dtype={} shape=", d.dtype);
    for (i, n) in d.shape.dims().iter().enumerate() {
        if i > 0 {
            b.push('x');
        }
        let _ = write!(b, "{n}");
    }
}

fn data_result(b: &mut String, r: &Result<TensorData, Error>) {
    match r {
        Ok(d) => data_summary(b, d),
        Err(e) => error(b, e),
    }
}

fn error(b: &mut String, e: &Error) {
    let _ = write!(b, "error={e}");
}
