//! The instruction log end to end: a small program on an embedded runtime with two workers and
//! `Config::instruction_log` set; every line of the file parses, and the expected events appear
//! (a `to_worker` move across workers shows up as `MODIFIER_INJECT` lines).

use gt::runtime::Embedded;
use gt::DType;
use std::time::{Duration, Instant};

/// One parsed line: `<elapsed>s | #<seq> | <EVENT> | <source> | <command> | <size>B | <details>`.
struct Line {
    seq: u64,
    event: String,
    source: String,
    command: String,
}

/// Parses one line, checking every column's format (widths included).
fn parse(line: &str) -> Result<Line, String> {
    let bad = |why: &str| Err(format!("{why}: {line:?}"));
    let cols: Vec<&str> = line.splitn(7, " | ").collect();
    if cols.len() != 7 {
        return bad("not 7 columns");
    }
    let (t, seq, event, source, command, size) =
        (cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]);
    let secs = t.strip_suffix('s').unwrap_or("");
    let (int, frac) = secs.split_once('.').unwrap_or(("", ""));
    if int.is_empty()
        || frac.len() != 3
        || !(int.to_owned() + frac).bytes().all(|c| c.is_ascii_digit())
    {
        return bad("elapsed");
    }
    let digits = seq.strip_prefix('#').unwrap_or("");
    if digits.len() < 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return bad("seq");
    }
    let ev = event.trim_end();
    let known = [
        "RECV",
        "SEND",
        "WORKER_SEND",
        "WORKER_RECV",
        "MODIFIER_INJECT",
        "HOTPATH_START",
        "HOTPATH_END",
        "EXEC",
        "CONNECT",
        "DISCONNECT",
        "ERROR",
    ];
    if event.len() < 12 || !known.contains(&ev) {
        return bad("event");
    }
    let src = source.trim_end();
    let src_ok = match src.split_once(' ') {
        Some(("WORKER", id)) => id.parse::<u32>().is_ok(),
        Some(("CLIENT", rest)) => rest.split_once(' ').is_some_and(|(sid, _)| {
            sid == "-"
                || sid
                    .strip_prefix('s')
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        }),
        _ => false,
    };
    if source.len() < 27 || !src_ok {
        return bad("source");
    }
    let cmd = command.trim_end();
    if command.len() < 15
        || cmd.is_empty()
        || !(cmd == "-" || cmd.bytes().all(|c| c.is_ascii_alphabetic()))
    {
        return bad("command");
    }
    let bytes = size.strip_suffix('B').unwrap_or("");
    if size.len() < 11 || bytes.trim_start().parse::<usize>().is_err() {
        return bad("size");
    }
    Ok(Line {
        seq: digits.parse().unwrap(),
        event: ev.into(),
        source: src.into(),
        command: cmd.into(),
    })
}

