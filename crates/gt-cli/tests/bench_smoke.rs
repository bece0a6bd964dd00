//! `gt bench compile`, `gt bench ops --log-only` and `gt bench matmul` end to end, briefly. The compile bench's JSON
//! has every workload, every round, each side's worker busy time and the compile stats, and
//! `--aa` runs both sides eager; the log rows have both sides (an add loop and a training step) and the log-alone split. Values are
//! not checked (timings belong in benchmarks, not tests); the structure and the counters are.

mod common;

use serde_json::Value;
use std::process::Command;

/// `gt <args> --json`, which must succeed and print one JSON object.
fn gt_json(args: &[&str]) -> Value {
    let out = Command::new(common::GT)
        .args(args)
        .arg("--json")
        .output()
        .expect("runs gt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn bench(extra: &[&str]) -> Value {
    let args = [
        "bench", "compile", "--iters", "8", "--warmup", "2", "--rounds", "2",
    ];
    gt_json(&[&args[..], extra].concat())
}

#[test]
fn bench_compile_reports_rounds_stats_and_an_a_a_mode() {
    let doc = bench(&[]);
    let ws = doc["workloads"].as_array().expect("workloads");
    assert_eq!(ws.len(), 4, "{doc}");
    for w in ws {
        assert_eq!(w["iters"], 8, "{w}");
        assert_eq!(
            w["round_steady_speedups"].as_array().map(Vec::len),
            Some(2),
            "{w}"
        );
        assert!(w["steady_median_ms"][0].as_f64().unwrap() > 0.0, "{w}");
        // Both sides' workers did work in the timed loop.
        for side in 0..2 {
            assert!(
                w["worker_busy_ms_per_iter"][side].as_f64().unwrap() > 0.0,
                "{w}"
            );
        }
        // Every workload repeats one step: at most one trace (the compile runs in the
        // background, so on a loaded machine it may not have finished), and it never fails.
        assert!(
            w["compile"]["traces_compiled"].as_u64().unwrap() <= 1,
            "{w}"
        );
        assert_eq!(w["compile"]["fallbacks"], 0, "{w}");
        // Read from each timed compiled runtime: at most one per round.
        assert!(w["guard_disabled_rounds"].as_u64().unwrap() <= 2, "{w}");
    }
    assert!(doc["detector_ns_per_instruction"].as_f64().unwrap() > 0.0);
    let aa = bench(&["--aa"]);
    for w in aa["workloads"].as_array().expect("workloads") {
        assert!(w["workload"].as_str().unwrap().contains("A/A"), "{w}");
        assert!(w["compile"].is_null(), "{w}");
        assert_eq!(
            w["guard_disabled_rounds"], 0,
            "no plans when both sides are eager: {w}"
        );
    }
}

#[test]
fn bench_ops_log_rows_report_both_sides_and_the_log_alone() {
    let doc = gt_json(&["bench", "ops", "--log-only", "--log-iters", "2000"]);
    for side in ["add_16x16_us_off", "add_16x16_us_on"] {
        assert!(
            doc[side].as_f64().is_some_and(|x| x > 0.0),
            "{side} in {doc}"
        );
    }
    assert_eq!(doc["rounds"], 9, "{doc}");
    let step = &doc["training_step"];
    for side in ["step_us_off", "step_us_on"] {
        assert!(
            step[side].as_f64().is_some_and(|x| x > 0.0),
            "{side} in {step}"
        );
    }
    assert!(step["overhead"].as_f64().is_some(), "{step}");
    let alone = &doc["alone"];
    // Four lines of ~120 bytes per add: the records really became lines in the file.
    let bytes = alone["bytes_per_add"].as_f64().expect("bytes_per_add");
    assert!((300.0..1000.0).contains(&bytes), "{bytes} bytes per add");
    for k in [
        "core_ns_per_add",
        "writer_cpu_ns_per_add",
        "written_ns_per_add",
        "write_floor_ns_per_add",
    ] {
        assert!(
            alone[k].as_f64().is_some_and(|x| x >= 0.0),
            "{k} in {alone}"
        );
    }
}

#[test]
fn bench_matmul_times_every_case_both_ways_and_agrees_with_gemm() {
    let doc = gt_json(&["bench", "matmul", "--iters", "20"]);
    let cases = doc["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 11, "{doc}");
    for c in cases {
        for key in ["engine_ns", "gemm_only_ns", "speedup"] {
            assert!(c[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {c}");
        }
        // The command fails outright beyond a relative 1e-5; the seed MLP's products are
        // summed in the same order by both kernels.
        assert!(c["max_abs_diff"].as_f64().is_some(), "{c}");
        if c["case"].as_str().is_some_and(|s| s.starts_with("mlp")) {
            assert_eq!(c["bit_identical"], true, "{c}");
        }
    }
    assert!(doc["mlp_step"]["engine_ns"].as_f64().is_some(), "{doc}");
}
