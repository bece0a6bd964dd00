//! The Rust functions JIT-compiled loops call for transcendentals: `extern "C"` wrappers around
//! the very `gt_ops::scalar` functions the eager kernels inline, instantiated at f32 and f64, so a
//! fused `exp` or `pow` gives the same bits as the eager op. Cheap ops (arithmetic, sqrt, abs,
//! comparisons, selects) are emitted inline instead.

use gt_ops::scalar::{binary, unary};
use gt_ops::{BinaryOp, UnaryOp};

macro_rules! unary_fns {
    ($($name:ident: $t:ty, $op:ident;)*) => {
        $(
            extern "C" fn $name(x: $t) -> $t {
                unary(UnaryOp::$op, x)
            }
        )*
    };
}

unary_fns! {
    gt_exp_f32: f32, Exp;
    gt_exp_f64: f64, Exp;
    gt_log_f32: f32, Log;
    gt_log_f64: f64, Log;
    gt_tanh_f32: f32, Tanh;
    gt_tanh_f64: f64, Tanh;
    gt_erf_f32: f32, Erf;
    gt_erf_f64: f64, Erf;
    gt_sigmoid_f32: f32, Sigmoid;
    gt_sigmoid_f64: f64, Sigmoid;
}

extern "C" fn gt_pow_f32(a: f32, b: f32) -> f32 {
    binary(BinaryOp::Pow, a, b)
}

extern "C" fn gt_pow_f64(a: f64, b: f64) -> f64 {
    binary(BinaryOp::Pow, a, b)
}

/// The symbol a unary op calls at the given float width (`f64` when `wide`), or `None` when the
/// op is emitted inline.
pub fn unary_symbol(op: UnaryOp, wide: bool) -> Option<&'static str> {
    let pair = match op {
        UnaryOp::Exp => ("gt_exp_f32", "gt_exp_f64"),
        UnaryOp::Log => ("gt_log_f32", "gt_log_f64"),
        UnaryOp::Tanh => ("gt_tanh_f32", "gt_tanh_f64"),
        UnaryOp::Erf => ("gt_erf_f32", "gt_erf_f64"),
        UnaryOp::Sigmoid => ("gt_sigmoid_f32", "gt_sigmoid_f64"),
        UnaryOp::Neg | UnaryOp::Sqrt | UnaryOp::Relu | UnaryOp::Abs | UnaryOp::Sign => return None,
    };
    Some(if wide { pair.1 } else { pair.0 })
}

/// The symbol a binary op calls, or `None` when it is emitted inline.
pub fn binary_symbol(op: BinaryOp, wide: bool) -> Option<&'static str> {
    match op {
        BinaryOp::Pow => Some(if wide { "gt_pow_f64" } else { "gt_pow_f32" }),
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Maximum
        | BinaryOp::Minimum => None,
    }
}

/// Every symbol with its address, for the JIT's symbol table.
pub fn symbols() -> [(&'static str, *const u8); 12] {
    [
        ("gt_exp_f32", gt_exp_f32 as *const u8),
        ("gt_exp_f64", gt_exp_f64 as *const u8),
        ("gt_log_f32", gt_log_f32 as *const u8),
        ("gt_log_f64", gt_log_f64 as *const u8),
        ("gt_tanh_f32", gt_tanh_f32 as *const u8),
        ("gt_tanh_f64", gt_tanh_f64 as *const u8),
        ("gt_erf_f32", gt_erf_f32 as *const u8),
        ("gt_erf_f64", gt_erf_f64 as *const u8),
        ("gt_sigmoid_f32", gt_sigmoid_f32 as *const u8),
        ("gt_sigmoid_f64", gt_sigmoid_f64 as *const u8),
        ("gt_pow_f32", gt_pow_f32 as *const u8),
        ("gt_pow_f64", gt_pow_f64 as *const u8),
    ]
}
