//! The instruction log's benchmark rows (`gt bench ops --log-only`, and the last rows of
//! `gt bench ops`):
//!
//! - end to end: the embedded `a = a + b` loop with the log off and on, timed until every line is
//!   in the file, with the process's CPU time per add (the worst case: the cheapest instruction);
//! - the same on a training step (the seed-size MLP step of `gt bench compile`);
//! - the log alone: the four records of an add pushed straight into an [`InstructionLog`] as the
//!   dispatcher core would, which splits the log's cost between the core thread (building and
//!   handing over records) and the writer thread (formatting and writing the lines).

use anyhow::Result;
use gt::config::Config;
use gt::runtime::Embedded;
use gt::DType;
use gt_core::{Key, SessionId, TensorId, WorkerId};
use gt_dispatcher::log::Kind;
use gt_dispatcher::InstructionLog;
use gt_ops::{BinaryOp, Op};
use gt_proto::{ClientMsg, WorkerMsg};
use std::time::{Duration, Instant};

/// Rounds of each side of the logging row, alternating off and on.
const LOG_ROUNDS: usize = 9;

/// One side of the logging row: the best round's wall time and the CPU time of that round, both
/// per add.
#[derive(Clone, Copy, Debug)]
pub struct LogSide {
    pub wall_us: f64,
    pub cpu_us: f64,
}

/// The logging row: the best round of each side, and the cost as the median (and range) of the
/// on/off ratios of rounds run back to back. On a shared machine the load changes from second to
/// second; a round compared with its neighbour saw about the same load, while the best of each
/// side may come from different moments.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub off: LogSide,
    pub on: LogSide,
    /// Wall-time cost: median, lowest and highest of the paired ratios, minus one.
    pub cost: Spread,
    /// Process CPU time cost, the same way.
    pub cpu_cost: Spread,
}

