//! Unit tests of the dispatcher core with fake links and a fake clock.

use crate::core::{Core, CoreConfig};
use crate::event::Event;
use gt_core::{DType, Error, ReqId, SessionId, TensorId, WorkerId};
use gt_ops::Op;
use gt_proto::{ClientMsg, ClientReply, WorkerMsg, WorkerReply};
use gt_transport::Tx;
use smallvec::smallvec;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Log<T> = Arc<Mutex<Vec<T>>>;

fn sink<T: Send + 'static>() -> (Tx<T>, Log<T>) {
    let log: Log<T> = Arc::default();
    let l = log.clone();
    (
        Tx::from_fn(move |b| {
            l.lock().unwrap().extend(b);
            Ok(())
        }),
        log,
    )
}

fn add_worker(core: &mut Core, now: Instant) -> (WorkerId, Log<WorkerMsg>) {
    let (tx, log) = sink();
    (join_worker(core, tx, now), log)
}

/// Connects a worker whose link is `tx`.
fn join_worker(core: &mut Core, tx: Tx<WorkerMsg>, now: Instant) -> WorkerId {
    let (acc, rx) = crossbeam_channel::bounded(1);
    core.handle(
        Event::WorkerJoined {
            peer_addr: "inproc".into(),
            tx,
            accepted: acc,
        },
        now,
    );
    rx.recv().unwrap()
}

fn add_client(core: &mut Core, now: Instant) -> (SessionId, Log<ClientReply>) {
    let (tx, log) = sink();
    let (acc, rx) = crossbeam_channel::bounded(1);
    core.handle(
        Event::ClientJoined {
            name: "t".into(),
            tx,
            accepted: acc,
            spares: None,
        },
        now,
    );
    (rx.recv().unwrap().unwrap().0, log)
}

/// Session `session` disconnects normally.
fn leave(core: &mut Core, session: SessionId, now: Instant) {
    core.handle(
        Event::ClientLeft {
            session,
            reason: None,
        },
        now,
    );
}

/// `Full` of a 2-element f32 tensor with client id `id` (shared with the hub's tests).
pub(crate) fn full(id: u64) -> ClientMsg {
    ClientMsg::Exec {
        out: TensorId(id),
        op: Op::Full {
            shape: [2].into(),
            value: 1.0,
            dtype: DType::F32,
        },
        inputs: smallvec![],
    }
}

fn run(core: &mut Core, session: SessionId, msgs: Vec<ClientMsg>, now: Instant) {
    core.handle(Event::ClientBatch { session, msgs }, now);
    core.serve();
    core.flush();
}

#[test]
fn sessions_get_least_loaded_homes_and_isolated_ids() {
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default());
    let (_, w0) = add_worker(&mut core, now);
    let (_, w1) = add_worker(&mut core, now);
    let (a, _) = add_client(&mut core, now);
    let (b, b_replies) = add_client(&mut core, now);
    run(&mut core, a, vec![full(1)], now);
    run(&mut core, b, vec![full(1)], now);
    let execs = |log: &Log<WorkerMsg>| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|m| matches!(m, WorkerMsg::Exec { .. }))
            .count()
    };
    assert_eq!((execs(&w0), execs(&w1)), (1, 1), "one session per worker");
    // Session b cannot read a's tensor 2 (it does not exist in b's namespace).
    run(
        &mut core,
        b,
        vec![ClientMsg::Read {
            req: ReqId(1),
            id: TensorId(2),
        }],
        now,
    );
    let r = b_replies.lock().unwrap().pop().unwrap();
    assert!(
        matches!(
            r,
            ClientReply::Data {
                result: Err(Error::UnknownTensor(_)),
                ..
            }
        ),
        "{r:?}"
    );
}

