//! Operator forms: `&a + &b`, `a * b`, `&a - 1.0`, `2.0 * &a`, `-&a`. They panic at the caller's
//! line on a shape error (use the `try_` methods to get a `Result`).

use crate::ops::ok;
use crate::tensor::Tensor;
use gt_ops::BinaryOp;
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! tensor_ops {
    ($($trait:ident, $method:ident, $try:ident, $scalar:ident, $bop:ident;)*) => {$(
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                ok(self.$try(rhs))
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                ok(self.$try(&rhs))
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                ok(self.$try(rhs))
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                ok(self.$try(&rhs))
            }
        }
        impl $trait<f64> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                ok(self.$scalar(rhs))
            }
        }
        impl $trait<f64> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                ok(self.$scalar(rhs))
            }
        }
        impl $trait<&Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                ok(rhs.try_scalar_lhs(BinaryOp::$bop, self))
            }
        }
        impl $trait<Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                ok(rhs.try_scalar_lhs(BinaryOp::$bop, self))
            }
        }
    )*};
}

tensor_ops! {
    Add, add, try_add, try_add_scalar, Add;
    Sub, sub, try_sub, try_sub_scalar, Sub;
    Mul, mul, try_mul, try_mul_scalar, Mul;
    Div, div, try_div, try_div_scalar, Div;
}

impl Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        ok(self.try_neg())
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        ok(self.try_neg())
    }
}
