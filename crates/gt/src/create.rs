//! Module-level creation functions on the default session: `gt::randn([2, 3])`,
//! `gt::tensor(&[1.0, 2.0], [2])`, `gt::zeros([4])`… Plain forms panic at the call site on a bad
//! argument; `try_` forms return `Result`. Floats default to f32; `_dtype` forms take a dtype.

use crate::runtime::{session, try_session};
use gt_client::Tensor;
use gt_core::{DType, Result, Shape};

#[track_caller]
fn ok<T>(r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A f32 tensor holding `values` in `shape`.
#[track_caller]
pub fn tensor(values: &[f32], shape: impl Into<Shape>) -> Tensor {
    ok(session().try_tensor(values, shape))
}
/// A f32 tensor holding `values` in `shape`.
pub fn try_tensor(values: &[f32], shape: impl Into<Shape>) -> Result<Tensor> {
    try_session()?.try_tensor(values, shape)
}
/// A f64 tensor holding `values` in `shape`.
#[track_caller]
pub fn tensor_f64(values: &[f64], shape: impl Into<Shape>) -> Tensor {
    ok(session().try_tensor_f64(values, shape))
}
/// Zeros (f32).
#[track_caller]
pub fn zeros(shape: impl Into<Shape>) -> Tensor {
    full_dtype(shape, 0.0, DType::F32)
}
/// Ones (f32).
#[track_caller]
pub fn ones(shape: impl Into<Shape>) -> Tensor {
    full_dtype(shape, 1.0, DType::F32)
}
/// Filled with `value` (f32).
#[track_caller]
pub fn full(shape: impl Into<Shape>, value: f64) -> Tensor {
    full_dtype(shape, value, DType::F32)
}
/// Zeros of `dtype`.
#[track_caller]
pub fn zeros_dtype(shape: impl Into<Shape>, dtype: DType) -> Tensor {
    full_dtype(shape, 0.0, dtype)
}
/// Ones of `dtype`.
#[track_caller]
pub fn ones_dtype(shape: impl Into<Shape>, dtype: DType) -> Tensor {
    full_dtype(shape, 1.0, dtype)
}
/// Filled with `value`, of `dtype`.
#[track_caller]
pub fn full_dtype(shape: impl Into<Shape>, value: f64, dtype: DType) -> Tensor {
    ok(session().try_full(shape, value, dtype))
}
/// `start, start+step, …` below `end` (f32).
#[track_caller]
pub fn arange(start: f64, end: f64, step: f64) -> Tensor {
    ok(session().try_arange(start, end, step, DType::F32))
}
/// `arange` of `dtype`.
#[track_caller]
pub fn arange_dtype(start: f64, end: f64, step: f64, dtype: DType) -> Tensor {
    ok(session().try_arange(start, end, step, dtype))
}
/// Uniform on `[0, 1)` (f32), from the seeded counter-based generator.
#[track_caller]
pub fn rand(shape: impl Into<Shape>) -> Tensor {
    ok(session().try_rand(shape, DType::F32))
}
/// Standard normal (f32), from the seeded counter-based generator.
#[track_caller]
pub fn randn(shape: impl Into<Shape>) -> Tensor {
    ok(session().try_randn(shape, DType::F32))
}
/// Uniform on `[0, 1)` of `dtype`.
#[track_caller]
pub fn rand_dtype(shape: impl Into<Shape>, dtype: DType) -> Tensor {
    ok(session().try_rand(shape, dtype))
}
/// Standard normal of `dtype`.
#[track_caller]
pub fn randn_dtype(shape: impl Into<Shape>, dtype: DType) -> Tensor {
    ok(session().try_randn(shape, dtype))
}

pub use gt_client::ops_ext::{cat, stack, try_cat, try_stack, try_where_, where_};
pub use gt_client::ops_nnf::{embedding, try_embedding};

/// An int64 tensor holding `values` in `shape` (ids, indices).
#[track_caller]
pub fn tensor_i64(values: &[i64], shape: impl Into<Shape>) -> Tensor {
    ok(session().try_tensor_i64(values, shape))
}
/// An int64 tensor holding `values` in `shape`.
pub fn try_tensor_i64(values: &[i64], shape: impl Into<Shape>) -> Result<Tensor> {
    try_session()?.try_tensor_i64(values, shape)
}
/// A bool tensor holding `values` in `shape` (masks).
#[track_caller]
pub fn tensor_bool(values: &[bool], shape: impl Into<Shape>) -> Tensor {
    ok(session().try_tensor_bool(values, shape))
}
/// A bool tensor holding `values` in `shape`.
pub fn try_tensor_bool(values: &[bool], shape: impl Into<Shape>) -> Result<Tensor> {
    try_session()?.try_tensor_bool(values, shape)
}
/// Zeros with the shape, dtype and session of `like`.
#[track_caller]
pub fn zeros_like(like: &Tensor) -> Tensor {
    full_like(like, 0.0)
}
/// Ones with the shape, dtype and session of `like`.
#[track_caller]
pub fn ones_like(like: &Tensor) -> Tensor {
    full_like(like, 1.0)
}
/// Filled with `value`, with the shape, dtype and session of `like`.
#[track_caller]
pub fn full_like(like: &Tensor, value: f64) -> Tensor {
    ok(like
        .session()
        .try_full(like.shape().clone(), value, like.dtype()))
}
