//! Tests of the line formatter: the fast path against `std::fmt`, numbers, sequence numbers.

use super::*;
use crate::log::{format, inline_ids, size_of, TextRecord};
use gt_core::TensorId;
use gt_ops::{BinaryOp, Op};
use gt_proto::{ClientMsg, WorkerMsg};

/// The line of `r`, and the line of `text` from a formatter in the same state.
fn both(f: &mut [Formatter; 2], r: &Record, text: TextRecord) -> (String, String) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    f[0].line(&mut a, r);
    f[1].line(&mut b, &Record::Text(Box::new(text)));
    let (a, b) = (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
    assert!(a.ends_with('\n') && a.matches(" | ").count() >= 6, "{a}");
    (a, b)
}

#[test]
fn hot_lines_equal_the_generic_formatting() {
    // Every hot record shape (client and worker `Exec` and `Free`, and workers' `EXEC` timing
    // spans), against the same message formatted the way rare events are (`format::*` through
    // `std::fmt`): short and long client and op names (pieces of one and several chunks), ids
    // from 0 to 20 digits, 0 to 2 inputs, times that need zero padding, and sequence numbers
    // and milliseconds that change width along the way.
    let ops = [
        Op::Binary(BinaryOp::Add),
        Op::Full {
            shape: gt_core::Shape::new([2, 3]),
            value: 1.5,
            dtype: gt_core::DType::F32,
        },
    ];
    let ids = [0u64, 7, 10, 99_999, 1 << 40, u64::MAX >> 1];
    let span_names = [
        "add",
        "matmul",
        "upload",
        "a-name-longer-than-one-chunk-of-32-bytes",
    ];
    let times = [0u64, 7, 999, 1000, 999_999, 1_000_000, 12_345_678_901];
    let names = ["t".to_string(), "n".repeat(40), "long-".repeat(30)];
    let mut f = [Formatter::new(), Formatter::new()];
    let mut checked = 0;
    for (s, name) in names.iter().enumerate() {
        let sid = SessionId(s as u32 + 1);
        for ff in &mut f {
            ff.line(
                &mut Vec::new(),
                &Record::Name {
                    sid,
                    name: name.clone(),
                },
            );
            for (n, op) in ops.iter().enumerate() {
                let define = Record::DefineOp {
                    n: n as u32,
                    op: Box::new(op.clone()),
                };
                ff.line(&mut Vec::new(), &define);
            }
            for (n, name) in span_names.iter().enumerate() {
                let define = Record::DefineName {
                    n: n as u16,
                    name: (*name).into(),
                };
                ff.line(&mut Vec::new(), &define);
            }
        }
        for round in 0..1700u64 {
            let at = 999_000 + round * 997;
            let ms = (at / 1000) as u32;
            let x = ids[round as usize % ids.len()];
            let y = ids[(round as usize / ids.len()) % ids.len()];
            let (n, op) = (round % 2, &ops[round as usize % 2]);
            let inputs: Vec<u64> = [x, y][..(round % 3) as usize].to_vec();
            let m = ClientMsg::Exec {
                out: TensorId(y),
                op: op.clone(),
                inputs: inputs.iter().map(|&i| TensorId(i)).collect(),
            };
            let (k, ins) = inline_ids(inputs.iter().copied());
            let hot = Record::ClientExec {
                ms,
                sid,
                out: TensorId(y),
                op: n as u32,
                n: k,
                ins,
            };
            let text = |kind, src, cmd, size, details| TextRecord {
                at,
                kind,
                src,
                cmd,
                size,
                details,
            };
            let t = text(
                Kind::Recv,
                Src::Client(sid),
                "Exec",
                size_of(&m),
                format::client_msg_details(&m),
            );
            let (a, b) = both(&mut f, &hot, t);
            assert_eq!(a, b);
            let m = ClientMsg::Free { id: TensorId(x) };
            let hot = Record::ClientFree {
                ms,
                sid,
                id: TensorId(x),
            };
            let t = text(
                Kind::Recv,
                Src::Client(sid),
                "Free",
                size_of(&m),
                format::client_msg_details(&m),
            );
            let (a, b) = both(&mut f, &hot, t);
            assert_eq!(a, b);
            let kind = if round % 5 == 0 {
                Kind::ModifierInject
            } else {
                Kind::WorkerSend
            };
            let w = WorkerId((round % 3) as u32);
            let keys: Vec<Key> = inputs.iter().map(|&i| Key(i)).collect();
            let m = WorkerMsg::Exec {
                out: Key(x),
                op: op.clone(),
                inputs: keys.iter().copied().collect(),
            };
            let hot = Record::WorkerExec {
                ms,
                kind,
                w,
                out: Key(x),
                op: n as u32,
                n: k,
                ins,
            };
            let t = text(
                kind,
                Src::Worker(w),
                "Exec",
                size_of(&m),
                format::worker_msg_details(&m),
            );
            let (a, b) = both(&mut f, &hot, t);
            assert_eq!(a, b);
            let m = WorkerMsg::Free { key: Key(y) };
            let hot = Record::WorkerFree {
                ms,
                kind,
                w,
                key: Key(y),
            };
            let t = text(
                kind,
                Src::Worker(w),
                "Free",
                size_of(&m),
                format::worker_msg_details(&m),
            );
            let (a, b) = both(&mut f, &hot, t);
            assert_eq!(a, b);
            // A worker's timing record of the same instruction.
            let span = gt_proto::ExecSpan {
                key: Key(x),
                op: span_names[round as usize % span_names.len()].into(),
                start_unix_ns: 0,
                dur_ns: times[(round as usize / 3) % times.len()],
            };
            let t_us = times[round as usize % times.len()];
            let hot = Record::Span {
                ms,
                w,
                key: span.key,
                name: (round as usize % span_names.len()) as u16,
                t_us,
                dur_ns: span.dur_ns,
            };
            let t = text(
                Kind::Exec,
                Src::Worker(w),
                "Timing",
                0,
                format::exec_span(&span, t_us),
            );
            let (a, b) = both(&mut f, &hot, t);
            assert_eq!(a, b);
            checked += 5;
        }
    }
    assert!(checked > 10_000, "sequence numbers reached five digits");
}