#[test]
fn cross_worker_inputs_are_moved_worker_to_worker() {
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default());
    let (_, w0) = add_worker(&mut core, now);
    let (w1id, w1) = add_worker(&mut core, now);
    let (a, _) = add_client(&mut core, now);
    run(
        &mut core,
        a,
        vec![
            full(1),
            ClientMsg::ToWorker {
                out: TensorId(2),
                src: TensorId(1),
                worker: w1id,
            },
        ],
        now,
    );
    let add = Op::Binary(gt_ops::BinaryOp::Add);
    run(
        &mut core,
        a,
        vec![ClientMsg::Exec {
            out: TensorId(3),
            op: add,
            inputs: smallvec![TensorId(2), TensorId(1)],
        }],
        now,
    );
    let w0 = w0.lock().unwrap();
    let w1 = w1.lock().unwrap();
    assert_eq!(
        w0.iter()
            .filter(|m| matches!(m, WorkerMsg::Send { .. }))
            .count(),
        2
    );
    assert_eq!(
        w1.iter()
            .filter(|m| matches!(m, WorkerMsg::Recv { .. }))
            .count(),
        2
    );
    assert!(
        w1.iter().any(|m| matches!(m, WorkerMsg::Exec { .. })),
        "the add runs on worker 1"
    );
    assert!(
        w1.iter().any(|m| matches!(m, WorkerMsg::Free { .. })),
        "the moved temporary is freed"
    );
}

#[test]
fn silent_worker_is_lost_after_the_timeout_and_reported_at_sync() {
    let t0 = Instant::now();
    let cfg = CoreConfig {
        heartbeat_timeout: Duration::from_millis(1500),
        ..Default::default()
    };
    let mut core = Core::new(cfg);
    let (w0id, w0) = add_worker(&mut core, t0);
    let (a, replies) = add_client(&mut core, t0);
    run(
        &mut core,
        a,
        vec![
            full(1),
            ClientMsg::Read {
                req: ReqId(7),
                id: TensorId(1),
            },
        ],
        t0,
    );
    // Pongs keep it alive.
    core.handle(Event::Tick, t0 + Duration::from_millis(1000));
    core.handle(
        Event::WorkerBatch {
            worker: w0id,
            msgs: vec![WorkerReply::Pong],
        },
        t0 + Duration::from_millis(1000),
    );
    core.handle(Event::Tick, t0 + Duration::from_millis(2000));
    assert_eq!(core.alive_workers(), 1);
    core.flush();
    assert!(w0
        .lock()
        .unwrap()
        .iter()
        .any(|m| matches!(m, WorkerMsg::Ping)));
    // Then silence: lost at the next tick past the timeout.
    core.handle(Event::Tick, t0 + Duration::from_millis(2600));
    assert_eq!(core.alive_workers(), 0);
    core.flush();
    let got = replies.lock().unwrap().clone();
    assert!(
        got.iter().any(|r| matches!(
            r,
            ClientReply::Data {
                req: ReqId(7),
                result: Err(Error::WorkerLost { worker: 0, .. })
            }
        )),
        "the pending read fails: {got:?}"
    );
    run(
        &mut core,
        a,
        vec![ClientMsg::Sync { req: ReqId(8) }],
        t0 + Duration::from_millis(2700),
    );
    let last = replies.lock().unwrap().pop().unwrap();
    assert!(
        matches!(
            last,
            ClientReply::Synced {
                result: Err(Error::WorkerLost { worker: 0, .. }),
                ..
            }
        ),
        "{last:?}"
    );
}

#[test]
fn disconnect_frees_the_session_everywhere() {
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default());
    let (_, w0) = add_worker(&mut core, now);
    let (a, _) = add_client(&mut core, now);
    run(&mut core, a, vec![full(1)], now);
    leave(&mut core, a, now);
    core.flush();
    assert!(w0
        .lock()
        .unwrap()
        .iter()
        .any(|m| matches!(m, WorkerMsg::FreeSession { session } if *session == a)));
    assert_eq!(core.session_count(), 0);
}

