//! The detector's unit tests: signatures, segment counting, periods, dormancy, warm-up.

use super::*;
use crate::test_util::{exec, key as k};
use gt_core::{DType, ReqId};
use gt_ops::{BinaryOp, Op, UnaryOp};

fn meta(_: Key) -> Option<Meta> {
    Some(Meta {
        shape: [4].into(),
        dtype: DType::F32,
    })
}
fn params(threshold: u32) -> Params {
    Params {
        threshold,
        min_seq: 2,
        window: 64,
    }
}

/// Hashes of the instructions, each in a fresh segment of its own detector.
fn seg_sig(msgs: &[WorkerMsg]) -> u64 {
    let mut d = StreamDetector::new(params(1));
    for m in msgs {
        d.observe(m, meta);
    }
    d.sync();
    d.hot()[0].sig
}

#[test]
fn dataflow_is_part_of_the_signature() {
    let add = Op::Binary(BinaryOp::Add);
    let mul = Op::Binary(BinaryOp::Mul);
    // a=f(b,c); e=g(a,d)   versus   a=f(b,c); e=g(b,c)
    let one = [
        exec(10, add.clone(), &[1, 2]),
        exec(11, mul.clone(), &[10, 3]),
    ];
    let two = [
        exec(10, add.clone(), &[1, 2]),
        exec(11, mul.clone(), &[1, 2]),
    ];
    assert_ne!(seg_sig(&one), seg_sig(&two));
    // Renamed tensors, same program: same signature.
    let renamed = [exec(20, add, &[5, 6]), exec(21, mul, &[20, 7])];
    assert_eq!(seg_sig(&one), seg_sig(&renamed));
}

#[test]
fn a_segment_repeated_threshold_times_is_hot_and_matched_next_time() {
    let mut d = StreamDetector::new(params(3));
    let mut id = 100;
    let mut steps = Vec::new();
    for _ in 0..5 {
        // x = relu(w + b); free x; read (sync)
        let body = [
            exec(id, Op::Binary(BinaryOp::Add), &[1, 2]),
            exec(id + 1, Op::Unary(UnaryOp::Relu), &[id]),
            WorkerMsg::Free { key: k(id) },
        ];
        let s: Vec<Step> = body.iter().map(|m| d.observe(m, meta)).collect();
        steps.push(s);
        let _ = WorkerMsg::Read {
            req: ReqId(1),
            key: k(id + 1),
        };
        d.sync();
        id += 10;
    }
    assert!(steps[..3].iter().flatten().all(|s| *s == Step::Eager));
    assert_eq!(steps[3], vec![Step::Begin, Step::Buffer, Step::Complete(0)]);
    assert_eq!(d.hot().len(), 1);
    assert_eq!(d.hot_instructions, 6);
}

#[test]
fn frees_after_a_sync_point_are_outside_the_segment() {
    // A loop whose iterations free the previous one's values first: iteration 1 has none to
    // free, yet it is the same sequence, so with threshold 2 the loop is hot after two
    // iterations and the third is matched.
    let mut d = StreamDetector::new(params(2));
    let mut steps = Vec::new();
    for i in 0..3u64 {
        let id = 100 + 10 * i;
        let mut body = Vec::new();
        if i > 0 {
            body.push(WorkerMsg::Free { key: k(id - 10) });
            body.push(WorkerMsg::Free { key: k(id - 9) });
        }
        body.push(exec(id, Op::Binary(BinaryOp::Add), &[1, 2]));
        body.push(exec(id + 1, Op::Unary(UnaryOp::Relu), &[id]));
        body.push(WorkerMsg::Free { key: k(id) });
        steps.push(body.iter().map(|m| d.observe(m, meta)).collect::<Vec<_>>());
        d.sync();
    }
    assert_eq!(steps[0], vec![Step::Eager; 3]);
    assert_eq!(
        steps[1],
        [vec![Step::Outside; 2], vec![Step::Eager; 3]].concat()
    );
    assert_eq!(
        steps[2],
        vec![
            Step::Outside,
            Step::Outside,
            Step::Begin,
            Step::Buffer,
            Step::Complete(0)
        ]
    );
    // A free in the middle of a segment is part of it (the third instruction above).
    assert_eq!(d.hot()[0].hashes.len(), 3);
    assert_eq!(d.total, 13);
}

