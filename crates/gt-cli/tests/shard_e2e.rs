//! Sharding across real processes: `gt dispatcher --config` with two `gt worker` processes and a
//! client over TCP (peer transfers over real sockets), a config sent by the client, and a bad
//! config file refused at start with the file and the key named.

mod common;

use common::{client, wait_workers, worker, Proc, GT};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const DP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/dp_mlp.yaml");

/// `gt dispatcher --config path` on an ephemeral TCP port; returns it and its address.
fn dispatcher_with_config(path: &str) -> (Proc, String) {
    let mut c = Command::new(GT)
        .args(["dispatcher", "--listen", "127.0.0.1:0", "--config", path])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gt dispatcher");
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("gt dispatcher listening on ")
        .expect("address line")
        .to_string();
    (Proc(c), addr)
}

#[test]
fn sharded_ops_run_on_worker_processes_and_match() {
    let (_d, addr) = dispatcher_with_config(DP);
    let addr = &addr;
    let _w = [worker(addr), worker(addr)];
    wait_workers(addr, 2);
    let s = client(addr);
    let v: Vec<f64> = (0..30).map(|i| (i % 7) as f64 - 3.0).collect();
    let w: Vec<f64> = (0..15).map(|i| (i % 4) as f64 * 0.5).collect();
    s.scope_enter("batch");
    let x = s.try_tensor_f64(&v, [10, 3]).unwrap();
    s.scope_exit();
    s.scope_enter("params");
    let wt = s.try_tensor_f64(&w, [3, 5]).unwrap();
    s.scope_exit();
    let y = x.matmul(&wt).relu();
    let got = y.to_vec_f64().unwrap();
    let mut want = vec![0.0; 50];
    for i in 0..10 {
        for j in 0..5 {
            let d: f64 = (0..3).map(|k| v[i * 3 + k] * w[k * 5 + j]).sum();
            want[i * 5 + j] = d.max(0.0);
        }
    }
    assert_eq!(got, want);
    for ws in s.worker_stats().unwrap() {
        assert!(
            ws.ops_by_name.iter().any(|(k, _)| k == "matmul"),
            "worker {} ran no matmul: {:?}",
            ws.worker,
            ws.ops_by_name
        );
    }
    // A config sent by the client: sharding the contraction dimension needs an all-reduce,
    // which moves partial sums between the worker processes.
    s.configure("k:\n  shard:\n    axis: 1\nkr:\n  shard:\n    axis: 0\n")
        .unwrap();
    s.scope_enter("k");
    let a = s.try_tensor_f64(&v, [10, 3]).unwrap();
    s.scope_exit();
    s.scope_enter("kr");
    let b = s.try_tensor_f64(&w, [3, 5]).unwrap();
    s.scope_exit();
    let z = a.matmul(&b).relu();
    assert_eq!(z.to_vec_f64().unwrap(), want);
    let st = s.dispatcher_stats().unwrap();
    assert!(
        st.shard.all_reduces >= 1 && st.shard.transfers >= 2,
        "{st:?}"
    );
    let e = s.configure("k:\n  shard:\n    workers: [7]\n").unwrap_err();
    assert!(e.to_string().contains("worker index 7"), "{e}");
}

#[test]
fn a_bad_config_file_stops_the_dispatcher_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("gt-shard-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.yaml");
    std::fs::write(&p, "batch:\n  shard:\n    axsi: 0\n").unwrap();
    let out = std::process::Command::new(GT)
        .args(["dispatcher", "--listen", "127.0.0.1:0", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml") && err.contains("axsi"), "{err}");
}