/// Masks the elapsed column (`1.234s` → `X.XXXs`) of each line.
fn mask_elapsed(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let (t, rest) = l.split_once("s | ").expect("an elapsed column");
            assert!(t.len() >= 5 && t.as_bytes()[t.len() - 4] == b'.', "{l}");
            assert!(t.bytes().all(|c| c.is_ascii_digit() || c == b'.'), "{l}");
            format!("X.XXXs | {rest}")
        })
        .collect()
}

#[test]
fn instruction_log_lines_golden() {
    let path = std::env::temp_dir().join(format!("gt-core-log-{}.log", std::process::id()));
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default());
    core.set_log(Some(crate::log::InstructionLog::create(&path).unwrap()));
    let (w0id, _w0) = add_worker(&mut core, now);
    let (w1id, _w1) = add_worker(&mut core, now);
    let (a, _) = add_client(&mut core, now);
    let add = Op::Binary(gt_ops::BinaryOp::Add);
    run(
        &mut core,
        a,
        vec![
            full(1),
            ClientMsg::Upload {
                out: TensorId(2),
                data: gt_proto::TensorData::from_f32([2], &[1.0, 2.0]),
            },
            ClientMsg::ToWorker {
                out: TensorId(3),
                src: TensorId(1),
                worker: w1id,
            },
            ClientMsg::Exec {
                out: TensorId(4),
                op: add.clone(),
                inputs: smallvec![TensorId(3), TensorId(2)],
            },
            ClientMsg::Exec {
                out: TensorId(0),
                op: add,
                inputs: smallvec![],
            },
            ClientMsg::Free { id: TensorId(2) },
            ClientMsg::Read {
                req: ReqId(9),
                id: TensorId(4),
            },
        ],
        now,
    );
    core.handle(
        Event::WorkerBatch {
            worker: w1id,
            msgs: vec![WorkerReply::Data {
                req: ReqId(1),
                result: Ok(gt_proto::TensorData::from_f32([2], &[2.0, 3.0])),
            }],
        },
        now,
    );
    core.flush();
    core.handle(
        Event::WorkerLeft {
            worker: w0id,
            reason: "connection closed".into(),
        },
        now,
    );
    leave(&mut core, a, now);
    core.flush();
    drop(core); // the log writes everything when dropped
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let got = mask_elapsed(&text);
    let want: Vec<&str> = GOLDEN.lines().collect();
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

