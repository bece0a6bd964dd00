//! Helpers for end-to-end tests: real `gt` processes on ephemeral ports, and re-running this
//! test binary as a separate client process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const GT: &str = env!("CARGO_BIN_EXE_gt");

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `gt dispatcher` with `args`; returns it and the addresses it printed.
pub fn dispatcher(args: &[&str]) -> (Proc, Vec<String>) {
    let mut c = Command::new(GT)
        .arg("dispatcher")
        .args(args)
        .env("GT_HEARTBEAT_TIMEOUT_MS", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gt dispatcher");
    let expected = args.iter().filter(|a| a.starts_with("--")).count().max(1);
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut addrs = Vec::new();
    for _ in 0..expected {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        addrs.push(
            line.trim()
                .strip_prefix("gt dispatcher listening on ")
                .expect("address line")
                .to_string(),
        );
    }
    (Proc(c), addrs)
}

/// Starts `gt worker --connect addr`.
pub fn worker(addr: &str) -> Proc {
    Proc(
        Command::new(GT)
            .args(["worker", "--connect", addr, "--threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gt worker"),
    )
}

/// Connects an in-test client session.
pub fn client(addr: &str) -> gt::Session {
    gt_client::connect(addr, &Default::default()).expect("connect")
}

/// Waits until the dispatcher reports `n` live workers.
pub fn wait_workers(addr: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = gt_client::connect(addr, &Default::default()) {
            if s.worker_stats()
                .map(|v| v.iter().filter(|w| w.alive).count())
                .unwrap_or(0)
                >= n
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "workers did not join in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs this test binary's `child_entry` test as a separate client process for `scenario`.
pub fn child(scenario: &str, addr: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_entry",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("GT_E2E_CHILD", scenario)
        .env("GT_ADDR", addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child client")
}

/// Reads lines of a child's stdout until one starts with `prefix`; returns the rest.
pub fn read_tagged(c: &mut Child, prefix: &str) -> String {
    let out = c.stdout.as_mut().unwrap();
    let mut r = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            panic!("child ended before printing {prefix}");
        }
        // The test harness may print its own words before ours on the same line.
        if let Some((_, rest)) = line.trim().split_once(prefix) {
            return rest.trim().to_string();
        }
    }
}

/// Total live tensors over live workers.
pub fn live_tensors(s: &gt::Session) -> u64 {
    s.worker_stats()
        .unwrap()
        .iter()
        .map(|w| w.live_tensors)
        .sum()
}
