//! Starting `gt dispatcher` / `gt worker` child processes of this very binary (used by the
//! benchmarks; the end-to-end tests do the same with the built binary).

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Child processes stopped on drop (SIGTERM, then SIGKILL after a grace period).
pub struct Cluster {
    children: Vec<Child>,
    /// The dispatcher's address as clients should use it.
    pub addr: String,
}

impl Cluster {
    /// A dispatcher listening on `listen_args` plus `workers` workers with `threads` threads.
    pub fn start(listen_args: &[&str], workers: usize, threads: usize) -> Result<Cluster> {
        let exe = std::env::current_exe().context("locating the gt binary")?;
        let mut d = Command::new(&exe)
            .arg("dispatcher")
            .args(listen_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting gt dispatcher")?;
        let mut line = String::new();
        BufReader::new(d.stdout.take().expect("piped")).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("gt dispatcher listening on ") else {
            let _ = d.kill();
            bail!("unexpected dispatcher output: {line:?}");
        };
        let addr = addr.to_string();
        let mut cluster = Cluster {
            children: vec![d],
            addr: addr.clone(),
        };
        for _ in 0..workers {
            let w = Command::new(&exe)
                .args([
                    "worker",
                    "--connect",
                    &addr,
                    "--threads",
                    &threads.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting gt worker")?;
            cluster.children.push(w);
        }
        Ok(cluster)
    }
}

impl Drop for Cluster {
    /// Asks each child to stop with SIGTERM (the dispatcher then removes its Unix socket file
    /// and writes its log out), and kills the ones still running after a grace period.
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            // SAFETY: `kill` is async-signal-safe and `c.id()` is our own unreaped child.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + GRACE;
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How long a child gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(2);