const GOLDEN: &str = "\
X.XXXs | #0000 | CONNECT      | WORKER 0                    | -               |          0B | peer=inproc
X.XXXs | #0001 | CONNECT      | WORKER 1                    | -               |          0B | peer=inproc
X.XXXs | #0002 | CONNECT      | CLIENT s1 t                 | -               |          0B | home=0 workers=2
X.XXXs | #0003 | RECV         | CLIENT s1 t                 | Exec            |         15B | out=t1 op=full([2], 1, float32)
X.XXXs | #0004 | RECV         | CLIENT s1 t                 | Upload          |         14B | out=t2 dtype=float32 shape=2
X.XXXs | #0005 | RECV         | CLIENT s1 t                 | ToWorker        |          4B | out=t3 src=t1 worker=1
X.XXXs | #0006 | RECV         | CLIENT s1 t                 | Exec            |          7B | out=t4 op=add inputs=t3,t2
X.XXXs | #0007 | RECV         | CLIENT s1 t                 | Exec            |          5B | out=t0 op=add
X.XXXs | #0008 | ERROR        | CLIENT s1 t                 | -               |          0B | protocol error: tensor id 0 is out of range
X.XXXs | #0009 | RECV         | CLIENT s1 t                 | Free            |          2B | id=t2
X.XXXs | #0010 | RECV         | CLIENT s1 t                 | Read            |          3B | req=9 id=t4
X.XXXs | #0011 | WORKER_SEND  | WORKER 0                    | Peers           |         10B | peers=1
X.XXXs | #0012 | WORKER_SEND  | WORKER 0                    | Peers           |         18B | peers=2
X.XXXs | #0013 | WORKER_SEND  | WORKER 0                    | Exec            |         20B | out=s1:1 op=full([2], 1, float32)
X.XXXs | #0014 | WORKER_SEND  | WORKER 0                    | Upload          |         19B | out=s1:2 dtype=float32 shape=2
X.XXXs | #0015 | MODIFIER_INJECT | WORKER 0                    | Send            |          9B | key=s1:1 to=1 xfer=1
X.XXXs | #0016 | MODIFIER_INJECT | WORKER 0                    | Send            |          9B | key=s1:2 to=1 xfer=2
X.XXXs | #0017 | WORKER_SEND  | WORKER 0                    | Free            |          7B | key=s1:2
X.XXXs | #0018 | WORKER_SEND  | WORKER 1                    | Peers           |         18B | peers=2
X.XXXs | #0019 | MODIFIER_INJECT | WORKER 1                    | Recv            |          9B | out=s1:3 from=0 xfer=1
X.XXXs | #0020 | MODIFIER_INJECT | WORKER 1                    | Recv            |          4B | out=s0:1 from=0 xfer=2
X.XXXs | #0021 | WORKER_SEND  | WORKER 1                    | Exec            |         17B | out=s1:4 op=add inputs=s1:3,s0:1
X.XXXs | #0022 | MODIFIER_INJECT | WORKER 1                    | Free            |          2B | key=s0:1
X.XXXs | #0023 | WORKER_SEND  | WORKER 1                    | Read            |          8B | req=1 key=s1:4
X.XXXs | #0024 | WORKER_RECV  | WORKER 1                    | Data            |         15B | req=1 dtype=float32 shape=2
X.XXXs | #0025 | SEND         | CLIENT s1 t                 | Data            |         15B | req=9 dtype=float32 shape=2
X.XXXs | #0026 | DISCONNECT   | WORKER 0                    | -               |          0B | reason=connection closed
X.XXXs | #0027 | ERROR        | WORKER 0                    | -               |          0B | worker lost: connection closed
X.XXXs | #0028 | DISCONNECT   | CLIENT s1 t                 | -               |          0B | reason=closed tensors=3
X.XXXs | #0029 | WORKER_SEND  | WORKER 1                    | PeerLost        |         22B | worker=0 error=worker 0 lost: connection closed
X.XXXs | #0030 | WORKER_SEND  | WORKER 1                    | FreeSession     |          2B | session=s1
";

#[test]
fn signal_scopes_nest_per_session_and_send_nothing_to_workers() {
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default());
    let (_, w0) = add_worker(&mut core, now);
    let (a, _) = add_client(&mut core, now);
    let (b, _) = add_client(&mut core, now);
    core.flush(); // the peer announcement
    w0.lock().unwrap().clear();
    let enter = |n: &str| ClientMsg::ScopeEnter { name: n.into() };
    run(&mut core, a, vec![enter("model"), enter("layer1")], now);
    run(&mut core, b, vec![enter("other")], now);
    assert_eq!(core.sessions[&a].scopes, ["model", "layer1"]);
    assert_eq!(core.sessions[&b].scopes, ["other"]);
    run(&mut core, a, vec![ClientMsg::ScopeExit], now);
    assert_eq!(core.sessions[&a].scopes, ["model"]);
    // An exit with nothing open is a protocol error for that session only: it is ignored.
    run(
        &mut core,
        b,
        vec![ClientMsg::ScopeExit, ClientMsg::ScopeExit],
        now,
    );
    assert!(core.sessions[&b].scopes.is_empty());
    assert!(w0.lock().unwrap().is_empty(), "scopes are dispatcher-only");
}

