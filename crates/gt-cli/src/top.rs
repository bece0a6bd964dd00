//! `gt top --connect ADDR`: a live terminal view of a running dispatcher, refreshed with every
//! snapshot (about once a second). It attaches as a snapshots-only monitor, so the dispatcher
//! neither logs nor times instructions for it. Plain ANSI through crossterm: works over ssh.

use crate::top_view::Top;
use crate::trace::Monitor;
use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use gt_proto::MonitorMsg;
use std::time::Duration;

pub fn run(addr: &str, token: Option<String>, max_frame: usize) -> Result<()> {
    let mut mon = Monitor::connect(addr, token, max_frame, gt_proto::monitor::SNAPSHOTS_ONLY)?;
    let (tx, rx) = crossbeam_channel::unbounded::<Result<MonitorMsg, String>>();
    std::thread::spawn(move || loop {
        match mon.recv() {
            Ok(Some(batch)) => {
                for m in batch {
                    if tx.send(Ok(m)).is_err() {
                        return;
                    }
                }
            }
            Ok(None) => {
                let _ = tx.send(Err("the dispatcher closed the connection".into()));
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(format!("the connection failed: {e}")));
                return;
            }
        }
    });
    let mut top = Top::new(addr);
    let mut term = ratatui::try_init().context("setting up the terminal")?;
    let ended = (|| -> Result<Option<String>> {
        loop {
            term.draw(|f| top.draw(f))?;
            if event::poll(Duration::from_millis(100))? {
                if let Event::Key(k) = event::read()? {
                    if k.kind == KeyEventKind::Press {
                        let quit = match k.code {
                            KeyCode::Esc => true,
                            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                                true
                            }
                            KeyCode::Char(c) => !top.key(c),
                            _ => false,
                        };
                        if quit {
                            return Ok(None);
                        }
                    }
                }
            }
            while let Ok(m) = rx.try_recv() {
                match m {
                    Ok(MonitorMsg::Snapshot(s)) => top.update(s),
                    Ok(MonitorMsg::Lines(_)) => {}
                    Ok(MonitorMsg::Bye { reason }) => return Ok(Some(reason)),
                    Err(why) => return Ok(Some(why)),
                }
            }
        }
    })();
    ratatui::restore();
    if let Some(why) = ended? {
        eprintln!("gt top: {why}");
    }
    Ok(())
}