#[test]
fn the_segment_that_will_become_hot_is_armed_for_recording() {
    let mut d = StreamDetector::new(params(2));
    let mut armed = Vec::new();
    let mut spec = Vec::new();
    for i in 0..4u64 {
        let id = 100 + 10 * i;
        d.observe(&exec(id, Op::Binary(BinaryOp::Add), &[1, 2]), meta);
        armed.push(d.armed());
        d.observe(&exec(id + 1, Op::Unary(UnaryOp::Relu), &[id]), meta);
        d.sync();
        spec.push(d.take_spec_hot());
    }
    // 1: first sight; 2: armed, and it ends hot; 3 and 4 are matched instead.
    assert_eq!(armed, vec![false, true, false, false]);
    let sig = d.hot()[0].sig;
    assert_eq!(spec, vec![None, Some(sig), None, None]);
}

#[test]
fn a_first_instruction_whose_segments_never_repeat_is_armed_twice_at_most() {
    let mut d = StreamDetector::new(params(2));
    let mut armed = 0;
    for i in 0..10u64 {
        // Same first instruction, then a chain of a new length each time.
        d.observe(&exec(100, Op::Binary(BinaryOp::Add), &[1, 2]), meta);
        armed += d.armed() as u32;
        for j in 0..=i {
            d.observe(&exec(101 + j, Op::Unary(UnaryOp::Relu), &[100 + j]), meta);
        }
        d.sync();
        assert_eq!(d.take_spec_hot(), None);
    }
    assert_eq!(armed, SPEC_MISSES);
    assert!(d.hot().is_empty());
}

#[test]
fn a_loop_without_sync_points_is_found_by_its_period() {
    let mut d = StreamDetector::new(params(3));
    // a = a + b; free old a; a = a * c; free old a — forever, never read.
    let mut a = 1;
    let mut hot_at = None;
    for i in 0..40 {
        let n = 100 + 2 * i;
        d.observe(&exec(n, Op::Binary(BinaryOp::Add), &[a, 2]), meta);
        d.observe(&WorkerMsg::Free { key: k(a) }, meta);
        d.observe(&exec(n + 1, Op::Binary(BinaryOp::Mul), &[n, 3]), meta);
        d.observe(&WorkerMsg::Free { key: k(n) }, meta);
        a = n + 1;
        if hot_at.is_none() && !d.hot().is_empty() {
            hot_at = Some(i);
        }
    }
    assert_eq!(d.hot().len(), 1, "one period, registered once");
    assert_eq!(d.hot()[0].hashes.len(), 4);
    assert!(hot_at.unwrap() <= 4);
    assert!(d.hot_instructions > 100);
}

#[test]
fn a_stream_repeating_a_disabled_sequence_goes_dormant_and_wakes_on_change() {
    let mut d = StreamDetector::new(params(2));
    let mut id = 100;
    let mut segment = |d: &mut StreamDetector, op: Op| -> Vec<Step> {
        let body = [
            exec(id, op, &[1, 2]),
            exec(id + 1, Op::Unary(UnaryOp::Relu), &[id]),
            WorkerMsg::Free { key: k(id) },
        ];
        id += 10;
        let s = body.iter().map(|m| d.observe(m, meta)).collect();
        d.sync();
        s
    };
    let add = Op::Binary(BinaryOp::Add);
    for _ in 0..2 {
        segment(&mut d, add.clone());
    }
    let sig = d.hot()[0].sig;
    assert_eq!(segment(&mut d, add.clone())[2], Step::Complete(0));
    assert!(!d.is_dormant());
    d.disable(sig);
    // The next segment is the disabled sequence: dormant for 4 segments, then 8, …
    segment(&mut d, add.clone());
    assert!(d.is_dormant());
    let total = d.total;
    for _ in 0..4 {
        assert!(d.is_dormant());
        assert!(segment(&mut d, add.clone())
            .iter()
            .all(|s| *s == Step::Eager));
    }
    assert_eq!(
        d.total,
        total + 12,
        "skipped instructions are still counted"
    );
    assert!(!d.is_dormant());
    segment(&mut d, add.clone()); // observed: the same disabled sequence again
    assert!(d.is_dormant());
    for _ in 0..8 {
        segment(&mut d, add.clone());
    }
    assert!(!d.is_dormant());
    // A different segment ends dormancy for good; wake() ends it at once.
    segment(&mut d, Op::Binary(BinaryOp::Mul));
    assert!(!d.is_dormant());
    segment(&mut d, add.clone());
    assert!(d.is_dormant());
    d.wake();
    assert!(!d.is_dormant());
}

