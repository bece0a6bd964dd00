//! What `gt top` shows, apart from the terminal: rates computed from two consecutive
//! [`Snapshot`]s, sorting, and drawing into any ratatui backend (the test uses `TestBackend`).

use gt_proto::{Snapshot, WorkerView};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

/// How the worker table is sorted (`s` cycles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    Id,
    Busy,
    Ops,
    Memory,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::Id => Sort::Busy,
            Sort::Busy => Sort::Ops,
            Sort::Ops => Sort::Memory,
            Sort::Memory => Sort::Id,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Sort::Id => "worker",
            Sort::Busy => "busy",
            Sort::Ops => "ops/s",
            Sort::Memory => "memory",
        }
    }
}

/// One worker row, rates included.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRow {
    pub id: u32,
    pub alive: bool,
    pub busy_pct: f64,
    pub ops_per_s: f64,
    pub queued: u64,
    pub live_tensors: u64,
    pub bytes: u64,
    pub pool_hit_pct: f64,
    pub hot_pct: f64,
    pub compiles: u64,
}

/// One client row.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientRow {
    pub session: u32,
    pub name: String,
    pub per_s: f64,
    pub instructions: u64,
    pub tensors: u64,
    pub scope: String,
}

/// The state of the view.
pub struct Top {
    pub addr: String,
    prev: Option<Snapshot>,
    cur: Option<Snapshot>,
    pub sort: Sort,
}

impl Top {
    pub fn new(addr: &str) -> Top {
        Top {
            addr: addr.into(),
            prev: None,
            cur: None,
            sort: Sort::Id,
        }
    }

    /// Takes a new snapshot (rates compare it with the previous one).
    pub fn update(&mut self, s: Snapshot) {
        self.prev = self.cur.take();
        self.cur = Some(s);
    }

    /// Handles a key; returns `false` when the view should quit.
    pub fn key(&mut self, c: char) -> bool {
        match c {
            'q' => return false,
            's' => self.sort = self.sort.next(),
            _ => {}
        }
        true
    }

    fn seconds(&self) -> f64 {
        match (&self.prev, &self.cur) {
            (Some(p), Some(c)) if c.at_ms > p.at_ms => (c.at_ms - p.at_ms) as f64 / 1000.0,
            _ => 0.0,
        }
    }

    /// The worker rows, sorted.
    pub fn workers(&self) -> Vec<WorkerRow> {
        let Some(cur) = &self.cur else {
            return Vec::new();
        };
        let dt = self.seconds();
        let before = |id: u32| -> Option<&WorkerView> {
            self.prev
                .as_ref()
                .and_then(|p| p.workers.iter().find(|w| w.stats.worker == id))
        };
        let mut rows: Vec<WorkerRow> = cur
            .workers
            .iter()
            .map(|w| {
                let s = &w.stats;
                let p = before(s.worker);
                let busy_pct = match (w.load, p.and_then(|p| p.load)) {
                    (Some(now), Some(then)) if now.uptime_ns > then.uptime_ns => {
                        100.0 * (now.busy_ns.saturating_sub(then.busy_ns)) as f64
                            / (now.uptime_ns - then.uptime_ns) as f64
                    }
                    (Some(now), None) if now.uptime_ns > 0 => {
                        100.0 * now.busy_ns as f64 / now.uptime_ns as f64
                    }
                    _ => 0.0,
                };
                let ops_per_s = match p {
                    Some(p) if dt > 0.0 => {
                        s.ops_executed.saturating_sub(p.stats.ops_executed) as f64 / dt
                    }
                    _ => 0.0,
                };
                let lookups = s.pool_hits + s.pool_misses;
                WorkerRow {
                    id: s.worker,
                    alive: s.alive,
                    busy_pct: busy_pct.min(100.0),
                    ops_per_s,
                    queued: w.load.map(|l| l.queued).unwrap_or(0),
                    live_tensors: s.live_tensors,
                    bytes: s.bytes_in_use,
                    pool_hit_pct: pct(s.pool_hits, lookups),
                    hot_pct: pct(s.hotpath.hot_instructions, s.hotpath.total_instructions),
                    compiles: s.compile.traces_compiled,
                }
            })
            .collect();
        let key = |r: &WorkerRow| match self.sort {
            Sort::Id => -(r.id as f64),
            Sort::Busy => r.busy_pct,
            Sort::Ops => r.ops_per_s,
            Sort::Memory => r.bytes as f64,
        };
        rows.sort_by(|a, b| key(b).total_cmp(&key(a)));
        rows
    }

