//! Element types and the promotion rule (PyTorch's: float beats integer beats bool, wider float
//! beats narrower).

use serde::{Deserialize, Serialize};

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum DType {
    /// 32-bit IEEE float, the default.
    #[default]
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 64-bit signed integer (ids, indices).
    I64,
    /// Boolean, one byte per element (0 or 1).
    Bool,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    /// Whether this is a floating-point type.
    pub const fn is_float(self) -> bool {
        match self {
            DType::F32 | DType::F64 => true,
            DType::I64 | DType::Bool => false,
        }
    }

    /// The PyTorch-style name (`float32`, `float64`, `int64`, `bool`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::Bool => "bool",
        }
    }

    /// Rank in the promotion lattice: the result of a binary op takes the higher rank.
    const fn rank(self) -> u8 {
        match self {
            DType::Bool => 0,
            DType::I64 => 1,
            DType::F32 => 2,
            DType::F64 => 3,
        }
    }

    /// The dtype of `a op b` (PyTorch's rule for two tensors).
    pub fn promote(a: DType, b: DType) -> DType {
        if a.rank() >= b.rank() {
            a
        } else {
            b
        }
    }

    /// Parses `float32`/`f32`, `float64`/`f64`, `int64`/`i64`, `bool`.
    pub fn parse(s: &str) -> Option<DType> {
        match s {
            "float32" | "f32" | "float" => Some(DType::F32),
            "float64" | "f64" | "double" => Some(DType::F64),
            "int64" | "i64" | "long" => Some(DType::I64),
            "bool" => Some(DType::Bool),
            _ => None,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_follows_pytorch() {
        assert_eq!(DType::promote(DType::F32, DType::F64), DType::F64);
        assert_eq!(DType::promote(DType::I64, DType::F32), DType::F32);
        assert_eq!(DType::promote(DType::Bool, DType::I64), DType::I64);
        assert_eq!(DType::promote(DType::F32, DType::F32), DType::F32);
    }

    #[test]
    fn parse_round_trips_names() {
        for d in [DType::F32, DType::F64, DType::I64, DType::Bool] {
            assert_eq!(DType::parse(d.name()), Some(d));
        }
        assert_eq!(DType::parse("int8"), None);
    }
}
