//! A buffered hot sequence in canonical form: every input named as an earlier instruction of the
//! trace ("node") or as external input #j (first-use order), plus the trace's live-outs and the
//! external tensors it frees. Binding is done for every run; a run may use a compiled plan only
//! when its canonical form equals the plan's (this guards against hash collisions and against
//! streams that look alike but are not).

use gt_core::Key;
use gt_proto::WorkerMsg;
use rustc_hash::FxHashMap;

/// An input of a trace instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// The result of instruction `.0` of the trace.
    Node(u32),
    /// External input `.0`.
    Ext(u32),
}

#[derive(Clone, Copy)]
enum Name {
    Node(u32),
    Ext(u32),
    Freed,
}

/// The canonical form of one instance of a trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bound {
    /// Inputs of every instruction, concatenated in order (frees contribute their one key).
    pub args: Vec<Arg>,
    /// The external tensors, by first use.
    pub ext: Vec<Key>,
    /// External inputs the trace frees (they leave the tensor table after the run).
    pub free_ext: Vec<u32>,
    /// Results still named after the trace: `(node, key)`, in instruction order.
    pub live: Vec<(u32, Key)>,
}

impl Bound {
    /// Whether two instances have the same structure (they may differ in tensor ids).
    pub fn same_shape(&self, other: &Bound) -> bool {
        self.args == other.args
            && self.ext.len() == other.ext.len()
            && self.free_ext == other.free_ext
            && self.live.len() == other.live.len()
            && self.live.iter().zip(&other.live).all(|(a, b)| a.0 == b.0)
    }
}

/// Reusable scratch space for [`bind`].
#[derive(Default)]
pub struct Scratch {
    names: FxHashMap<Key, Name>,
}

/// The canonical form of `msgs` (only `Exec`, `Upload` and `Free`), or `None` when the trace
/// uses a tensor after freeing it (left to eager execution, which reports the error).
pub fn bind(msgs: &[WorkerMsg], scratch: &mut Scratch) -> Option<Bound> {
    let names = &mut scratch.names;
    names.clear();
    let mut b = Bound::default();
    let use_key = |k: Key, names: &mut FxHashMap<Key, Name>, b: &mut Bound| -> Option<Arg> {
        match names.get(&k) {
            Some(Name::Node(n)) => Some(Arg::Node(*n)),
            Some(Name::Ext(j)) => Some(Arg::Ext(*j)),
            Some(Name::Freed) => None,
            None => {
                let j = b.ext.len() as u32;
                b.ext.push(k);
                names.insert(k, Name::Ext(j));
                Some(Arg::Ext(j))
            }
        }
    };
    for (i, m) in msgs.iter().enumerate() {
        match m {
            WorkerMsg::Exec { out, inputs, .. } => {
                for &k in inputs {
                    let a = use_key(k, names, &mut b)?;
                    b.args.push(a);
                }
                names.insert(*out, Name::Node(i as u32));
            }
            WorkerMsg::Upload { out, .. } => {
                names.insert(*out, Name::Node(i as u32));
            }
            WorkerMsg::Free { key } => {
                let a = use_key(*key, names, &mut b)?;
                b.args.push(a);
                if let Arg::Ext(j) = a {
                    b.free_ext.push(j);
                }
                names.insert(*key, Name::Freed);
            }
            _ => return None,
        }
    }
    let mut live: Vec<(u32, Key)> = names
        .iter()
        .filter_map(|(k, n)| match n {
            Name::Node(i) => Some((*i, *k)),
            _ => None,
        })
        .collect();
    live.sort_unstable_by_key(|x| x.0);
    b.live = live;
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gt_core::SessionId;
    use gt_ops::{BinaryOp, Op};

    fn k(n: u64) -> Key {
        Key::new(SessionId(2), n)
    }

    #[test]
    fn binding_names_nodes_externals_frees_and_live_outs() {
        let add = |out, a, b| WorkerMsg::Exec {
            out: k(out),
            op: Op::Binary(BinaryOp::Add),
            inputs: [k(a), k(b)].into_iter().collect(),
        };
        let msgs = [
            add(10, 1, 2),
            add(11, 10, 1),
            WorkerMsg::Free { key: k(10) },
            WorkerMsg::Free { key: k(2) },
        ];
        let b = bind(&msgs, &mut Scratch::default()).unwrap();
        assert_eq!(b.ext, vec![k(1), k(2)]);
        assert_eq!(
            b.args,
            vec![
                Arg::Ext(0),
                Arg::Ext(1),
                Arg::Node(0),
                Arg::Ext(0),
                Arg::Node(0),
                Arg::Ext(1)
            ]
        );
        assert_eq!(b.free_ext, vec![1]);
        assert_eq!(b.live, vec![(1, k(11))]);
        // Use after free is not bound.
        let bad = [
            add(10, 1, 2),
            WorkerMsg::Free { key: k(10) },
            add(11, 10, 1),
        ];
        assert!(bind(&bad, &mut Scratch::default()).is_none());
    }
}
