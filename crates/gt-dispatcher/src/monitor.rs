//! Monitors: connections with the monitor role (`gt trace --connect`, `gt top`). Each receives
//! the instruction-log lines as they are written (through the log's writer thread — a log with
//! no file is opened while monitors are attached) and, about once a second, a [`Snapshot`] of
//! every worker's statistics and load and every client session.
//!
//! While anything wants per-instruction timing (a monitor, or a log opened with timing on) the
//! workers are told to send timing records (`WorkerMsg::Timing`), which become `EXEC` lines.

use crate::core::{Core, Pending};
use crate::log::InstructionLog;
use gt_core::WorkerId;
use gt_proto::{ClientView, MonitorMsg, Snapshot, WorkerMsg, WorkerStats, WorkerView};
use gt_transport::Tx;
use std::time::Instant;

/// Heartbeat ticks between snapshots (the heartbeat is 250 ms by default).
const TICKS_PER_SNAPSHOT: u32 = 4;

/// The core's monitor state.
pub struct Monitors {
    /// When the dispatcher started (snapshot times count from here).
    started: Instant,
    txs: Vec<Tx<MonitorMsg>>,
    ticks: u32,
    poll: Option<Poll>,
    /// Whether the workers were told to send timing records.
    pub(crate) timing_on: bool,
}

impl Default for Monitors {
    fn default() -> Self {
        Monitors {
            started: Instant::now(),
            txs: Vec::new(),
            ticks: 0,
            poll: None,
            timing_on: false,
        }
    }
}

/// A stats request to every worker, answered into a snapshot.
struct Poll {
    agg: u64,
    remaining: usize,
    stats: Vec<WorkerStats>,
}

impl Core {
    pub(crate) fn monitor_joined(&mut self, tx: Tx<MonitorMsg>, lines: bool) {
        tracing::info!(target: "gt::dispatcher", "a monitor attached (log lines: {lines})");
        self.monitor.txs.push(tx.clone());
        // A first snapshot right away, so `gt top` has something to show.
        self.monitor.ticks = TICKS_PER_SNAPSHOT - 1;
        if !lines {
            return;
        }
        if self.log.is_none() {
            match InstructionLog::for_monitors() {
                Ok(mut log) => {
                    log.set_timing(true);
                    self.log = Some(log);
                }
                Err(e) => {
                    tracing::error!(target: "gt::dispatcher", "cannot stream lines to a monitor: {e}")
                }
            }
        }
        if let Some(log) = &mut self.log {
            log.add_monitor(tx);
        }
        self.sync_timing();
    }

    /// Tells the workers to start or stop timing instructions, as the log wants.
    pub(crate) fn sync_timing(&mut self) {
        let want = self.log.as_ref().is_some_and(|l| l.timing());
        if want != self.monitor.timing_on {
            self.monitor.timing_on = want;
            for w in self.workers.iter_mut().filter(|w| w.alive) {
                w.outbox.push(WorkerMsg::Timing { on: want });
            }
        }
    }

    /// Called on every heartbeat tick: drops closed monitors, polls stats for the next snapshot.
    pub(crate) fn monitor_tick(&mut self) {
        // A log kept only for monitors goes away with the last one that reads lines.
        if self
            .log
            .as_ref()
            .is_some_and(|l| !l.has_file() && l.monitors() == 0)
        {
            tracing::info!(target: "gt::dispatcher", "the last line monitor detached");
            self.log = None;
            self.sync_timing();
        }
        let polling = !self.monitor.txs.is_empty() || self.log.as_ref().is_some_and(|l| l.timing());
        if !polling {
            return;
        }
        self.monitor.ticks += 1;
        if self.monitor.ticks < TICKS_PER_SNAPSHOT || self.monitor.poll.is_some() {
            return;
        }
        self.monitor.ticks = 0;
        let alive: Vec<WorkerId> = (0..self.workers.len())
            .filter(|&i| self.workers[i].alive)
            .map(|i| WorkerId(i as u32))
            .collect();
        let agg = self.next_req;
        self.next_req += 1;
        self.monitor.poll = Some(Poll {
            agg,
            remaining: alive.len(),
            stats: Vec::new(),
        });
        for w in &alive {
            let req = self.new_req(*w, Pending::Part { agg });
            self.workers[w.0 as usize]
                .outbox
                .push(WorkerMsg::Stats { req });
        }
        if alive.is_empty() {
            self.finish_poll();
        }
    }

    /// Takes a worker's answer to a monitor poll; returns the stats back when `agg` is not one.
    pub(crate) fn monitor_part(
        &mut self,
        agg: u64,
        stats: Option<WorkerStats>,
    ) -> Option<Option<WorkerStats>> {
        let Some(p) = self.monitor.poll.as_mut().filter(|p| p.agg == agg) else {
            return Some(stats);
        };
        p.stats.extend(stats);
        p.remaining = p.remaining.saturating_sub(1);
        if p.remaining == 0 {
            self.finish_poll();
        }
        None
    }

    fn finish_poll(&mut self) {
        let Some(p) = self.monitor.poll.take() else {
            return;
        };
        if self.monitor.txs.is_empty() {
            return;
        }
        let mut workers: Vec<WorkerView> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| WorkerView {
                stats: WorkerStats {
                    worker: i as u32,
                    alive: w.alive,
                    ..Default::default()
                },
                load: w.load,
                peer_addr: w.peer_addr.clone(),
            })
            .collect();
        for st in p.stats {
            let i = st.worker as usize;
            if let Some(v) = workers.get_mut(i) {
                let alive = v.stats.alive;
                v.stats = st;
                v.stats.alive = alive;
            }
        }
        let mut clients: Vec<ClientView> = self
            .sessions
            .values()
            .map(|s| ClientView {
                session: s.id,
                name: s.name.clone(),
                instructions: s.instructions,
                tensors: s.tensors.len() as u64,
                scopes: s.scopes.clone(),
            })
            .collect();
        clients.sort_by_key(|c| c.session);
        let snap = Snapshot {
            at_ms: self.monitor.started.elapsed().as_millis() as u64,
            workers,
            clients,
        };
        self.monitor
            .txs
            .retain(|tx| tx.send(vec![MonitorMsg::Snapshot(snap.clone())]).is_ok());
    }

    /// Tells every monitor the dispatcher is going away.
    pub(crate) fn monitors_bye(&mut self, reason: &str) {
        for tx in self.monitor.txs.drain(..) {
            let _ = tx.send(vec![MonitorMsg::Bye {
                reason: reason.into(),
            }]);
        }
    }
}
