//! Cranelift code for one [`LoopNode`] (everything but loads): the per-element semantics of
//! `gt_ops::scalar` and the eager conversions, written as instructions. Comparisons are ordered
//! (NaN compares false except `ne`), `relu`/`maximum`/`minimum`/`sign` are compare-and-select
//! so NaN propagates exactly as in the eager kernels, and transcendentals call the eager
//! functions (see [`super::loop_jit_sym`]).

use super::loop_conv::const_bits;
use super::loop_ir::LoopNode;
use super::loop_jit_sym::{binary_symbol, unary_symbol};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{types, FuncRef, InstBuilder, Type, Value};
use cranelift_frontend::FunctionBuilder;
use gt_core::DType;
use gt_ops::{BinaryOp, CompareOp, UnaryOp};
use std::collections::HashMap;

/// The Cranelift type holding a dtype's element (bool: one byte, 0 or 1).
pub fn ir_type(d: DType) -> Type {
    match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I64 => types::I64,
        DType::Bool => types::I8,
    }
}

/// A float constant of type `ty` with exactly the value `v`.
fn fconst(b: &mut FunctionBuilder, ty: Type, v: f64) -> Value {
    if ty == types::F32 {
        b.ins().f32const(Ieee32::with_bits((v as f32).to_bits()))
    } else {
        b.ins().f64const(Ieee64::with_bits(v.to_bits()))
    }
}

/// The value of a `Const` node, with the eager kernels' conversion of the scalar.
pub fn emit_const(b: &mut FunctionBuilder, value: f64, dtype: DType) -> Value {
    let bits = const_bits(value, dtype);
    match dtype {
        DType::F32 => b.ins().f32const(Ieee32::with_bits(bits as u32)),
        DType::F64 => b.ins().f64const(Ieee64::with_bits(bits)),
        DType::I64 => b.ins().iconst(types::I64, bits as i64),
        DType::Bool => b.ins().iconst(types::I8, bits as i64),
    }
}

/// Emits node `node` (not a `Load` or `Const`) given its operands' values `v` and dtypes `d`
/// (indexed by node). `calls` maps the transcendental symbols to their function references.
pub fn emit_node(
    b: &mut FunctionBuilder,
    node: &LoopNode,
    v: &[Option<Value>],
    d: &[DType],
    calls: &HashMap<&'static str, FuncRef>,
) -> Value {
    let val = |i: &u32| v[*i as usize].expect("operands are emitted before their users");
    match node {
        LoopNode::Load(_) | LoopNode::Const { .. } => {
            unreachable!("loads and constants are emitted by the loop builder")
        }
        LoopNode::Unary(op, a) => {
            let wide = d[*a as usize] == DType::F64;
            unary(b, *op, val(a), wide, calls)
        }
        LoopNode::Binary(op, x, y) => {
            let wide = d[*x as usize] == DType::F64;
            binary(b, *op, val(x), val(y), wide, calls)
        }
        LoopNode::Compare(op, x, y) => compare(b, *op, val(x), val(y), d[*x as usize]),
        LoopNode::Where(c, x, y) => b.ins().select(val(c), val(x), val(y)),
        LoopNode::Cast(to, a) => cast(b, val(a), d[*a as usize], *to),
    }
}

fn call1(b: &mut FunctionBuilder, f: FuncRef, x: Value) -> Value {
    let inst = b.ins().call(f, &[x]);
    b.inst_results(inst)[0]
}

fn unary(
    b: &mut FunctionBuilder,
    op: UnaryOp,
    x: Value,
    wide: bool,
    calls: &HashMap<&'static str, FuncRef>,
) -> Value {
    if let Some(sym) = unary_symbol(op, wide) {
        return call1(b, calls[sym], x);
    }
    let ty = if wide { types::F64 } else { types::F32 };
    match op {
        UnaryOp::Neg => b.ins().fneg(x),
        UnaryOp::Sqrt => b.ins().sqrt(x),
        UnaryOp::Abs => b.ins().fabs(x),
        // `x < 0 ? 0 : x`: NaN and -0 stay themselves, as in `gt_ops::scalar`.
        UnaryOp::Relu => {
            let zero = fconst(b, ty, 0.0);
            let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
            b.ins().select(neg, zero, x)
        }
        // `x > 0 ? 1 : x < 0 ? -1 : x` (0, -0 and NaN stay themselves).
        UnaryOp::Sign => {
            let (zero, one, minus) = (fconst(b, ty, 0.0), fconst(b, ty, 1.0), fconst(b, ty, -1.0));
            let pos = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
            let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
            let r = b.ins().select(neg, minus, x);
            b.ins().select(pos, one, r)
        }
        UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sigmoid | UnaryOp::Tanh | UnaryOp::Erf => {
            unreachable!("{op:?} calls its eager function")
        }
    }
}