#[test]
fn records_stay_small() {
    // The core copies one per logged message; rare events are boxed to keep it so, and a
    // hot record's input count sits beside its other small fields.
    assert!(
        std::mem::size_of::<Record>() <= 40,
        "{}",
        std::mem::size_of::<Record>()
    );
}

#[test]
fn numbers_match_std_formatting() {
    for n in [
        0u64,
        7,
        9,
        10,
        42,
        99,
        100,
        101,
        999,
        1000,
        12345,
        1 << 40,
        u64::MAX,
    ] {
        let mut b = Vec::new();
        uint(&mut b, n);
        assert_eq!(b, n.to_string().into_bytes(), "{n}");
        let mut b = Vec::new();
        padded(&mut b, n, 4, b'0');
        assert_eq!(b, format!("{n:04}").into_bytes(), "{n}");
        let mut b = b"x".to_vec();
        let mut c = Cursor::new(&mut b, 0);
        c.size_column(n);
        c.uint(n);
        c.key(Key(n));
        c.finish();
        let k = Key(n);
        let want = format!("x{n:>10}B | {n}s{}:{}", k.session().0, k.local());
        assert_eq!(b, want.into_bytes(), "{n}");
    }
}

#[test]
fn sequence_numbers_count_up_across_widths_and_milliseconds() {
    let mut f = Formatter::new();
    let mut b = Vec::new();
    for seq in 0..10_200u64 {
        // A new millisecond every 7 lines; 1.5 s in.
        let at = 1_500_000 + seq / 7 * 1000;
        b.clear();
        f.at_ms(at / 1000);
        b.extend_from_slice(&f.prefix[..f.prefix_len]);
        f.count();
        let ms = at / 1000;
        let want = format!("{}.{:03}s | #{seq:04}", ms / 1000, ms % 1000);
        assert_eq!(String::from_utf8_lossy(&b), want);
    }
}
