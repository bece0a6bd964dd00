//! End-to-end tests on real processes: `gt dispatcher` and `gt worker` binaries, TCP and Unix
//! sockets, client processes (this test binary re-run as a child), killed workers and clients,
//! garbage on the wire.

mod common;

use common::*;
use gt::{DType, Session};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

/// Entry point of child client processes; a no-op in the normal test run.
#[test]
fn child_entry() {
    let Ok(scenario) = std::env::var("GT_E2E_CHILD") else {
        return;
    };
    let k: f64 = match scenario.as_str() {
        "sum1" => 1.0,
        "sum2" => 2.0,
        "sum3" => 3.0,
        "hold" => {
            // Create tensors, report readiness, then wait to be killed.
            let keep: Vec<gt::Tensor> = (0..50).map(|_| gt::ones([64, 64])).collect();
            gt::sync().unwrap();
            println!("READY {}", keep.len());
            std::thread::sleep(Duration::from_secs(600));
            return;
        }
        other => panic!("unknown scenario {other}"),
    };
    // A known result that differs per client: sum(k * ones(100, 100) @ ones(100, 10)) = k * 100 * 1000.
    let a = gt::ones([100, 100]) * k;
    let b = gt::ones([100, 10]);
    let mut acc = gt::zeros([100, 10]);
    for _ in 0..20 {
        acc = &acc + &a.matmul(&b);
    }
    let total = acc.sum().item().unwrap();
    println!("RESULT {total}");
}

fn known(k: f64) -> f64 {
    k * 100.0 * 1000.0 * 20.0
}