fn binary(
    b: &mut FunctionBuilder,
    op: BinaryOp,
    x: Value,
    y: Value,
    wide: bool,
    calls: &HashMap<&'static str, FuncRef>,
) -> Value {
    if let Some(sym) = binary_symbol(op, wide) {
        let inst = b.ins().call(calls[sym], &[x, y]);
        return b.inst_results(inst)[0];
    }
    match op {
        BinaryOp::Add => b.ins().fadd(x, y),
        BinaryOp::Sub => b.ins().fsub(x, y),
        BinaryOp::Mul => b.ins().fmul(x, y),
        BinaryOp::Div => b.ins().fdiv(x, y),
        // `x.is_nan() || x > y ? x : y` (NaN wins, as in `gt_ops::scalar::max_nan`).
        BinaryOp::Maximum => {
            let nan = b.ins().fcmp(FloatCC::Unordered, x, x);
            let gt = b.ins().fcmp(FloatCC::GreaterThan, x, y);
            let pick = b.ins().bor(nan, gt);
            b.ins().select(pick, x, y)
        }
        BinaryOp::Minimum => {
            let nan = b.ins().fcmp(FloatCC::Unordered, x, x);
            let lt = b.ins().fcmp(FloatCC::LessThan, x, y);
            let pick = b.ins().bor(nan, lt);
            b.ins().select(pick, x, y)
        }
        BinaryOp::Pow => unreachable!("pow calls its eager function"),
    }
}

/// `x op y` as a 0/1 byte, compared in dtype `d` (i64 signed, bool unsigned).
fn compare(b: &mut FunctionBuilder, op: CompareOp, x: Value, y: Value, d: DType) -> Value {
    if d.is_float() {
        let cc = match op {
            CompareOp::Eq => FloatCC::Equal,
            CompareOp::Ne => FloatCC::NotEqual,
            CompareOp::Lt => FloatCC::LessThan,
            CompareOp::Le => FloatCC::LessThanOrEqual,
            CompareOp::Gt => FloatCC::GreaterThan,
            CompareOp::Ge => FloatCC::GreaterThanOrEqual,
        };
        return b.ins().fcmp(cc, x, y);
    }
    let signed = d == DType::I64;
    let cc = match (op, signed) {
        (CompareOp::Eq, _) => IntCC::Equal,
        (CompareOp::Ne, _) => IntCC::NotEqual,
        (CompareOp::Lt, true) => IntCC::SignedLessThan,
        (CompareOp::Le, true) => IntCC::SignedLessThanOrEqual,
        (CompareOp::Gt, true) => IntCC::SignedGreaterThan,
        (CompareOp::Ge, true) => IntCC::SignedGreaterThanOrEqual,
        (CompareOp::Lt, false) => IntCC::UnsignedLessThan,
        (CompareOp::Le, false) => IntCC::UnsignedLessThanOrEqual,
        (CompareOp::Gt, false) => IntCC::UnsignedGreaterThan,
        (CompareOp::Ge, false) => IntCC::UnsignedGreaterThanOrEqual,
    };
    b.ins().icmp(cc, x, y)
}

/// `x` converted from `from` to `to` like the eager `cast` (see [`super::loop_conv::Conv`]).
fn cast(b: &mut FunctionBuilder, x: Value, from: DType, to: DType) -> Value {
    if from == to {
        return x;
    }
    let ty = ir_type(to);
    match (from, to) {
        (DType::F32, DType::F64) => b.ins().fpromote(ty, x),
        (DType::F64, DType::F32) => b.ins().fdemote(ty, x),
        // Truncation toward zero, saturating, NaN to 0: Rust's `as`.
        (DType::F32 | DType::F64, DType::I64) => b.ins().fcvt_to_sint_sat(ty, x),
        (DType::I64, DType::F32 | DType::F64) => b.ins().fcvt_from_sint(ty, x),
        (DType::F32 | DType::F64, DType::Bool) => {
            let zero = fconst(b, ir_type(from), 0.0);
            b.ins().fcmp(FloatCC::NotEqual, x, zero)
        }
        (DType::I64 | DType::Bool, DType::Bool) => b.ins().icmp_imm_s(IntCC::NotEqual, x, 0),
        (DType::Bool, DType::F32 | DType::F64) => {
            let set = b.ins().icmp_imm_s(IntCC::NotEqual, x, 0);
            let (one, zero) = (fconst(b, ty, 1.0), fconst(b, ty, 0.0));
            b.ins().select(set, one, zero)
        }
        (DType::Bool, DType::I64) => {
            let set = b.ins().icmp_imm_s(IntCC::NotEqual, x, 0);
            b.ins().uextend(ty, set)
        }
        (DType::F32, DType::F32) | (DType::F64, DType::F64) | (DType::I64, DType::I64) => {
            unreachable!("equal dtypes return early")
        }
    }
}
