//! The 128-bit vector inner loop of the JIT, for the common all-float case: when every node has
//! one float dtype and every input is read with last-axis stride 1 or 0, the row segment runs
//! 4 (f32) or 2 (f64) elements per iteration before the scalar loop finishes the tail.
//! Transcendentals call the batch form of their eager function once per vector (see
//! [`super::loop_jit_sym`]). Lane-wise IEEE arithmetic and compare-and-blend give exactly the scalar bits
//! (relu, sign, maximum and minimum use the same ordered comparisons as `gt_ops::scalar`).

use super::loop_check::LoopPlan;
use super::loop_ir::{LoopNode, LoopSpec};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use gt_core::DType;
use gt_ops::{BinaryOp, UnaryOp};

/// The vector type and lane count for `spec`'s inner loop, or `None` when it must stay scalar.
pub fn vector_type(spec: &LoopSpec, plan: &LoopPlan) -> Option<(Type, usize)> {
    let last = plan.dims.len() - 1;
    let d = *plan.dtypes.first()?;
    if !d.is_float() || plan.dtypes.iter().any(|&x| x != d) {
        return None;
    }
    if plan.strides.iter().any(|s| s[last] != 0 && s[last] != 1) {
        return None;
    }
    let wide = d == DType::F64;
    if spec
        .nodes
        .iter()
        .any(|n| matches!(n, LoopNode::Compare(..) | LoopNode::Where(..)))
    {
        return None;
    }
    Some(if wide {
        (types::F64X2, 2)
    } else {
        (types::F32X4, 4)
    })
}

/// A vector of `v` in every lane.
fn splat_const(b: &mut FunctionBuilder, vty: Type, v: f64) -> Value {
    let s = if vty == types::F32X4 {
        b.ins().f32const(Ieee32::with_bits((v as f32).to_bits()))
    } else {
        b.ins().f64const(Ieee64::with_bits(v.to_bits()))
    };
    b.ins().splat(vty, s)
}

/// Lanes of `x` where the integer mask `m` is set, else lanes of `y`.
fn blend(b: &mut FunctionBuilder, vty: Type, m: Value, x: Value, y: Value) -> Value {
    let m = b.ins().bitcast(vty, MemFlagsData::new(), m);
    b.ins().bitselect(m, x, y)
}

/// Emits a variant node (not a `Load`, a `Const` or a call; [`vector_type`] accepted the
/// program) on vector operands `v`.
pub fn emit_vector_node(
    b: &mut FunctionBuilder,
    vty: Type,
    node: &LoopNode,
    v: &[Option<Value>],
) -> Value {
    let val = |i: &u32| v[*i as usize].expect("operands are emitted before their users");
    match node {
        LoopNode::Unary(op, a) => {
            let x = val(a);
            match op {
                UnaryOp::Neg => b.ins().fneg(x),
                UnaryOp::Sqrt => b.ins().sqrt(x),
                UnaryOp::Abs => b.ins().fabs(x),
                UnaryOp::Relu => {
                    let zero = splat_const(b, vty, 0.0);
                    let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
                    blend(b, vty, neg, zero, x)
                }
                UnaryOp::Sign => {
                    let zero = splat_const(b, vty, 0.0);
                    let one = splat_const(b, vty, 1.0);
                    let minus = splat_const(b, vty, -1.0);
                    let pos = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                    let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
                    let r = blend(b, vty, neg, minus, x);
                    blend(b, vty, pos, one, r)
                }
                UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sigmoid | UnaryOp::Tanh | UnaryOp::Erf => {
                    unreachable!("the vector loop builder emits calls")
                }
            }
        }
        LoopNode::Binary(op, x, y) => {
            let (x, y) = (val(x), val(y));
            match op {
                BinaryOp::Add => b.ins().fadd(x, y),
                BinaryOp::Sub => b.ins().fsub(x, y),
                BinaryOp::Mul => b.ins().fmul(x, y),
                BinaryOp::Div => b.ins().fdiv(x, y),
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    let cc = if *op == BinaryOp::Maximum {
                        FloatCC::GreaterThan
                    } else {
                        FloatCC::LessThan
                    };
                    let nan = b.ins().fcmp(FloatCC::Unordered, x, x);
                    let wins = b.ins().fcmp(cc, x, y);
                    let m = b.ins().bor(nan, wins);
                    blend(b, vty, m, x, y)
                }
                BinaryOp::Pow => unreachable!("the vector loop builder emits calls"),
            }
        }
        // Same dtype throughout: a cast is the identity.
        LoopNode::Cast(_, a) => val(a),
        LoopNode::Load(_)
        | LoopNode::Const { .. }
        | LoopNode::Compare(..)
        | LoopNode::Where(..) => {
            unreachable!("emitted by the loop builder or never vectorized")
        }
    }
}