    /// The client rows, busiest first.
    pub fn clients(&self) -> Vec<ClientRow> {
        let Some(cur) = &self.cur else {
            return Vec::new();
        };
        let dt = self.seconds();
        let mut rows: Vec<ClientRow> = cur
            .clients
            .iter()
            .map(|c| {
                let before = self
                    .prev
                    .as_ref()
                    .and_then(|p| p.clients.iter().find(|x| x.session == c.session));
                let per_s = match before {
                    Some(b) if dt > 0.0 => {
                        c.instructions.saturating_sub(b.instructions) as f64 / dt
                    }
                    _ => 0.0,
                };
                ClientRow {
                    session: c.session.0,
                    name: c.name.clone(),
                    per_s,
                    instructions: c.instructions,
                    tensors: c.tensors,
                    scope: c.scopes.join("/"),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.per_s.total_cmp(&a.per_s).then(a.session.cmp(&b.session)));
        rows
    }

    /// Draws the whole view.
    pub fn draw(&self, f: &mut Frame) {
        let workers = self.workers();
        let clients = self.clients();
        let [head, top, bottom, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(workers.len() as u16 + 3),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(f.area());
        let status = match &self.cur {
            Some(s) => format!(
                "gt top — {}  up {:.0}s  {} workers ({} alive)  {} clients",
                self.addr,
                s.at_ms as f64 / 1000.0,
                s.workers.len(),
                s.workers.iter().filter(|w| w.stats.alive).count(),
                s.clients.len()
            ),
            None => format!("gt top — {}  waiting for the first snapshot…", self.addr),
        };
        f.render_widget(
            Paragraph::new(status).style(Style::new().add_modifier(Modifier::BOLD)),
            head,
        );
        let bold = Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED);
        let header = Row::new([
            "worker", "busy", "ops/s", "queue", "tensors", "memory", "pool hit", "hot", "compiles",
        ])
        .style(bold);
        let rows = workers.iter().map(|w| {
            Row::new([
                Cell::from(if w.alive {
                    format!("{}", w.id)
                } else {
                    format!("{} (lost)", w.id)
                }),
                Cell::from(format!("{:5.1}%", w.busy_pct)),
                Cell::from(format!("{:.0}", w.ops_per_s)),
                Cell::from(w.queued.to_string()),
                Cell::from(w.live_tensors.to_string()),
                Cell::from(human_bytes(w.bytes)),
                Cell::from(format!("{:5.1}%", w.pool_hit_pct)),
                Cell::from(format!("{:5.1}%", w.hot_pct)),
                Cell::from(w.compiles.to_string()),
            ])
        });
        let widths = [
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(9),
        ];
        let title = format!(" workers (sorted by {}) ", self.sort.label());
        f.render_widget(
            Table::new(rows, widths)
                .header(header)
                .block(Block::new().borders(Borders::ALL).title(title)),
            top,
        );
        let header =
            Row::new(["session", "name", "instr/s", "total", "tensors", "scope"]).style(bold);
        let rows = clients.iter().map(|c| {
            Row::new([
                format!("s{}", c.session),
                c.name.clone(),
                format!("{:.0}", c.per_s),
                c.instructions.to_string(),
                c.tensors.to_string(),
                c.scope.clone(),
            ])
        });
        let widths = [
            Constraint::Length(8),
            Constraint::Min(12),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Min(8),
        ];
        f.render_widget(
            Table::new(rows, widths)
                .header(header)
                .block(Block::new().borders(Borders::ALL).title(" clients ")),
            bottom,
        );
        f.render_widget(
            Paragraph::new(Line::from("q/Esc/Ctrl-C quit   s sort workers")),
            help,
        );
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Monitor;
    use gt_proto::MonitorMsg;
    use gt_transport::Addr;
    use ratatui::backend::TestBackend;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn screen(top: &Top) -> String {
        let mut term = ratatui::Terminal::new(TestBackend::new(110, 18)).unwrap();
        term.draw(|f| top.draw(f)).unwrap();
        let buf = term.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    /// A real dispatcher and worker over TCP, a client running adds, and the view fed by a real
    /// monitor connection; rendered headless.
    #[test]
    fn renders_a_live_cluster() {
        let d = gt_dispatcher::Dispatcher::start(Default::default());
        let addr = d.listen(&Addr::Tcp("127.0.0.1:0".into())).unwrap();
        let a = addr.to_string();
        let wa: Addr = a.parse().unwrap();
        std::thread::spawn(move || gt_worker::server::run(&wa, &Default::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, ca) = (stop.clone(), a.clone());
        let client = std::thread::spawn(move || {
            let opts = gt_client::connect::ConnectOptions {
                name: "top-test".into(),
                ..Default::default()
            };
            let s = gt_client::connect(&ca, &opts).unwrap();
            let b = s.try_randn([8, 8], gt::DType::F32).unwrap();
            let mut x = s.try_zeros_like(&b).unwrap();
            while !flag.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    x = x.try_add(&b).unwrap();
                }
                x.to_vec().unwrap();
            }
        });
        let mut mon =
            Monitor::connect(&a, None, 1 << 20, gt_proto::monitor::SNAPSHOTS_ONLY).unwrap();
        let mut top = Top::new(&a);
        // Two snapshots with a client active in between (and no log lines: snapshots only).
        let mut snaps = 0;
        while snaps < 3 {
            for m in mon.recv().unwrap().expect("dispatcher alive") {
                match m {
                    MonitorMsg::Snapshot(s) if !s.workers.is_empty() && !s.clients.is_empty() => {
                        top.update(s);
                        snaps += 1;
                    }
                    MonitorMsg::Lines(l) => panic!("a snapshots-only monitor got lines: {l}"),
                    _ => {}
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        client.join().unwrap();
        let w = top.workers();
        assert_eq!(w.len(), 1);
        assert!(w[0].alive && w[0].ops_per_s > 0.0, "{w:?}");
        assert!(w[0].pool_hit_pct > 0.0, "{w:?}");
        let c = top.clients();
        assert_eq!(c.len(), 1);
        assert!(c[0].name == "top-test" && c[0].per_s > 0.0, "{c:?}");
        let text = screen(&top);
        for want in [
            "gt top",
            "workers (sorted by worker)",
            "busy",
            "ops/s",
            "pool hit",
            "compiles",
            "top-test",
            "instr/s",
            "q/Esc/Ctrl-C quit",
        ] {
            assert!(text.contains(want), "{want:?} missing:\n{text}");
        }
        assert!(top.key('s'));
        assert!(screen(&top).contains("sorted by busy"));
        assert!(!top.key('q'));
        d.shutdown();
    }
}