/// A dormant stream that moves on to a loop of another length is watched again after one
/// skipped segment, not after the rest of its dormancy.
#[test]
fn a_dormant_stream_wakes_when_a_segment_changes_length() {
    let mut d = StreamDetector::new(params(2));
    let add = Op::Binary(BinaryOp::Add);
    let mut id = 100;
    let mut segment = |d: &mut StreamDetector, n: u64| {
        for j in 0..n {
            let x = if j == 0 { 1 } else { id + j - 1 };
            d.observe(&exec(id + j, add.clone(), &[x, 2]), meta);
        }
        id += 100;
        d.sync();
    };
    for _ in 0..3 {
        segment(&mut d, 3);
    }
    d.disable(d.hot()[0].sig);
    segment(&mut d, 3);
    assert!(d.is_dormant(), "dormant for 4 segments");
    segment(&mut d, 3);
    assert!(d.is_dormant(), "the same length: still dormant");
    segment(&mut d, 5);
    assert!(!d.is_dormant(), "another length wakes it");
    // The next segments are observed: the new loop becomes hot.
    segment(&mut d, 5);
    segment(&mut d, 5);
    assert_eq!(d.hot().len(), 2);
}

/// Two hot sequences that begin alike: the one that completed last is the first candidate
/// next time (it decides which plan a stream starts streaming through).
#[test]
fn the_sequence_that_completed_last_is_the_first_candidate() {
    let mut d = StreamDetector::new(params(2));
    let add = Op::Binary(BinaryOp::Add);
    let mut id = 100;
    // Both loops start with `x = a + b`; the first goes on with relu, the second with neg.
    let mut segment = |d: &mut StreamDetector, tail: UnaryOp| -> Option<u64> {
        d.observe(&exec(id, add.clone(), &[1, 2]), meta);
        let sig = d.active_sig();
        d.observe(&exec(id + 1, Op::Unary(tail), &[id]), meta);
        d.observe(&WorkerMsg::Free { key: k(id) }, meta);
        id += 10;
        d.sync();
        sig
    };
    for _ in 0..2 {
        segment(&mut d, UnaryOp::Relu);
    }
    for _ in 0..2 {
        segment(&mut d, UnaryOp::Neg);
    }
    assert_eq!(d.hot().len(), 2);
    let (relu, neg) = (d.hot()[0].sig, d.hot()[1].sig);
    assert_eq!(segment(&mut d, UnaryOp::Relu), Some(relu));
    assert_eq!(
        segment(&mut d, UnaryOp::Neg),
        Some(relu),
        "relu completed last"
    );
    assert_eq!(
        segment(&mut d, UnaryOp::Neg),
        Some(neg),
        "neg completed last"
    );
    assert_eq!(segment(&mut d, UnaryOp::Neg), Some(neg));
}

/// Instance `i` of a loop body: `x = w + b; y = relu(x); z = y * x; free x` (then a sync).
fn body(i: u64) -> Vec<WorkerMsg> {
    let id = 100 + 10 * i;
    vec![
        exec(id, Op::Binary(BinaryOp::Add), &[1, 2]),
        exec(id + 1, Op::Unary(UnaryOp::Relu), &[id]),
        exec(id + 2, Op::Binary(BinaryOp::Mul), &[id + 1, id]),
        WorkerMsg::Free { key: k(id) },
    ]
}

#[test]
fn known_hashes_leave_the_detector_as_observing_does() {
    // Two detectors see the same stream; once the body is hot, one is told each matched
    // instruction's hash (as a streamed run does) instead of computing it.
    let (mut full, mut fast) = (
        StreamDetector::new(params(2)),
        StreamDetector::new(params(2)),
    );
    for i in 0..6 {
        let msgs = body(i);
        let first = full.observe(&msgs[0], meta);
        assert_eq!(fast.observe(&msgs[0], meta), first);
        for m in &msgs[1..] {
            let want = full.observe(m, meta);
            let sig = fast.active_sig();
            let got = match sig.and_then(|sig| fast.expects(sig, fast.active_at())) {
                Some(h) => fast.observe_known(m, h),
                None => fast.observe(m, meta),
            };
            assert_eq!(got, want, "iteration {i}");
        }
        if i >= 2 {
            assert_eq!(
                first,
                Step::Begin,
                "iteration {i} is matched from its first instruction"
            );
        }
        assert_eq!(full.sync(), fast.sync());
    }
    assert_eq!(full.total, fast.total);
    assert_eq!(full.hot_instructions, fast.hot_instructions);
    assert_eq!(full.unique_sequences(), fast.unique_sequences());
    let sigs = |d: &StreamDetector| d.hot().iter().map(|h| h.sig).collect::<Vec<_>>();
    assert_eq!(sigs(&full), sigs(&fast));
}