/// The median and range of a few measurements.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Spread {
        v.sort_by(f64::total_cmp);
        Spread {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// The embedded add loop with the instruction log off and on (to a fresh file in the temporary
/// directory), `iters` adds per round, [`LOG_ROUNDS`] alternating rounds each.
///
/// A round times the loop, the read-back of its result and the runtime's shutdown, which waits
/// until the log's writer has written every line: a log that falls behind during the loop and
/// catches up afterwards is charged in full. The off side shuts down the same way. The CPU time
/// is the whole process's (every thread: client, dispatcher core, worker, log writer), so it
/// shows the log's cost even where an idle core hides it from the wall time.
pub fn logging(iters: usize, cfg: &Config) -> Result<LogRow> {
    logging_of(iters, cfg, "bench-log", |s| {
        let b = s.try_randn([16, 16], DType::F32)?;
        let mut a = s.try_zeros_like(&b)?;
        Ok(Box::new(move || {
            a = a.try_add(&b)?;
            Ok(0.0)
        }))
    })
}

/// Steps of the seed-size MLP training step (`gt bench compile`'s second workload: forward,
/// backward, SGD update, `loss.item()`; 52 instructions and 52 frees a step) per round of
/// the training-step row.
pub fn step_iters(iters: usize) -> usize {
    (iters / 25).max(10)
}

/// The instruction log's cost on a training step: [`logging`]'s rounds over the seed-size MLP
/// step instead of single adds (the times are per step). Each instruction does more work than
/// a 16x16 add, so the log's share is smaller: this is what logging costs a real training loop,
/// where the add loop is its worst case.
pub fn logging_step(iters: usize, cfg: &Config) -> Result<LogRow> {
    logging_of(step_iters(iters), cfg, "bench-log-step", |s| {
        crate::bench_compile::mlp(s, 1)
    })
}

/// [`LOG_ROUNDS`] alternating rounds of `iters` iterations of the workload `build` makes, with
/// the log off and on (see [`logging`] for what a round times).
fn logging_of(
    iters: usize,
    cfg: &Config,
    name: &str,
    build: impl Fn(&gt::Session) -> Result<crate::bench_compile::Step>,
) -> Result<LogRow> {
    let path = std::env::temp_dir().join(format!("gt-bench-{}.log", std::process::id()));
    let threads = cfg.threads_per_worker(1);
    let round = |log: Option<std::path::PathBuf>| -> Result<LogSide> {
        if let Some(p) = &log {
            // A fresh file each time: truncating the last round's makes ext4 write it back on close.
            let _ = std::fs::remove_file(p);
        }
        let rt = Embedded::start(
            1,
            threads,
            &Config {
                instruction_log: log,
                ..cfg.clone()
            },
        )?;
        let s = rt.session(name)?;
        let mut step = build(&s)?;
        for _ in 0..(iters / 10).clamp(1, 1000) {
            step()?;
        }
        s.sync()?;
        let cpu = cpu_time();
        let t = Instant::now();
        for _ in 0..iters {
            step()?;
        }
        s.sync()?;
        drop((step, s));
        drop(rt);
        let n = iters as f64;
        Ok(LogSide {
            wall_us: t.elapsed().as_secs_f64() * 1e6 / n,
            cpu_us: (cpu_time() - cpu).as_secs_f64() * 1e6 / n,
        })
    };
    let best = |x: LogSide, y: LogSide| if y.wall_us < x.wall_us { y } else { x };
    let worst = LogSide {
        wall_us: f64::INFINITY,
        cpu_us: f64::INFINITY,
    };
    let (mut off, mut on) = (worst, worst);
    let (mut cost, mut cpu_cost) = (Vec::new(), Vec::new());
    for _ in 0..LOG_ROUNDS {
        let a = round(None)?;
        let b = round(Some(path.clone()))?;
        cost.push(b.wall_us / a.wall_us - 1.0);
        cpu_cost.push(b.cpu_us / a.cpu_us - 1.0);
        off = best(off, a);
        on = best(on, b);
    }
    let _ = std::fs::remove_file(&path);
    Ok(LogRow {
        off,
        on,
        cost: Spread::of(cost),
        cpu_cost: Spread::of(cpu_cost),
    })
}

/// CPU time used by this process so far (all threads, including finished ones).
fn cpu_time() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Client instructions per `a = a + b` iteration: the `Exec` and the `Free` of the old `a`.
const INSTRUCTIONS_PER_ADD: f64 = 2.0;

/// The logging row as JSON.
pub fn logging_json(r: &LogRow) -> serde_json::Value {
    let spread = |x: Spread| serde_json::json!({ "median": x.median, "min": x.min, "max": x.max });
    serde_json::json!({
        "rounds": LOG_ROUNDS,
        "add_16x16_us_off": r.off.wall_us,
        "add_16x16_us_on": r.on.wall_us,
        "instructions_per_s_off": INSTRUCTIONS_PER_ADD * 1e6 / r.off.wall_us,
        "instructions_per_s_on": INSTRUCTIONS_PER_ADD * 1e6 / r.on.wall_us,
        "overhead": r.cost.median,
        "overhead_range": spread(r.cost),
        "cpu_us_per_add_off": r.off.cpu_us,
        "cpu_us_per_add_on": r.on.cpu_us,
        "cpu_overhead": r.cpu_cost.median,
        "cpu_overhead_range": spread(r.cpu_cost),
    })
}

/// The training-step row as JSON (times per step).
pub fn logging_step_json(r: &LogRow, iters: usize) -> serde_json::Value {
    let spread = |x: Spread| serde_json::json!({ "median": x.median, "min": x.min, "max": x.max });
    serde_json::json!({
        "workload": "MLP training step (seed size)",
        "steps_per_round": step_iters(iters),
        "rounds": LOG_ROUNDS,
        "step_us_off": r.off.wall_us,
        "step_us_on": r.on.wall_us,
        "overhead": r.cost.median,
        "overhead_range": spread(r.cost),
        "cpu_us_per_step_off": r.off.cpu_us,
        "cpu_us_per_step_on": r.on.cpu_us,
        "cpu_overhead": r.cpu_cost.median,
        "cpu_overhead_range": spread(r.cpu_cost),
    })
}

/// The training-step row as text.
pub fn logging_step_line(r: &LogRow) -> String {
    let pct = |x: f64| x * 100.0;
    format!(
        "instruction log on a training step (seed-size MLP step, best of {LOG_ROUNDS}): off {:.1} µs/step, on {:.1} µs/step; cost, median of {LOG_ROUNDS} pairs: {:+.1}% wall time (range {:+.0}%..{:+.0}%), {:+.1}% process CPU time",
        r.off.wall_us,
        r.on.wall_us,
        pct(r.cost.median),
        pct(r.cost.min),
        pct(r.cost.max),
        pct(r.cpu_cost.median),
    )
}

/// The logging row as text.
pub fn logging_line(r: &LogRow) -> String {
    let pct = |x: f64| x * 100.0;
    format!(
        "instruction log (embedded add loop, timed until the log is written, best of {LOG_ROUNDS}): off {:.3} µs/add ({:.0} instructions/s), on {:.3} µs/add ({:.0} instructions/s)\n\
         logging cost, median of {LOG_ROUNDS} back-to-back pairs: {:+.1}% wall time (range {:+.0}%..{:+.0}%), {:+.1}% process CPU time (range {:+.0}%..{:+.0}%; best off {:.3} µs/add, on {:.3} µs/add)",
        r.off.wall_us,
        INSTRUCTIONS_PER_ADD * 1e6 / r.off.wall_us,
        r.on.wall_us,
        INSTRUCTIONS_PER_ADD * 1e6 / r.on.wall_us,
        pct(r.cost.median),
        pct(r.cost.min),
        pct(r.cost.max),
        pct(r.cpu_cost.median),
        pct(r.cpu_cost.min),
        pct(r.cpu_cost.max),
        r.off.cpu_us,
        r.on.cpu_us,
    )
}

/// The log alone: per add (four lines), the CPU time of the core thread (building and handing
/// over records; not the time it waits for a writer that fell behind) and of the writer thread
/// (formatting and writing), and the time until every line was written; and the floor under
/// the writer's share: the bytes of an add's lines, and the CPU time of writing that many bytes
/// to a file with nothing else to do (the same 256 KiB `write`s, into the page cache).
#[derive(Clone, Copy, Debug)]
pub struct LogAlone {
    pub core_ns: f64,
    pub writer_ns: f64,
    pub written_ns: f64,
    pub bytes: f64,
    pub write_ns: f64,
}

/// Adds per core round in [`log_alone`] (a core round hands over what it logged).
const ADDS_PER_ROUND: usize = 4;

/// Rounds of the log-alone row (the best is kept).
const ALONE_ROUNDS: usize = 5;

/// Pushes the records of `4 * iters` adds (`RECV Exec`, `RECV Free`, `WORKER_SEND Exec`,
/// `WORKER_SEND Free`, as the dispatcher logs `a = a + b`; four times the end-to-end rounds, as
/// this runs several times faster) into a fresh log, the best of [`ALONE_ROUNDS`] rounds. The
/// messages are made up front so only the log is timed.
pub fn log_alone(iters: usize) -> Result<LogAlone> {
    let iters = iters.saturating_mul(4);
    let path = std::env::temp_dir().join(format!("gt-bench-alone-{}.log", std::process::id()));
    let sid = SessionId(1);
    let w = WorkerId(0);
    let b = TensorId(1);
    let msgs: Vec<(ClientMsg, ClientMsg, WorkerMsg, WorkerMsg)> = (0..1024u64)
        .map(|i| {
            let (old, out) = (TensorId(10_000 + i), TensorId(10_001 + i));
            let key = |t: TensorId| Key::new(sid, t.0);
            (
                ClientMsg::Exec {
                    out,
                    op: Op::Binary(BinaryOp::Add),
                    inputs: [old, b].into_iter().collect(),
                },
                ClientMsg::Free { id: old },
                WorkerMsg::Exec {
                    out: key(out),
                    op: Op::Binary(BinaryOp::Add),
                    inputs: [key(old), key(b)].into_iter().collect(),
                },
                WorkerMsg::Free { key: key(old) },
            )
        })
        .collect();
    let round = || -> Result<LogAlone> {
        let _ = std::fs::remove_file(&path);
        let mut log = InstructionLog::create(&path)?;
        let (cpu, core_cpu) = (cpu_time(), thread_cpu_time());
        let t = Instant::now();
        for (i, (ce, cf, we, wf)) in msgs.iter().cycle().take(iters).enumerate() {
            if i % ADDS_PER_ROUND == 0 {
                log.set_now(Instant::now());
            }
            log.client_msg(sid, "bench-log", ce);
            log.client_msg(sid, "bench-log", cf);
            log.worker_msg(Kind::WorkerSend, w, we);
            log.worker_msg(Kind::WorkerSend, w, wf);
            if i % ADDS_PER_ROUND == ADDS_PER_ROUND - 1 {
                log.flush();
            }
        }
        let core_cpu = thread_cpu_time().saturating_sub(core_cpu);
        drop(log);
        let written = t.elapsed();
        let writer_cpu = (cpu_time().saturating_sub(cpu)).saturating_sub(core_cpu);
        let per = |d: Duration| d.as_secs_f64() * 1e9 / iters as f64;
        let bytes = std::fs::metadata(&path)?.len();
        Ok(LogAlone {
            core_ns: per(core_cpu),
            writer_ns: per(writer_cpu),
            written_ns: per(written),
            bytes: bytes as f64 / iters as f64,
            write_ns: per(write_cpu(&path, bytes)?),
        })
    };
    let mut best = round()?;
    for _ in 1..ALONE_ROUNDS {
        let r = round()?;
        best = LogAlone {
            core_ns: best.core_ns.min(r.core_ns),
            writer_ns: best.writer_ns.min(r.writer_ns),
            written_ns: best.written_ns.min(r.written_ns),
            bytes: r.bytes,
            write_ns: best.write_ns.min(r.write_ns),
        };
    }
    let _ = std::fs::remove_file(&path);
    Ok(best)
}

/// CPU time of writing `bytes` bytes to a fresh file next to `log` in the writer's 256 KiB
/// chunks (`write` into the page cache; the file is removed after).
fn write_cpu(log: &std::path::Path, bytes: u64) -> Result<Duration> {
    use std::io::Write as _;
    let path = log.with_extension("floor");
    let _ = std::fs::remove_file(&path);
    let chunk = vec![b'x'; 256 << 10];
    let mut f = std::fs::File::create(&path)?;
    let t = thread_cpu_time();
    let mut left = bytes as usize;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n])?;
        left -= n;
    }
    let cpu = thread_cpu_time().saturating_sub(t);
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(cpu)
}

/// The log-alone row as JSON.
pub fn log_alone_json(a: LogAlone) -> serde_json::Value {
    serde_json::json!({
        "core_ns_per_add": a.core_ns,
        "writer_cpu_ns_per_add": a.writer_ns,
        "written_ns_per_add": a.written_ns,
        "bytes_per_add": a.bytes,
        "write_floor_ns_per_add": a.write_ns,
    })
}

/// The log-alone row as text.
pub fn log_alone_line(a: LogAlone) -> String {
    format!(
        "instruction log alone (4 records per add), CPU time: core thread {:.0} ns/add, writer thread {:.0} ns/add; all lines written after {:.0} ns/add\n\
         of the writer's time, {:.0} ns/add is the kernel's floor: writing the {:.0} bytes of an add's lines to a file, and nothing else",
        a.core_ns, a.writer_ns, a.written_ns, a.write_ns, a.bytes
    )
}

/// CPU time of the calling thread so far.
fn thread_cpu_time() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}
