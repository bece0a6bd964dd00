//! Dtype conversions, defined once for the eager `cast` kernels and the fused-loop generators:
//! how `cast` converts between dtypes and how a scalar constant becomes a value of a dtype, so a
//! `Cast` or `Const` node stores exactly what the eager `cast` / `full` / tensor-scalar kernels
//! would.

use gt_core::DType;

/// Conversions from one storage type (bool is one byte, 0 or 1) to every dtype's storage type,
/// exactly as the eager `cast` kernel does them.
pub trait Conv: Copy {
    /// To f32 (Rust `as`: round to nearest).
    fn to_f32(self) -> f32;
    /// To f64.
    fn to_f64(self) -> f64;
    /// To i64: floats truncate toward zero, saturating, NaN gives 0 (Rust `as`).
    fn to_i64(self) -> i64;
    /// To bool: nonzero is true (NaN is nonzero).
    fn to_bool(self) -> u8;
}

macro_rules! conv_float {
    ($t:ty) => {
        impl Conv for $t {
            #[inline(always)]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn to_bool(self) -> u8 {
                (self != 0.0) as u8
            }
        }
    };
}
conv_float!(f32);
conv_float!(f64);

impl Conv for i64 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn to_i64(self) -> i64 {
        self
    }
    #[inline(always)]
    fn to_bool(self) -> u8 {
        (self != 0) as u8
    }
}

impl Conv for u8 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        (self != 0) as u8 as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        (self != 0) as u8 as f64
    }
    #[inline(always)]
    fn to_i64(self) -> i64 {
        (self != 0) as i64
    }
    #[inline(always)]
    fn to_bool(self) -> u8 {
        (self != 0) as u8
    }
}

/// The stored bits of constant `value` as a `dtype` element (zero-extended to 64 bits), converted
/// like the eager kernels convert scalars: rounded to f32 (as tensor-scalar ops and `full` do),
/// truncated to i64, nonzero for bool.
pub fn const_bits(value: f64, dtype: DType) -> u64 {
    match dtype {
        DType::F32 => (value as f32).to_bits() as u64,
        DType::F64 => value.to_bits(),
        DType::I64 => (value as i64) as u64,
        DType::Bool => (value != 0.0) as u64,
    }
}
