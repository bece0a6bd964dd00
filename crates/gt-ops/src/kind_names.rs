//! Op families by op *name*, for consumers that only see names (worker statistics'
//! `ops_by_name`, instruction-log lines): [`OpKind::of_name`] and [`OpKind::label`].

use crate::op::OpKind;

impl OpKind {
    /// Every family, in display order.
    pub const ALL: [OpKind; 6] = [
        OpKind::Creation,
        OpKind::Elementwise,
        OpKind::MatMul,
        OpKind::Reduce,
        OpKind::View,
        OpKind::Index,
    ];

    /// The lower-case label (`creation`, `elementwise`, `matmul`, `reduce`, `view`, `index`).
    pub fn label(self) -> &'static str {
        match self {
            OpKind::Creation => "creation",
            OpKind::Elementwise => "elementwise",
            OpKind::MatMul => "matmul",
            OpKind::Reduce => "reduce",
            OpKind::View => "view",
            OpKind::Index => "index",
        }
    }

    /// The family of the op named `name` (as [`crate::Op::name`] spells it); `None` for names
    /// that are not ops (`upload`, `send`, `recv`…). Elementwise is every unary, binary and
    /// comparison name, so the match lists the other families.
    pub fn of_name(name: &str) -> Option<OpKind> {
        Some(match name {
            "full" | "arange" | "rand" | "randn" => OpKind::Creation,
            "matmul" => OpKind::MatMul,
            "sum" | "mean" | "max" | "min" | "argmax" | "argmin" => OpKind::Reduce,
            "reshape" | "permute" | "slice" | "expand" => OpKind::View,
            "cat" | "index_select" | "gather" | "index_add" | "scatter_add" | "slice_assign" => {
                OpKind::Index
            }
            "upload" | "send" | "recv" | "read" | "alias" | "free" | "" => return None,
            _ => OpKind::Elementwise,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::op::*;
    use gt_core::DType;

    #[test]
    fn names_map_to_the_same_family_as_ops() {
        let ops = [
            Op::Full {
                shape: [2].into(),
                value: 0.0,
                dtype: DType::F32,
            },
            Op::Unary(UnaryOp::Exp),
            Op::Binary(BinaryOp::Maximum),
            Op::Compare(CompareOp::Le),
            Op::Where,
            Op::Cast { dtype: DType::F64 },
            Op::MatMul,
            Op::Reduce {
                op: ReduceOp::Max,
                axes: Default::default(),
                keepdim: false,
            },
            Op::ArgReduce {
                op: ArgOp::ArgMin,
                axis: 0,
                keepdim: false,
            },
            Op::Reshape { shape: [2].into() },
            Op::Expand { shape: [2].into() },
            Op::Permute {
                perm: Default::default(),
            },
            Op::Slice {
                specs: Default::default(),
            },
            Op::Gather { axis: 0 },
            Op::ScatterAdd { axis: 0 },
            Op::IndexSelect { axis: 0 },
            Op::IndexAdd { axis: 0 },
            Op::Cat { axis: 0 },
        ];
        let all = ops
            .into_iter()
            .chain(UnaryOp::ALL.map(Op::Unary))
            .chain(BinaryOp::ALL.map(Op::Binary))
            .chain(CompareOp::ALL.map(Op::Compare))
            .chain(ReduceOp::ALL.map(|op| Op::Reduce {
                op,
                axes: Default::default(),
                keepdim: false,
            }));
        for op in all {
            assert_eq!(OpKind::of_name(op.name()), Some(op.kind()), "{}", op.name());
        }
        assert_eq!(OpKind::of_name("upload"), None);
    }
}
