//! Chrome trace-event JSON (loads in Perfetto and chrome://tracing) from instruction-log lines.
//!
//! - pid 0 is the dispatcher: one track (tid) per client stream with a slice per instruction it
//!   received, one "→ worker N" track per worker with a slice per message sent to it, and an
//!   "events" track for connects, disconnects and errors.
//! - pid N+1 is worker N: an "exec" track with a slice per executed instruction (from `EXEC`
//!   timing records), a "hot paths" track with a slice per hot sequence, and counters for queue
//!   depth (heartbeat loads) and memory in use (stats polls).
//! - Flow arrows (`s` → `t` → `f`, one id per client instruction) link a client's `Exec` to the
//!   dispatcher's `WORKER_SEND` and the worker's execution of the same tensor.

use crate::trace_parse::{op_family, Line, Source};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const DISPATCHER: u32 = 0;
const EVENTS_TID: u64 = 0;
/// Client tracks are `CLIENT_TID + session`; worker-send tracks `SEND_TID + worker`.
const CLIENT_TID: u64 = 1_000;
const SEND_TID: u64 = 100_000;
const EXEC_TID: u64 = 1;
const HOT_TID: u64 = 2;

fn worker_pid(w: u32) -> u32 {
    w + 1
}

/// Builds the trace-event document for `lines`.
pub fn chrome_trace(lines: &[Line]) -> Value {
    let mut ev: Vec<Value> = Vec::new();
    let mut workers = BTreeSet::new();
    let mut clients: BTreeMap<u32, String> = BTreeMap::new();
    for l in lines {
        match &l.source {
            Source::Worker(w) => {
                workers.insert(*w);
            }
            Source::Client { session, name } => {
                clients.insert(*session, name.clone());
            }
            Source::Joining(_) => {}
        }
        if let Some(w) = l.num("worker").filter(|_| l.event.starts_with("HOTPATH")) {
            workers.insert(w as u32);
        }
    }
    // Lines carry milliseconds; spread the lines of one millisecond over it, in order.
    let mut ts = Vec::with_capacity(lines.len());
    let (mut last_ms, mut k) = (u64::MAX, 0u64);
    for l in lines {
        if l.at_us != last_ms {
            (last_ms, k) = (l.at_us, 0);
        }
        ts.push(l.at_us as f64 + (k.min(999) as f64));
        k += 1;
    }
    // Keys executed (with a timing record), to end flows on the worker when they can.
    let executed: BTreeSet<&str> = lines
        .iter()
        .filter(|l| l.event == "EXEC")
        .filter_map(|l| l.field("key"))
        .collect();
    let mut flows: HashMap<String, u64> = HashMap::new();
    let mut hot_open: HashMap<(u32, String), f64> = HashMap::new();

    for (i, l) in lines.iter().enumerate() {
        let t = ts[i];
        let name = if l.command == "-" {
            l.event.clone()
        } else {
            l.command.clone()
        };
        let args = json!({ "seq": l.seq, "event": l.event, "details": l.details, "size": l.size });
        match (l.event.as_str(), &l.source) {
            ("RECV", Source::Client { session, .. }) => {
                let tid = CLIENT_TID + *session as u64;
                let (title, cat) = match (l.command.as_str(), l.field("op")) {
                    ("Exec", Some(op)) => (short_op(op), op_family(op)),
                    _ => (name.clone(), "client"),
                };
                ev.push(slice(&title, cat, DISPATCHER, tid, t, 1.0, args));
                if l.command == "Exec" {
                    if let Some(out) = l.field("out").and_then(|o| o.strip_prefix('t')) {
                        let key = format!("s{session}:{out}");
                        ev.push(flow("s", l.seq, DISPATCHER, tid, t));
                        flows.insert(key, l.seq);
                    }
                }
            }
            ("WORKER_SEND" | "MODIFIER_INJECT", Source::Worker(w)) => {
                let tid = SEND_TID + *w as u64;
                let cat = if l.event == "MODIFIER_INJECT" {
                    "injected"
                } else {
                    "worker_send"
                };
                ev.push(slice(&name, cat, DISPATCHER, tid, t, 1.0, args));
                if let Some(key) = l.field("out").filter(|_| l.command == "Exec") {
                    if let Some(&id) = flows.get(key) {
                        let ph = if executed.contains(key) { "t" } else { "f" };
                        ev.push(flow(ph, id, DISPATCHER, tid, t));
                        if ph == "f" {
                            flows.remove(key);
                        }
                    }
                }
            }
            ("EXEC", Source::Worker(w)) => {
                let start = l.secs_us("t").unwrap_or(t);
                let dur = l.micros("dur").unwrap_or(0.0).max(0.001);
                let op = l.field("op").unwrap_or("?");
                let pid = worker_pid(*w);
                ev.push(slice(op, op_family(op), pid, EXEC_TID, start, dur, args));
                if let Some(key) = l.field("key") {
                    if let Some(id) = flows.remove(key) {
                        ev.push(flow("f", id, pid, EXEC_TID, start));
                    }
                }
            }
            ("HOTPATH_START" | "HOTPATH_END", _) => {
                let w = l.num("worker").unwrap_or(0) as u32;
                let sig = l.field("signature").unwrap_or("?").to_string();
                if l.event == "HOTPATH_START" {
                    hot_open.insert((w, sig), t);
                } else if let Some(start) = hot_open.remove(&(w, sig.clone())) {
                    let title = format!("hot path {sig}");
                    let dur = (t - start).max(1.0);
                    ev.push(slice(
                        &title,
                        "hotpath",
                        worker_pid(w),
                        HOT_TID,
                        start,
                        dur,
                        args,
                    ));
                }
            }
            ("WORKER_RECV", Source::Worker(w)) => {
                let pid = worker_pid(*w);
                if let Some(q) = l.num("queued").filter(|_| l.command == "Load") {
                    ev.push(counter("queue depth", pid, t, json!({ "instructions": q })));
                }
                if let Some(b) = l.num("bytes").filter(|_| l.command == "Stats") {
                    ev.push(counter("memory", pid, t, json!({ "bytes_in_use": b })));
                }
                if let Some(n) = l.num("live").filter(|_| l.command == "Stats") {
                    ev.push(counter("live tensors", pid, t, json!({ "tensors": n })));
                }
            }
            ("SEND", Source::Client { session, .. }) => {
                let tid = CLIENT_TID + *session as u64;
                ev.push(slice(&name, "reply", DISPATCHER, tid, t, 1.0, args));
            }
            _ => {
                ev.push(json!({
                    "name": format!("{} {}", l.event, source_label(&l.source)),
                    "cat": "event", "ph": "i", "s": "t",
                    "pid": DISPATCHER, "tid": EVENTS_TID, "ts": t, "args": args,
                }));
            }
        }
    }

    let mut meta = Vec::new();
    process_name(&mut meta, DISPATCHER, "dispatcher", 0);
    thread_name(&mut meta, DISPATCHER, EVENTS_TID, "events", 0);
    for (s, name) in &clients {
        let title = format!("client s{s} {name}");
        thread_name(
            &mut meta,
            DISPATCHER,
            CLIENT_TID + *s as u64,
            &title,
            *s as u64,
        );
    }
    for w in &workers {
        let pid = worker_pid(*w);
        process_name(&mut meta, pid, &format!("worker {w}"), pid as u64);
        thread_name(&mut meta, pid, EXEC_TID, "exec", 0);
        thread_name(&mut meta, pid, HOT_TID, "hot paths", 1);
        let title = format!("→ worker {w}");
        let order = 1_000_000 + *w as u64;
        thread_name(&mut meta, DISPATCHER, SEND_TID + *w as u64, &title, order);
    }
    meta.extend(ev);
    json!({ "traceEvents": meta, "displayTimeUnit": "ms" })
}