#[test]
fn three_client_processes_over_tcp_and_unix() {
    let sock = std::env::temp_dir().join(format!("gt-e2e-{}.sock", std::process::id()));
    let (mut d, addrs) = dispatcher(&["--listen", "127.0.0.1:0", "--unix", sock.to_str().unwrap()]);
    let (tcp, unix) = (&addrs[0], &addrs[1]);
    assert!(unix.starts_with("unix:"));
    let _w1 = worker(tcp);
    let _w2 = worker(unix);
    wait_workers(tcp, 2);
    let mut kids = [child("sum1", tcp), child("sum2", unix), child("sum3", tcp)];
    for (i, c) in kids.iter_mut().enumerate() {
        let got: f64 = read_tagged(c, "RESULT").parse().unwrap();
        assert_eq!(got, known(i as f64 + 1.0), "client {i}");
        assert!(c.wait().unwrap().success());
    }
    // A dispatcher stopped the way service managers stop it exits cleanly and leaves no socket
    // file behind.
    let term = Command::new("kill")
        .args(["-TERM", &d.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(d.0.wait().unwrap().success(), "SIGTERM is a clean stop");
    assert!(!sock.exists(), "{} left behind", sock.display());
}

#[test]
fn tensors_move_between_workers() {
    let (_d, addrs) = dispatcher(&["--listen", "127.0.0.1:0"]);
    let _w1 = worker(&addrs[0]);
    let _w2 = worker(&addrs[0]);
    wait_workers(&addrs[0], 2);
    let s = client(&addrs[0]);
    let x = s.try_arange(0.0, 6.0, 1.0, DType::F32).unwrap();
    let on0 = x.to_worker(0);
    let on1 = x.to_worker(1);
    // Inputs on different workers: the dispatcher injects a worker-to-worker move.
    let y = on0.try_mul(&on1).unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![0.0, 1.0, 4.0, 9.0, 16.0, 25.0]);
    let z = on1.try_add_scalar(1.0).unwrap();
    assert_eq!(z.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let stats = s.worker_stats().unwrap();
    let ops = |w: usize, name: &str| {
        stats[w]
            .ops_by_name
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    assert_eq!(
        ops(1, "add"),
        1,
        "the add ran where its input lives: {stats:?}"
    );
    assert!(
        ops(0, "send") + ops(1, "send") >= 1,
        "a transfer happened: {stats:?}"
    );
    // Moving to a worker that does not exist poisons the result with a clear error.
    let bad = x.to_worker(7);
    let err = bad
        .try_add_scalar(1.0)
        .unwrap()
        .to_vec()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no worker 7"), "{err}");
}

#[test]
fn killed_worker_is_reported_and_others_keep_working() {
    let (_d, addrs) = dispatcher(&["--listen", "127.0.0.1:0"]);
    let addr = &addrs[0];
    let mut w0 = worker(addr);
    wait_workers(addr, 1);
    let _w1 = worker(addr);
    wait_workers(addr, 2);
    // Pin a's tensor to worker 0 and b's to worker 1 (homes depend on connection order).
    let a = client(addr);
    let b = client(addr);
    let ta = a.try_full([8, 8], 2.0, DType::F32).unwrap().to_worker(0);
    let tb = b.try_full([8, 8], 3.0, DType::F32).unwrap().to_worker(1);
    a.sync().unwrap();
    b.sync().unwrap();
    let st = a.worker_stats().unwrap();
    assert!(st[0].live_tensors >= 1 && st[1].live_tensors >= 1, "{st:?}");
    w0.kill();
    let t = Instant::now();
    let err = loop {
        match a.sync() {
            Err(e) => break e.to_string(),
            Ok(()) => {
                assert!(t.elapsed() < Duration::from_secs(2), "no error within 2 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert!(err.contains("worker 0"), "{err}");
    assert!(ta.to_vec().unwrap_err().to_string().contains("worker 0"));
    // Derived tensors carry the same cause.
    let derived = ta.try_add_scalar(1.0).unwrap();
    assert!(derived
        .to_vec()
        .unwrap_err()
        .to_string()
        .contains("worker 0"));
    // The other client is unaffected, and the lost client can still compute on the survivor.
    assert_eq!(
        tb.try_sum_dims(&[0, 1], false).unwrap().item().unwrap(),
        192.0
    );
    let fresh = a.try_full([2], 5.0, DType::F32).unwrap();
    assert_eq!(fresh.to_vec().unwrap(), vec![5.0, 5.0]);
}

#[test]
fn killed_client_has_its_tensors_freed() {
    let (_d, addrs) = dispatcher(&["--listen", "127.0.0.1:0"]);
    let _w = worker(&addrs[0]);
    wait_workers(&addrs[0], 1);
    let observer = client(&addrs[0]);
    let baseline = live_tensors(&observer);
    let mut c = child("hold", &addrs[0]);
    assert_eq!(read_tagged(&mut c, "READY"), "50");
    assert!(live_tensors(&observer) >= baseline + 50);
    c.kill().unwrap();
    c.wait().unwrap();
    let t = Instant::now();
    while live_tensors(&observer) != baseline {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "tensors of the killed client were not freed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn garbage_and_oversized_frames_are_rejected_and_service_continues() {
    let (_d, addrs) = dispatcher(&["--listen", "127.0.0.1:0"]);
    let _w = worker(&addrs[0]);
    wait_workers(&addrs[0], 1);
    let good = client(&addrs[0]);
    let t = good.try_full([3], 1.5, DType::F32).unwrap();
    // Raw garbage instead of a handshake: the connection is closed.
    let mut raw = std::net::TcpStream::connect(&addrs[0]).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"\x05\x00\x00\x00hello, is this HTTP?")
        .unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf); // the server answers Rejected and closes
                                       // A frame announcing 4 GiB: rejected before any allocation.
    let mut raw = std::net::TcpStream::connect(&addrs[0]).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
    let _ = raw.read_to_end(&mut buf);
    // A client that completes the handshake and then sends a malformed frame is disconnected
    // alone.
    let addr: gt_transport::Addr = addrs[0].parse().unwrap();
    let st = gt_transport::Stream::connect(&addr, Duration::from_secs(5)).unwrap();
    let hello = gt_proto::Hello::new(gt_proto::Role::Client, None, "victim");
    gt_transport::connect_handshake(&st, &hello, 1 << 20).unwrap();
    let mut w = st.try_clone().unwrap();
    w.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff]).unwrap();
    st.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = st;
    let mut one = [0u8; 1];
    assert_eq!(
        r.read(&mut one).unwrap_or(0),
        0,
        "the dispatcher closed the victim's connection"
    );
    // Everyone else keeps being served.
    assert_eq!(t.to_vec().unwrap(), vec![1.5, 1.5, 1.5]);
    let other = client(&addrs[0]);
    assert_eq!(
        other
            .try_full([1], 7.0, DType::F32)
            .unwrap()
            .item()
            .unwrap(),
        7.0
    );
}

#[test]
fn create_drop_loop_leaves_live_tensors_flat() {
    let (_d, addrs) = dispatcher(&["--listen", "127.0.0.1:0"]);
    let _w = worker(&addrs[0]);
    wait_workers(&addrs[0], 1);
    let s: Session = client(&addrs[0]);
    let baseline = live_tensors(&s);
    let b = s.try_full([16, 16], 1.0, DType::F32).unwrap();
    for _ in 0..10_000 {
        let t = s.try_randn([16, 16], DType::F32).unwrap();
        let _u = t.try_add(&b).unwrap();
    }
    s.sync().unwrap();
    assert_eq!(live_tensors(&s), baseline + 1, "only `b` is still alive");
    let stats = s.worker_stats().unwrap();
    assert!(
        stats[0].pool_hits > 10_000,
        "the pool served the loop: {stats:?}"
    );
}
