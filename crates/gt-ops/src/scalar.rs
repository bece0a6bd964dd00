//! Per-element semantics of the elementwise ops, written once and used by every CPU kernel
//! (instantiated at `f32` and `f64`) and by the float64 reference. A kernel dispatches on the op
//! outside its loop and calls these `#[inline(always)]` functions with a constant op inside it, so
//! the `match` folds away.

use crate::op::{BinaryOp, CompareOp, UnaryOp};

/// The float operations the elementwise ops need.
pub trait Float:
    Copy
    + PartialOrd
    + Send
    + Sync
    + 'static
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    /// `0`
    const ZERO: Self;
    /// `1`
    const ONE: Self;
    /// Negative infinity (identity of max).
    const NEG_INF: Self;
    /// From f64, rounding to nearest.
    fn from_f64(x: f64) -> Self;
    /// To f64, exactly.
    fn to_f64(self) -> f64;
    /// `e^x`
    fn exp(self) -> Self;
    /// natural log
    fn ln(self) -> Self;
    /// square root
    fn sqrt(self) -> Self;
    /// hyperbolic tangent
    fn tanh(self) -> Self;
    /// NaN test
    fn is_nan(self) -> bool;
    /// `self ^ e`
    fn powf(self, e: Self) -> Self;
    /// `|x|`
    fn abs(self) -> Self;
    /// the error function
    fn erf(self) -> Self;
}

macro_rules! impl_float {
    ($t:ty, $erf:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INF: Self = <$t>::NEG_INFINITY;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            /// `x²` is one multiplication, as PyTorch and NumPy compute it: correctly rounded,
            /// where libm's `pow` is not always (glibc's `powf(x, 2)` differs from `x * x` for
            /// 1,548,806 of the 2³² f32 inputs, all with subnormal results, and `pow(x, 2)` for
            /// 0.04% of random f64 bit patterns), and far cheaper. `x¹` is `x`, which is what
            /// glibc's `pow` returns for every f32 and for 2·10⁸ random f64 values.
            #[inline(always)]
            fn powf(self, e: Self) -> Self {
                if e == 2.0 {
                    self * self
                } else if e == 1.0 {
                    self
                } else {
                    <$t>::powf(self, e)
                }
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
        }
    };
}
impl_float!(f32, libm::erff);
impl_float!(f64, libm::erf);

/// `op(x)` for one element.
#[inline(always)]
pub fn unary<T: Float>(op: UnaryOp, x: T) -> T {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        // Compare-and-select (not fmax): NaN stays NaN and it vectorizes well.
        UnaryOp::Relu => {
            if x < T::ZERO {
                T::ZERO
            } else {
                x
            }
        }
        UnaryOp::Sigmoid => T::ONE / (T::ONE + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x > T::ZERO {
                T::ONE
            } else if x < T::ZERO {
                -T::ONE
            } else {
                x // 0, -0 and NaN stay themselves
            }
        }
        UnaryOp::Erf => x.erf(),
    }
}

/// `a op b` for one element.
#[inline(always)]
pub fn binary<T: Float>(op: BinaryOp, a: T, b: T) -> T {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Maximum => max_nan(a, b),
        BinaryOp::Minimum => min_nan(a, b),
    }
}

/// `a op b` for one comparison (on values widened to f64; NaN compares false except `ne`).
#[inline(always)]
pub fn compare<T: PartialOrd>(op: CompareOp, a: T, b: T) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
    }
}

/// `min(a, b)` where NaN wins.
#[inline(always)]
pub fn min_nan<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || a < b {
        a
    } else {
        b
    }
}

/// `max(a, b)` where NaN wins (PyTorch's `max` propagates NaN).
#[inline(always)]
pub fn max_nan<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || a > b {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_keeps_nan_and_sigmoid_is_stable() {
        assert!(unary(UnaryOp::Relu, f32::NAN).is_nan());
        assert_eq!(unary(UnaryOp::Relu, -3.0f32), 0.0);
        assert_eq!(unary(UnaryOp::Sigmoid, -1000.0f64), 0.0);
        assert_eq!(unary(UnaryOp::Sigmoid, 1000.0f64), 1.0);
        assert!(max_nan(f64::NAN, 1.0).is_nan());
        assert!(max_nan(1.0, f64::NAN).is_nan());
    }

    #[test]
    fn squares_are_correctly_rounded_products() {
        // glibc's powf(x, 2) gives 7e-45 here, one subnormal step above the exact square.
        let x = 7.940934e-23f32;
        assert_eq!(binary(BinaryOp::Pow, x, 2.0).to_bits(), (x * x).to_bits());
        assert_eq!(binary(BinaryOp::Pow, x, 2.0), 6e-45);
        let y = 1.6658915338072852e137f64;
        assert_eq!(binary(BinaryOp::Pow, y, 2.0).to_bits(), (y * y).to_bits());
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, -3.5] {
            let sq = binary(BinaryOp::Pow, v, 2.0);
            assert!(sq.is_nan() == v.is_nan() && (v.is_nan() || sq.to_bits() == (v * v).to_bits()));
            let id = binary(BinaryOp::Pow, v, 1.0);
            assert!(id.is_nan() == v.is_nan() && (v.is_nan() || id.to_bits() == v.to_bits()));
        }
        assert_eq!(binary(BinaryOp::Pow, 2.0f32, 3.0), 8.0);
    }
}