#[test]
fn a_lost_worker_poisons_distributed_tensors_and_frees_their_other_parts() {
    let now = Instant::now();
    let cfg = crate::ShardConfig::from_yaml("rows:\n  shard:\n    axis: 0\n").unwrap();
    let mut core = Core::new(CoreConfig {
        shard: Arc::new(cfg),
        ..Default::default()
    });
    let (_, w0) = add_worker(&mut core, now);
    let (w1, _) = add_worker(&mut core, now);
    let (c, replies) = add_client(&mut core, now);
    let scoped = vec![
        ClientMsg::ScopeEnter {
            name: "rows".into(),
        },
        ClientMsg::Exec {
            out: TensorId(1),
            op: Op::Full {
                shape: [4, 2].into(),
                value: 1.0,
                dtype: DType::F32,
            },
            inputs: smallvec![],
        },
        ClientMsg::ScopeExit,
    ];
    run(&mut core, c, scoped, now);
    let parts = w0
        .lock()
        .unwrap()
        .iter()
        .filter(|m| matches!(m, WorkerMsg::Exec { op: Op::Full { shape, .. }, .. } if shape.dims() == [2, 2]))
        .count();
    assert_eq!(parts, 1, "worker 0 holds one 2x2 part");
    core.handle(
        Event::WorkerLeft {
            worker: w1,
            reason: "test".into(),
        },
        now,
    );
    core.flush();
    assert!(w0
        .lock()
        .unwrap()
        .iter()
        .any(|m| matches!(m, WorkerMsg::Free { key } if key.local() == 1)));
    let read = vec![ClientMsg::Read {
        req: ReqId(9),
        id: TensorId(1),
    }];
    run(&mut core, c, read, now);
    let r = replies.lock().unwrap();
    assert!(
        matches!(
            r.last(),
            Some(ClientReply::Data {
                result: Err(Error::WorkerLost { worker: 1, .. }),
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn hotpath_events_and_timing_records_become_lines() {
    use gt_proto::{ExecSpan, HotPathEvent};
    let path = std::env::temp_dir().join(format!("gt-core-hot-{}.log", std::process::id()));
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default());
    core.set_log(Some(crate::log::InstructionLog::create(&path).unwrap()));
    let (w0, _w0) = add_worker(&mut core, now);
    let (a, _) = add_client(&mut core, now);
    let hot = |event| WorkerReply::HotPath { session: a, event };
    core.handle(
        Event::WorkerBatch {
            worker: w0,
            msgs: vec![
                hot(HotPathEvent::Start {
                    signature: 0xabc,
                    len: 3,
                }),
                WorkerReply::Timing {
                    spans: vec![ExecSpan {
                        key: gt_core::Key::new(a, 7),
                        op: "add".into(),
                        start_unix_ns: 0,
                        dur_ns: 1500,
                    }],
                },
                hot(HotPathEvent::End {
                    signature: 0xabc,
                    compiled: true,
                }),
            ],
        },
        now,
    );
    core.flush();
    drop(core);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let got = mask_elapsed(&text);
    let want = [
        "X.XXXs | #0000 | CONNECT      | WORKER 0                    | -               |          0B | peer=inproc",
        "X.XXXs | #0001 | CONNECT      | CLIENT s1 t                 | -               |          0B | home=0 workers=1",
        "X.XXXs | #0002 | HOTPATH_START | CLIENT s1 t                 | HotPath         |          6B | signature=0000000000000abc len=3 worker=0",
        "X.XXXs | #0003 | EXEC         | WORKER 0                    | Timing          |          0B | key=s1:7 op=add t=0.000000s dur=1.500us",
        "X.XXXs | #0004 | HOTPATH_END  | CLIENT s1 t                 | HotPath         |          6B | signature=0000000000000abc compiled=true worker=0",
        "X.XXXs | #0005 | WORKER_SEND  | WORKER 0                    | Peers           |         10B | peers=1",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn split_worker_batches_keep_order_and_emptied_batches_go_back() {
    let now = Instant::now();
    let mut core = Core::new(CoreConfig {
        worker_batch: Some(3),
        ..CoreConfig::default()
    });
    // A worker link whose consumer records each batch and hands the vector back, like the
    // in-process worker's executor.
    let worker_spares = Arc::new(gt_transport::Recycler::new());
    let batches: Log<Vec<WorkerMsg>> = Arc::default();
    let (b, s) = (batches.clone(), worker_spares.clone());
    let tx = Tx::recycling(
        move |batch: Vec<WorkerMsg>| {
            b.lock().unwrap().push(batch.clone());
            s.give(batch);
            Ok(())
        },
        worker_spares.clone(),
    );
    let (acc, rx) = crossbeam_channel::bounded(1);
    let joined = Event::WorkerJoined {
        peer_addr: "inproc".into(),
        tx,
        accepted: acc,
    };
    core.handle(joined, now);
    rx.recv().unwrap();
    let client_spares = Arc::new(gt_transport::Recycler::new());
    let (reply_tx, _replies) = sink();
    let (acc, rx) = crossbeam_channel::bounded(1);
    let joined = Event::ClientJoined {
        name: "t".into(),
        tx: reply_tx,
        accepted: acc,
        spares: Some(client_spares.clone()),
    };
    core.handle(joined, now);
    let sid = rx.recv().unwrap().unwrap().0;

    run(&mut core, sid, (1..=7).map(full).collect(), now);
    assert_eq!(
        client_spares.spares(),
        1,
        "the emptied client batch goes back"
    );
    let got = batches.lock().unwrap();
    assert!(got.iter().all(|b| !b.is_empty() && b.len() <= 3), "{got:?}");
    let outs: Vec<gt_core::Key> = got
        .iter()
        .flatten()
        .filter_map(|m| match m {
            WorkerMsg::Exec { out, .. } => Some(*out),
            _ => None,
        })
        .collect();
    let want: Vec<gt_core::Key> = (1..=7).map(|i| gt_core::Key::new(sid, i)).collect();
    assert_eq!(outs, want, "splitting never reorders the stream");
    assert!(
        worker_spares.spares() >= 1,
        "the split parts come back for reuse"
    );
}

#[test]
fn a_waiting_worker_gets_a_long_batch_in_pieces_as_it_is_routed() {
    let now = Instant::now();
    let hunger = gt_transport::Hunger::new();
    let mut core = Core::new(CoreConfig {
        hunger: Some(hunger.clone()),
        ..CoreConfig::default()
    });
    let sizes: Log<usize> = Arc::default();
    let s2 = sizes.clone();
    let tx = Tx::from_fn(move |b: Vec<WorkerMsg>| {
        s2.lock().unwrap().push(b.len());
        Ok(())
    });
    join_worker(&mut core, tx, now);
    let (a, _) = add_client(&mut core, now);
    let take = || std::mem::take(&mut *sizes.lock().unwrap());
    // Start from a session the worker already knows.
    run(&mut core, a, vec![full(1)], now);
    take();
    // The worker is busy: the batch goes whole once routed.
    run(&mut core, a, (2..=41).map(full).collect(), now);
    assert_eq!(take(), vec![40]);
    // The worker waits: it gets every HAND_OVER instructions as soon as they are routed.
    let waiting = hunger.waiting();
    run(&mut core, a, (41..=80).map(full).collect(), now);
    assert_eq!(take(), vec![16, 16, 8]);
    drop(waiting);
    // Nothing was lost or reordered on the way.
    run(
        &mut core,
        a,
        vec![ClientMsg::Read {
            req: ReqId(1),
            id: TensorId(80),
        }],
        now,
    );
    assert_eq!(take(), vec![1]);
}

/// A client's last batch and its departure handled in one round: the batch still runs (it was
/// sent first), instead of being dropped with the session.
#[test]
fn a_batch_queued_before_its_client_left_still_runs() {
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default());
    let (_, w) = add_worker(&mut core, now);
    let (a, _) = add_client(&mut core, now);
    core.handle(
        Event::ClientBatch {
            session: a,
            msgs: vec![full(1), full(2)],
        },
        now,
    );
    leave(&mut core, a, now);
    core.serve();
    core.flush();
    let execs = w
        .lock()
        .unwrap()
        .iter()
        .filter(|m| matches!(m, WorkerMsg::Exec { .. }))
        .count();
    assert_eq!(execs, 2);
}