#[test]
fn embedded_program_is_logged_line_by_line() {
    let path = std::env::temp_dir().join(format!("gt-instruction-log-{}.log", std::process::id()));
    let cfg = gt::config::Config {
        instruction_log: Some(path.clone()),
        ..Default::default()
    };
    let rt = Embedded::start(2, 1, &cfg).unwrap();
    let s = rt.session("logged").unwrap();
    let a = s.try_randn([4, 4], DType::F32).unwrap();
    let b = s.try_zeros_like(&a).unwrap();
    let c = a.try_add(&b).unwrap();
    let moved = c.to_worker(1);
    let d = moved.try_add(&a).unwrap(); // inputs on two workers: the router injects a move
    assert_eq!(d.to_vec().unwrap().len(), 16);
    s.sync().unwrap();

    // The writer thread writes each round of lines right after the core hands them over; wait
    // for the reply to the sync to reach the file.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let done = text
            .lines()
            .any(|l| l.contains("| SEND ") && l.contains("| Synced "));
        if done || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let lines: Vec<Line> = text
        .lines()
        .map(|l| parse(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.seq, i as u64, "sequence numbers count up from 0");
    }
    let has = |event: &str, command: &str| {
        lines
            .iter()
            .any(|l| l.event == event && (command.is_empty() || l.command == command))
    };
    for (event, command) in [
        ("CONNECT", ""),
        ("RECV", "Exec"),
        ("RECV", "ToWorker"),
        ("RECV", "Read"),
        ("RECV", "Sync"),
        ("SEND", "Data"),
        ("SEND", "Synced"),
        ("WORKER_SEND", "Exec"),
        ("WORKER_SEND", "Barrier"),
        ("WORKER_RECV", "Data"),
        ("WORKER_RECV", "BarrierDone"),
        ("MODIFIER_INJECT", "Send"),
        ("MODIFIER_INJECT", "Recv"),
    ] {
        assert!(has(event, command), "no {event} {command} line in\n{text}");
    }
    assert!(
        lines.iter().any(|l| l.event == "CONNECT"
            && l.source.starts_with("CLIENT s")
            && l.source.ends_with(" logged")),
        "{text}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.event == "WORKER_SEND" && (l.command == "Send" || l.command == "Recv")),
        "moves are logged as MODIFIER_INJECT only"
    );
    drop(rt);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn an_uncreatable_log_is_an_error_at_start() {
    let cfg = gt::config::Config {
        instruction_log: Some("/nonexistent-dir/gt/instructions.log".into()),
        ..Default::default()
    };
    let err = match Embedded::start(1, 1, &cfg) {
        Ok(_) => panic!("started with a log it cannot create"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("instruction log"), "{err}");
}

#[test]
fn a_second_runtime_on_the_same_log_is_refused_and_the_first_log_survives() {
    let path = std::env::temp_dir().join(format!("gt-shared-log-{}.log", std::process::id()));
    let cfg = gt::config::Config {
        instruction_log: Some(path.clone()),
        ..Default::default()
    };
    let first = Embedded::start(1, 1, &cfg).unwrap();
    let s = first.session("first").unwrap();
    let a = s.try_full([2, 2], 1.0, DType::F32).unwrap();
    assert_eq!(a.to_vec().unwrap(), [1.0; 4]);
    let err = match Embedded::start(1, 1, &cfg) {
        Ok(_) => panic!("a second runtime started on a log the first is writing"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("being written by another GT runtime") && err.contains("gt-shared-log"),
        "{err}"
    );
    drop((a, s));
    drop(first);
    // The first runtime's log is whole: every line parses, numbered from 0, nothing zeroed.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Line> = text
        .lines()
        .map(|l| parse(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert!(lines.iter().any(|l| l.source.ends_with(" first")), "{text}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.seq, i as u64, "{text}");
    }
    // Once the first has closed it, the file is free again.
    let again = Embedded::start(1, 1, &cfg).unwrap();
    drop(again);
    let _ = std::fs::remove_file(&path);
}

/// The child side of `a_program_that_just_exits_keeps_its_whole_log`: the default runtime (a
/// static, never dropped) logs to `GT_INSTRUCTION_LOG`, then the process exits at once.
#[test]
fn exit_child() {
    if std::env::var_os("GT_LOG_EXIT_CHILD").is_none() {
        return;
    }
    let b = gt::ones([4, 4]);
    let mut a = gt::zeros([4, 4]);
    for _ in 0..300 {
        a = &a + &b;
    }
    assert_eq!(a.to_vec().unwrap()[0], 300.0);
    std::process::exit(0);
}

#[test]
fn a_program_that_just_exits_keeps_its_whole_log() {
    let path = std::env::temp_dir().join(format!("gt-exit-log-{}.log", std::process::id()));
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "exit_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("GT_LOG_EXIT_CHILD", "1")
        .env("GT_INSTRUCTION_LOG", &path)
        .env("GT_WORKERS", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let adds = text
        .lines()
        .filter(|l| l.contains("| RECV ") && l.contains("op=add"))
        .count();
    assert_eq!(adds, 300, "{text}");
    let last = text.lines().last().unwrap_or("");
    assert!(
        text.lines()
            .any(|l| l.contains("| SEND ") && l.contains("| Data ")),
        "the read's reply, logged just before exit, is in the file (last line {last:?})"
    );
    for l in text.lines() {
        parse(l).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// With compilation on, a repeating training-like loop shows up in the log as `HOTPATH_START` /
/// `HOTPATH_END` lines on its client stream (the worker's detector reports them).
#[test]
fn hot_sequences_are_logged_as_hotpath_lines() {
    let path = std::env::temp_dir().join(format!("gt-hot-log-{}.log", std::process::id()));
    let cfg = gt::config::Config {
        instruction_log: Some(path.clone()),
        hotpath: gt::config::HotPathConfig {
            auto_compile: true,
            threshold: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let rt = Embedded::start(1, 1, &cfg).unwrap();
    let s = rt.session("hot").unwrap();
    let w = s.try_randn([8, 8], DType::F32).unwrap();
    for _ in 0..8 {
        let x = s.try_randn([4, 8], DType::F32).unwrap();
        let y = x.matmul(&w).relu();
        let loss = (&y * &y).sum();
        loss.item().unwrap();
    }
    let hot = s.worker_stats().unwrap().remove(0).hotpath;
    assert!(hot.hot_sequences >= 1, "{hot:?}");
    drop(s);
    drop(rt); // writes out the log
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<Line> = text
        .lines()
        .map(|l| parse(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    for event in ["HOTPATH_START", "HOTPATH_END"] {
        assert!(
            lines
                .iter()
                .any(|l| l.event == event && l.source.ends_with(" hot")),
            "no {event} line on the client's stream in\n{text}"
        );
    }
}
