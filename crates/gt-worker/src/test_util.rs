//! Helpers shared by the crate's unit tests: keys of one client stream and the instructions
//! that name them.

use gt_core::{Key, SessionId};
use gt_ops::Op;
use gt_proto::WorkerMsg;

/// Tensor `n` of session 1.
pub(crate) fn key(n: u64) -> Key {
    Key::new(SessionId(1), n)
}

/// `out = op(ins…)`, every key in session 1.
pub(crate) fn exec(out: u64, op: Op, ins: &[u64]) -> WorkerMsg {
    WorkerMsg::Exec {
        out: key(out),
        op,
        inputs: ins.iter().map(|&i| key(i)).collect(),
    }
}