/// `full([2], 1, float32)` → `full`.
fn short_op(op: &str) -> String {
    op.split('(').next().unwrap_or(op).to_string()
}

fn source_label(s: &Source) -> String {
    match s {
        Source::Client { session, name } => format!("client s{session} {name}"),
        Source::Joining(name) => format!("client {name}"),
        Source::Worker(w) => format!("worker {w}"),
    }
}

fn slice(name: &str, cat: &str, pid: u32, tid: u64, ts: f64, dur: f64, args: Value) -> Value {
    json!({ "name": name, "cat": cat, "ph": "X", "pid": pid, "tid": tid, "ts": ts, "dur": dur, "args": args })
}

fn flow(ph: &str, id: u64, pid: u32, tid: u64, ts: f64) -> Value {
    json!({ "name": "instruction", "cat": "flow", "ph": ph, "id": id, "pid": pid, "tid": tid, "ts": ts, "bp": "e" })
}

fn counter(name: &str, pid: u32, ts: f64, args: Value) -> Value {
    json!({ "name": name, "ph": "C", "pid": pid, "tid": 0, "ts": ts, "args": args })
}

fn process_name(m: &mut Vec<Value>, pid: u32, name: &str, order: u64) {
    m.push(json!({ "name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": { "name": name } }));
    m.push(json!({ "name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": { "sort_index": order } }));
}

fn thread_name(m: &mut Vec<Value>, pid: u32, tid: u64, name: &str, order: u64) {
    m.push(json!({ "name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": { "name": name } }));
    m.push(json!({ "name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": { "sort_index": order } }));
}
