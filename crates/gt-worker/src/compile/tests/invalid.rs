//! Invalid specs are rejected by every generator with an error naming what is wrong.

use super::*;
use gt_ops::{BinaryOp, CompareOp, UnaryOp};

fn input(dtype: DType, strides: &[isize], offset: usize) -> LoopInput {
    LoopInput {
        dtype,
        offset,
        strides: strides.into(),
    }
}

fn spec(inputs: Vec<LoopInput>, nodes: Vec<LoopNode>, outputs: Vec<u32>) -> LoopSpec {
    LoopSpec {
        shape: Shape::new([2, 3]),
        inputs,
        nodes,
        outputs,
    }
}

/// Asserts every generator rejects `spec` with an error containing each of `needles`.
fn rejects(spec: &LoopSpec, needles: &[&str]) {
    for (name, generate) in generators() {
        let err = match generate(spec) {
            Ok(_) => panic!("{name} accepted {spec:?}"),
            Err(e) => e.to_string(),
        };
        for n in needles {
            assert!(err.contains(n), "{name}: error {err:?} lacks {n:?}");
        }
    }
}

#[test]
fn invalid_specs_are_rejected_with_clear_errors() {
    let f32_in = || input(DType::F32, &[3, 1], 0);
    let load = LoopNode::Load(0);
    rejects(
        &spec(vec![f32_in()], vec![load.clone()], vec![]),
        &["no outputs"],
    );
    rejects(
        &spec(vec![f32_in()], vec![load.clone()], vec![1]),
        &["output 0 is node 1", "1 nodes"],
    );
    rejects(
        &spec(vec![f32_in()], vec![LoopNode::Load(1)], vec![0]),
        &["node 0 loads input 1", "1 inputs"],
    );
    rejects(
        &spec(
            vec![f32_in()],
            vec![load.clone(), LoopNode::Unary(UnaryOp::Exp, 1)],
            vec![1],
        ),
        &["node 1", "uses node 1", "not defined before it"],
    );
    rejects(
        &spec(
            vec![f32_in()],
            vec![load.clone(), LoopNode::Unary(UnaryOp::Exp, 7)],
            vec![1],
        ),
        &["uses node 7"],
    );
    rejects(
        &spec(
            vec![input(DType::F32, &[1], 0)],
            vec![load.clone()],
            vec![0],
        ),
        &["input 0 has 1 strides", "rank 2"],
    );
    rejects(
        &spec(
            vec![input(DType::F32, &[-3, 1], 2)],
            vec![load.clone()],
            vec![0],
        ),
        &["input 0", "before the start of its storage"],
    );
    let i64_in = input(DType::I64, &[3, 1], 0);
    rejects(
        &spec(
            vec![i64_in.clone()],
            vec![load.clone(), LoopNode::Unary(UnaryOp::Exp, 0)],
            vec![1],
        ),
        &["dtype", "exp needs a float operand", "int64"],
    );
    rejects(
        &spec(
            vec![i64_in.clone()],
            vec![load.clone(), LoopNode::Binary(BinaryOp::Add, 0, 0)],
            vec![1],
        ),
        &["add needs a float operand"],
    );
    let f64_in = input(DType::F64, &[3, 1], 0);
    rejects(
        &spec(
            vec![f32_in(), f64_in.clone()],
            vec![
                load.clone(),
                LoopNode::Load(1),
                LoopNode::Binary(BinaryOp::Mul, 0, 1),
            ],
            vec![2],
        ),
        &["node 2", "different dtypes", "float32", "float64"],
    );
    rejects(
        &spec(
            vec![f32_in(), f64_in],
            vec![
                load.clone(),
                LoopNode::Load(1),
                LoopNode::Compare(CompareOp::Lt, 0, 1),
            ],
            vec![2],
        ),
        &["different dtypes"],
    );
    rejects(
        &spec(
            vec![f32_in()],
            vec![load.clone(), LoopNode::Where(0, 0, 0)],
            vec![1],
        ),
        &["condition of where must be bool"],
    );
    // A valid spec for contrast: every generator accepts it.
    let ok = spec(
        vec![
            input(DType::F32, &[0, 1], 0),
            input(DType::Bool, &[-3, -1], 5),
        ],
        vec![load, LoopNode::Load(1), LoopNode::Where(1, 0, 0)],
        vec![2],
    );
    for (name, generate) in generators() {
        generate(&ok).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
