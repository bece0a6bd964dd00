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
    let (acc, rx) = crossbeam_channel::bounded(1);
    core.handle(
        Event::WorkerJoined {
            peer_addr: "inproc".into(),
            tx,
            accepted: acc,
        },
        now,
    );
    (rx.recv().unwrap(), log)
}

fn add_client(core: &mut Core, now: Instant) -> (SessionId, Log<ClientReply>) {
    let (tx, log) = sink();
    let (acc, rx) = crossbeam_channel::bounded(1);
    core.handle(
        Event::ClientJoined {
            name: "t".into(),
            tx,
            accepted: acc,
        },
        now,
    );
    (rx.recv().unwrap().unwrap().0, log)
}

fn full(id: u64) -> ClientMsg {
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
    core.handle(
        Event::ClientLeft {
            session: a,
            reason: None,
        },
        now,
    );
    core.flush();
    assert!(w0
        .lock()
        .unwrap()
        .iter()
        .any(|m| matches!(m, WorkerMsg::FreeSession { session } if *session == a)));
    assert_eq!(core.session_count(), 0);
}
