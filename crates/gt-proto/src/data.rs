//! Tensor payloads: dtype, shape and the raw little-endian bytes.

use gt_core::{DType, Error, Result, Shape};
use serde::{Deserialize, Serialize};

/// The contents of a tensor as it travels (uploads, reads, peer transfers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorData {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
    /// Row-major little-endian elements.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl TensorData {
    /// Packs f32 values.
    pub fn from_f32(shape: impl Into<Shape>, values: &[f32]) -> TensorData {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorData {
            dtype: DType::F32,
            shape: shape.into(),
            bytes,
        }
    }
    /// Packs f64 values.
    pub fn from_f64(shape: impl Into<Shape>, values: &[f64]) -> TensorData {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorData {
            dtype: DType::F64,
            shape: shape.into(),
            bytes,
        }
    }
    /// Checks that the byte count matches dtype and shape.
    pub fn validate(&self) -> Result<()> {
        let want = self.shape.numel().checked_mul(self.dtype.size());
        if want != Some(self.bytes.len()) {
            return Err(Error::Protocol(format!(
                "tensor payload of {} bytes does not match {} {}",
                self.bytes.len(),
                self.dtype,
                self.shape
            )));
        }
        Ok(())
    }
    /// The values widened to f64 (any dtype).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let b = &self.bytes;
        match self.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            DType::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            DType::Bool => b.iter().map(|&x| (x != 0) as u8 as f64).collect(),
        }
    }
    /// The values as f32 (any dtype; wider types are rounded).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => self
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            _ => self.to_f64_vec().into_iter().map(|x| x as f32).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let d = TensorData::from_f32([2], &[1.5, -2.0]);
        assert_eq!(d.to_f32_vec(), vec![1.5, -2.0]);
        assert!(d.validate().is_ok());
        let bad = TensorData {
            bytes: vec![0; 3],
            ..d
        };
        assert!(bad.validate().is_err());
    }
}
