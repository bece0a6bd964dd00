//! Observability end to end on real processes: `gt trace --connect` attached to a running
//! `gt dispatcher` (over its Unix socket) with two `gt worker`s and a client doing cross-worker
//! work; the captured log parses line by line, the Chrome JSON has the required structure and
//! matched flows, and `gt visualize` draws it as PNG and SVG with one lane per worker.

mod common;

use common::*;
use gt::DType;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The one regex every line of a log must match (seed 003's format).
const LINE: &str = r"^\d+\.\d{3}s \| #\d{4,} \| (RECV|SEND|WORKER_SEND|WORKER_RECV|MODIFIER_INJECT|HOTPATH_START|HOTPATH_END|EXEC|CONNECT|DISCONNECT|ERROR) *\| (CLIENT s\d+ .*?|CLIENT - .*?|WORKER \d+) *\| ([A-Za-z]+|-) *\| +\d+B \| .*$";

fn check_chrome(doc: &Value, workers: usize) {
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    assert!(!events.is_empty());
    let mut pids = BTreeSet::new();
    let mut flows: HashMap<u64, Vec<(String, u64)>> = HashMap::new();
    for e in events {
        let ph = e["ph"].as_str().expect("ph");
        assert!(e["name"].is_string(), "{e}");
        assert!(e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
        if ph != "M" {
            assert!(e["ts"].is_number(), "{e}");
        }
        if ph == "X" {
            assert!(e["dur"].as_f64().is_some_and(|d| d > 0.0), "{e}");
        }
        if ph == "M" && e["name"] == "process_name" {
            assert!(
                pids.insert(e["pid"].as_u64().unwrap()),
                "one pid per process: {e}"
            );
        }
        if matches!(ph, "s" | "t" | "f") {
            let id = e["id"].as_u64().expect("flow id");
            flows
                .entry(id)
                .or_default()
                .push((ph.into(), e["pid"].as_u64().unwrap()));
        }
    }
    assert_eq!(
        pids.len(),
        1 + workers,
        "a dispatcher and one process per worker"
    );
    assert!(!flows.is_empty(), "flow arrows");
    let mut to_workers = 0;
    for (id, steps) in &flows {
        assert_eq!(
            steps.first().map(|s| s.0.as_str()),
            Some("s"),
            "flow {id}: {steps:?}"
        );
        assert_eq!(
            steps.last().map(|s| s.0.as_str()),
            Some("f"),
            "flow {id}: {steps:?}"
        );
        assert_eq!(steps.iter().filter(|s| s.0 == "s").count(), 1);
        assert_eq!(steps.iter().filter(|s| s.0 == "f").count(), 1);
        if steps.last().unwrap().1 != 0 {
            to_workers += 1;
        }
    }
    assert!(to_workers > 0, "some flows end in a worker's execution");
    let slices_on_workers = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["pid"].as_u64().unwrap() > 0)
        .count();
    assert!(
        slices_on_workers > 0,
        "execution slices on worker processes"
    );
    assert!(events.iter().any(|e| e["ph"] == "C"), "counters");
}

#[test]
fn live_capture_chrome_export_and_timeline_from_real_processes() {
    let dir = std::env::temp_dir().join(format!("gt-observe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("d.sock");
    let (mut d, addrs) = dispatcher(&["--listen", "127.0.0.1:0", "--unix", sock.to_str().unwrap()]);
    let _w0 = worker(&addrs[0]);
    let _w1 = worker(&addrs[0]);
    wait_workers(&addrs[0], 2);

    let (live, json) = (dir.join("live.log"), dir.join("live.json"));
    let mut trace = Command::new(GT)
        .args(["trace", "--connect", &addrs[1], "--out"])
        .arg(&live)
        .arg("--chrome")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gt trace");
    let mut err = BufReader::new(trace.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.contains("attached"), "{first}");

    let s = client(&addrs[0]);
    let x = s.try_arange(0.0, 6.0, 1.0, DType::F32).unwrap();
    let (a, b) = (x.to_worker(0), x.to_worker(1));
    let y = a.try_mul(&b).unwrap().try_add_scalar(1.0).unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![1.0, 2.0, 5.0, 10.0, 17.0, 26.0]);
    // Wait (no timing assumed) until the capture holds the workers' timing of the mul, a
    // heartbeat load and a stats poll (the counters).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&live).unwrap_or_default();
        let has = |a: &str, b: &str| text.lines().any(|l| l.contains(a) && l.contains(b));
        if has("| EXEC", "op=mul")
            && has("| WORKER_RECV", "| Load")
            && has("| WORKER_RECV", "| Stats")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no EXEC line for the mul:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((x, a, b, y, s));

    // A second capture over TCP, stopped with Ctrl-C (SIGINT): it says so and exits cleanly.
    let mut second = Command::new(GT)
        .args(["trace", "--connect", &addrs[0], "--out"])
        .arg(dir.join("second.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gt trace");
    let mut err2 = BufReader::new(second.stderr.take().unwrap());
    let mut line = String::new();
    err2.read_line(&mut line).unwrap();
    assert!(line.contains("attached"), "{line}");
    let kill = Command::new("kill")
        .args(["-INT", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = second.wait().unwrap();
    let mut rest2 = String::new();
    std::io::Read::read_to_string(&mut err2, &mut rest2).unwrap();
    assert!(status.success(), "{rest2}");
    assert!(rest2.contains("stopped (Ctrl-C)"), "{rest2}");

    d.kill();
    let status = trace.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("dispatcher closed the connection"), "{rest}");

    let text = std::fs::read_to_string(&live).unwrap();
    let re = regex_lite::Regex::new(LINE).unwrap();
    for l in text.lines() {
        assert!(re.is_match(l), "bad line: {l:?}");
    }
    for ev in [
        "RECV",
        "WORKER_SEND",
        "MODIFIER_INJECT",
        "EXEC",
        "WORKER_RECV",
    ] {
        assert!(
            text.lines().any(|l| l.contains(&format!("| {ev} "))),
            "no {ev} line"
        );
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    check_chrome(&doc, 2);

    // The same log converted offline gives the same structure.
    let again = dir.join("again.json");
    let out = Command::new(GT)
        .args(["trace", "--log"])
        .arg(&live)
        .arg("--chrome")
        .arg(&again)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_chrome(
        &serde_json::from_str(&std::fs::read_to_string(&again).unwrap()).unwrap(),
        2,
    );

    for ext in ["png", "svg"] {
        let pic = dir.join(format!("timeline.{ext}"));
        let out = Command::new(GT)
            .arg("visualize")
            .arg(&live)
            .arg("-o")
            .arg(&pic)
            .args(["--width", "1000"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&pic).unwrap();
        // Lanes: two workers and one client → 140 + 46 * 3 + 40 pixels high.
        let (w, h) = (1000u32, 140 + 46 * 3 + 40);
        if ext == "png" {
            assert_eq!(&bytes[1..4], b"PNG");
            let dim = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
            assert_eq!((dim(16), dim(20)), (w, h));
        } else {
            let svg = String::from_utf8(bytes).unwrap();
            assert!(
                svg.contains(&format!("width=\"{w}\"")) && svg.contains(&format!("height=\"{h}\""))
            );
            assert!(svg.contains("worker 0") && svg.contains("worker 1"));
            assert!(!svg.contains("worker 2"));
        }
    }
    if std::env::var_os("GT_KEEP_OBSERVE").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn trace_refuses_bad_input_with_clear_errors() {
    let out = Command::new(GT)
        .args(["trace", "--chrome", "x.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log PATH"));
    let dir = std::env::temp_dir().join(format!("gt-observe-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.log");
    std::fs::write(&bad, "0.000s | #0000 | CONNECT | nonsense\n").unwrap();
    let out = Command::new(GT)
        .args(["trace", "--log"])
        .arg(&bad)
        .args(["--chrome"])
        .arg(dir.join("x.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
    let out = Command::new(GT)
        .args(["trace", "--connect", "127.0.0.1:1", "--chrome"])
        .arg(dir.join("x.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
    let _ = std::fs::remove_dir_all(&dir);
}