#[test]
fn a_known_prefix_then_observing_names_external_inputs_alike() {
    // A run that stops mid-segment hands its external inputs over: the instruction observed
    // next hashes exactly as it would have. The body's third instruction reads a new external
    // input (3), and the deviating one reads another (4), then 3.
    let body = |i: u64| {
        let id = 100 + 10 * i;
        vec![
            exec(id, Op::Binary(BinaryOp::Add), &[1, 2]),
            exec(id + 1, Op::Unary(UnaryOp::Relu), &[id]),
            exec(id + 2, Op::Binary(BinaryOp::Mul), &[id + 1, 3]),
            exec(id + 3, Op::Binary(BinaryOp::Sub), &[id + 2, id]),
        ]
    };
    let (mut full, mut fast) = (
        StreamDetector::new(params(2)),
        StreamDetector::new(params(2)),
    );
    for i in 0..3 {
        for m in body(i) {
            full.observe(&m, meta);
            fast.observe(&m, meta);
        }
        full.sync();
        fast.sync();
    }
    let msgs = body(3);
    assert_eq!(full.observe(&msgs[0], meta), Step::Begin);
    assert_eq!(fast.observe(&msgs[0], meta), Step::Begin);
    let sig = fast.active_sig().expect("matching");
    for (at, m) in msgs.iter().enumerate().take(3).skip(1) {
        let h = fast.expects(sig, at).expect("a candidate");
        assert_eq!(fast.observe_known(m, h), full.observe(m, meta));
    }
    assert_eq!(fast.expects(sig, 1), None, "the match has moved on");
    let odd = exec(200, Op::Binary(BinaryOp::Add), &[4, 3]);
    let mut unadopted = fast.ext.clone();
    fast.adopt_externals(&[k(1), k(2), k(3)]);
    assert_eq!(fast.observe(&odd, meta), full.observe(&odd, meta));
    assert_eq!(full.sync(), fast.sync());
    assert_eq!(full.unique_sequences(), fast.unique_sequences());
    // Without the hand-over, 4 would have taken the number 3 has.
    let next = unadopted.len() as u32;
    assert_eq!(*unadopted.entry(k(4)).or_insert(next), 2);
}

#[test]
fn the_last_segment_tells_where_it_made_a_value() {
    // Two iterations of a loop whose second instruction's result the next iteration reads
    // (a parameter update), each ended by a sync point.
    let mut d = StreamDetector::new(params(2));
    let iteration = |d: &mut StreamDetector, i: u64, param: u64| {
        let id = 100 + 10 * i;
        d.observe(&WorkerMsg::Free { key: k(param - 5) }, meta); // outside: not counted
        d.observe(&exec(id, Op::Binary(BinaryOp::Mul), &[param, 2]), meta);
        d.observe(&exec(id + 1, Op::Binary(BinaryOp::Sub), &[param, id]), meta);
        d.observe(&WorkerMsg::Free { key: k(id) }, meta);
        d.sync();
        id + 1
    };
    let p1 = iteration(&mut d, 0, 6);
    let sig = d.made_in_last_segment(k(p1)).map(|x| x.0);
    assert!(sig.is_some(), "the parameter was made in the segment");
    assert_eq!(d.made_in_last_segment(k(p1)), Some((sig.unwrap(), 1)));
    assert_eq!(d.made_in_last_segment(k(100)), None, "freed in the segment");
    assert_eq!(d.made_in_last_segment(k(6)), None, "made before it");
    let p2 = iteration(&mut d, 1, p1);
    // The same sequence: the same signature and index.
    assert_eq!(d.made_in_last_segment(k(p2)), Some((sig.unwrap(), 1)));
    assert_eq!(d.made_in_last_segment(k(p1)), None, "two segments back");
    assert_eq!(d.hot()[0].sig, sig.unwrap());
}
