//! Tests of the core's side of the log: inline inputs, the op table, hand-overs at sync points.

use super::*;
use gt_ops::Op;

#[test]
fn ops_are_named_right_through_evictions_of_the_op_table() {
    // More distinct ops than the core remembers, in a cycle (every one evicted and defined
    // again) and with a few repeated at once (hits): every line names its own op.
    let path = std::env::temp_dir().join(format!("gt-log-ops-{}.log", std::process::id()));
    let mut log = InstructionLog::create(&path).unwrap();
    let sid = SessionId(1);
    let op = |i: usize| Op::BinaryScalar {
        op: gt_ops::BinaryOp::Mul,
        scalar: i as f64,
        scalar_left: false,
    };
    let order: Vec<usize> = (0..3 * (OPS + 10))
        .map(|i| i % (OPS + 10))
        .chain([0, 0, 5, 5])
        .collect();
    for (n, &i) in order.iter().enumerate() {
        let m = ClientMsg::Exec {
            out: TensorId(n as u64 + 1),
            op: op(i),
            inputs: [TensorId(0)].into_iter().collect(),
        };
        log.client_msg(sid, "c", &m);
    }
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), order.len());
    for ((n, &i), line) in order.iter().enumerate().zip(&lines) {
        let want = format!("| out=t{} op={} inputs=t0", n + 1, op(i));
        assert!(line.ends_with(&want), "{line}\nwanted {want}");
    }
}

#[test]
fn a_sync_point_after_a_long_stretch_hands_the_batch_over() {
    let path = std::env::temp_dir().join(format!("gt-log-sync-{}.log", std::process::id()));
    let mut log = InstructionLog::create(&path).unwrap();
    let now = Instant::now();
    log.set_now(now); // the same round throughout: no hand-over for age
    let sid = SessionId(1);
    let free = |i: u64| ClientMsg::Free { id: TensorId(i) };
    let read = ClientMsg::Read {
        req: gt_core::ReqId(1),
        id: TensorId(1),
    };
    // A short stretch (a round trip's few records) ends in a read: kept for later.
    for i in 0..5 {
        log.client_msg(sid, "c", &free(i));
    }
    log.client_msg(sid, "c", &read);
    log.flush();
    assert!(log.pending(), "a round trip's records wait for more");
    // A long one (a training step) ends in a read: handed over while the client waits.
    for i in 0..SYNC_STRETCH as u64 {
        log.client_msg(sid, "c", &free(i));
    }
    log.client_msg(sid, "c", &read);
    log.flush();
    assert!(
        !log.pending(),
        "a step's records go to the writer at its sync point"
    );
    // A long stretch without a sync point waits (for a full batch or its age).
    for i in 0..2 * SYNC_STRETCH as u64 {
        log.client_msg(sid, "c", &free(i));
    }
    log.flush();
    assert!(log.pending());
    drop(log);
    let lines = std::fs::read_to_string(&path).unwrap().lines().count();
    let _ = std::fs::remove_file(&path);
    assert_eq!(lines, 5 + 1 + SYNC_STRETCH + 1 + 2 * SYNC_STRETCH);
}

#[test]
fn ops_with_more_inputs_than_a_hot_record_holds_are_logged_whole() {
    let path = std::env::temp_dir().join(format!("gt-log-where-{}.log", std::process::id()));
    let mut log = InstructionLog::create(&path).unwrap();
    let sid = SessionId(3);
    let ids = |n: &[u64]| n.iter().map(|&i| TensorId(i)).collect();
    let keys = |n: &[u64]| n.iter().map(|&i| Key::new(sid, i)).collect();
    log.client_msg(
        sid,
        "c",
        &ClientMsg::Exec {
            out: TensorId(9),
            op: Op::Where,
            inputs: ids(&[4, 5, 6]),
        },
    );
    log.client_msg(
        sid,
        "c",
        &ClientMsg::Exec {
            out: TensorId(10),
            op: Op::Where,
            inputs: ids(&[4, 5]),
        },
    );
    log.worker_msg(
        Kind::WorkerSend,
        WorkerId(1),
        &WorkerMsg::Exec {
            out: Key::new(sid, 9),
            op: Op::Where,
            inputs: keys(&[4, 5, 6]),
        },
    );
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let details: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit(" | ").next().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "out=t9 op=where inputs=t4,t5,t6",
            "out=t10 op=where inputs=t4,t5",
            "out=s3:9 op=where inputs=s3:4,s3:5,s3:6"
        ],
        "{text}"
    );
}

#[test]
fn timing_spans_name_their_ops_once_numbered() {
    let path = std::env::temp_dir().join(format!("gt-log-spans-{}.log", std::process::id()));
    let mut log = InstructionLog::create(&path).unwrap();
    let names = ["add", "matmul", "free", "add", "add", "matmul"];
    let spans = names
        .iter()
        .enumerate()
        .map(|(i, n)| gt_proto::ExecSpan {
            key: Key::new(SessionId(2), i as u64),
            op: n.to_string().into(),
            start_unix_ns: log.start_unix_ns + 1_000_000 * i as u64,
            dur_ns: 1500,
        })
        .collect();
    log.worker_reply(WorkerId(0), &WorkerReply::Timing { spans });
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), names.len(), "{text}");
    for (i, (line, n)) in lines.iter().zip(names).enumerate() {
        assert!(line.contains("| EXEC "), "{line}");
        let want = format!("key=s2:{i} op={n} t=0.00{i}000s dur=1.500us");
        assert!(line.ends_with(&want), "{line}\nwanted {want}");
    }
}
