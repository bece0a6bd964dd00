//! The Rust functions JIT-compiled loops call for transcendentals: `extern "C"` wrappers around
//! the very `gt_ops::scalar` functions the eager kernels inline, instantiated at f32 and f64, so a
//! fused `exp` or `pow` gives the same bits as the eager op. Cheap ops (arithmetic, sqrt, abs,
//! comparisons, selects) are emitted inline instead.

use gt_ops::scalar::{binary, unary};
use gt_ops::{BinaryOp, UnaryOp};

// Each op has a scalar form (one element) and a batch form (the lanes of a vector, in place),
// which the vector loop calls once per vector instead of once per lane.
macro_rules! unary_fns {
    ($($name:ident, $batch:ident: $t:ty, $op:ident;)*) => {
        $(
            extern "C" fn $name(x: $t) -> $t {
                unary(UnaryOp::$op, x)
            }

            /// # Safety
            /// `x` points at `n` elements.
            unsafe extern "C" fn $batch(x: *mut $t, n: usize) {
                for v in std::slice::from_raw_parts_mut(x, n) {
                    *v = unary(UnaryOp::$op, *v);
                }
            }
        )*
    };
}

unary_fns! {
    gt_exp_f32, gt_exp_f32_v: f32, Exp;
    gt_exp_f64, gt_exp_f64_v: f64, Exp;
    gt_log_f32, gt_log_f32_v: f32, Log;
    gt_log_f64, gt_log_f64_v: f64, Log;
    gt_tanh_f32, gt_tanh_f32_v: f32, Tanh;
    gt_tanh_f64, gt_tanh_f64_v: f64, Tanh;
    gt_erf_f32, gt_erf_f32_v: f32, Erf;
    gt_erf_f64, gt_erf_f64_v: f64, Erf;
    gt_sigmoid_f32, gt_sigmoid_f32_v: f32, Sigmoid;
    gt_sigmoid_f64, gt_sigmoid_f64_v: f64, Sigmoid;
}

macro_rules! pow_fns {
    ($name:ident, $batch:ident: $t:ty) => {
        extern "C" fn $name(a: $t, b: $t) -> $t {
            binary(BinaryOp::Pow, a, b)
        }

        /// # Safety
        /// `a` and `b` point at `n` elements each; `a` receives the results.
        unsafe extern "C" fn $batch(a: *mut $t, b: *const $t, n: usize) {
            let b = std::slice::from_raw_parts(b, n);
            for (x, &y) in std::slice::from_raw_parts_mut(a, n).iter_mut().zip(b) {
                *x = binary(BinaryOp::Pow, *x, y);
            }
        }
    };
}

pow_fns!(gt_pow_f32, gt_pow_f32_v: f32);
pow_fns!(gt_pow_f64, gt_pow_f64_v: f64);

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

/// The batch form of scalar symbol `sym` (same function, applied to the lanes in place).
pub fn batch_symbol(sym: &str) -> &'static str {
    SYMBOLS
        .iter()
        .find(|(s, _)| *s == sym)
        .map(|(_, b)| *b)
        .expect("every scalar symbol has a batch form")
}

/// Scalar symbols with their batch forms.
const SYMBOLS: [(&str, &str); 12] = [
    ("gt_exp_f32", "gt_exp_f32_v"),
    ("gt_exp_f64", "gt_exp_f64_v"),
    ("gt_log_f32", "gt_log_f32_v"),
    ("gt_log_f64", "gt_log_f64_v"),
    ("gt_tanh_f32", "gt_tanh_f32_v"),
    ("gt_tanh_f64", "gt_tanh_f64_v"),
    ("gt_erf_f32", "gt_erf_f32_v"),
    ("gt_erf_f64", "gt_erf_f64_v"),
    ("gt_sigmoid_f32", "gt_sigmoid_f32_v"),
    ("gt_sigmoid_f64", "gt_sigmoid_f64_v"),
    ("gt_pow_f32", "gt_pow_f32_v"),
    ("gt_pow_f64", "gt_pow_f64_v"),
];

/// Every symbol with its address, for the JIT's symbol table.
pub fn symbols() -> [(&'static str, *const u8); 24] {
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
        ("gt_exp_f32_v", gt_exp_f32_v as *const u8),
        ("gt_exp_f64_v", gt_exp_f64_v as *const u8),
        ("gt_log_f32_v", gt_log_f32_v as *const u8),
        ("gt_log_f64_v", gt_log_f64_v as *const u8),
        ("gt_tanh_f32_v", gt_tanh_f32_v as *const u8),
        ("gt_tanh_f64_v", gt_tanh_f64_v as *const u8),
        ("gt_erf_f32_v", gt_erf_f32_v as *const u8),
        ("gt_erf_f64_v", gt_erf_f64_v as *const u8),
        ("gt_sigmoid_f32_v", gt_sigmoid_f32_v as *const u8),
        ("gt_sigmoid_f64_v", gt_sigmoid_f64_v as *const u8),
        ("gt_pow_f32_v", gt_pow_f32_v as *const u8),
        ("gt_pow_f64_v", gt_pow_f64_v as *const u8),
    ]
}
