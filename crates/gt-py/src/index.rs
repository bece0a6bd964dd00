//! Python indexing keys → GT indexing: ints (out of range is `IndexError`, so iteration over a
//! tensor stops like a sequence's), slices with positive steps, `...`, `None`, and a 1-d int64
//! tensor (selection along the first axis). Assignment (`x[k] = v`) is functional and
//! differentiable: the tensor becomes `index_put(x, k, v)`.

use crate::errors::{value_err, IntoPy};
use crate::tensor::{operand, Operand, PyTensor};
use gt::{Idx, Tensor};
use gt_core::DType;
use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyEllipsis, PyNone, PySlice, PySliceMethods, PyTuple};

enum Key {
    Basic(Vec<Idx>),
    Select(Tensor),
}

fn parse(key: &Bound<'_, PyAny>, dims: &[usize]) -> PyResult<Key> {
    if let Ok(t) = key.cast::<PyTensor>() {
        let t = t.try_borrow()?.t.clone();
        if t.dtype() != DType::I64 || t.rank() != 1 {
            return Err(value_err(
                "index",
                format!(
                    "tensor indices must be 1-d int64 (selecting along axis 0), got {} {}",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        return Ok(Key::Select(t));
    }
    let items: Vec<Bound<'_, PyAny>> = match key.cast::<PyTuple>() {
        Ok(t) => t.iter().collect(),
        Err(_) => vec![key.clone()],
    };
    let is_ellipsis = |k: &Bound<'_, PyAny>| k.cast::<PyEllipsis>().is_ok();
    let consuming = items
        .iter()
        .filter(|k| !k.is_none() && !is_ellipsis(k))
        .count();
    if consuming > dims.len() {
        return Err(PyIndexError::new_err(format!(
            "too many indices: {consuming} for a tensor of {} dimensions",
            dims.len()
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut axis = 0usize;
    let mut seen_ellipsis = false;
    for k in &items {
        if k.cast::<PyNone>().is_ok() {
            out.push(Idx::NewAxis);
        } else if is_ellipsis(k) {
            if seen_ellipsis {
                return Err(PyIndexError::new_err(
                    "an index can only have one ellipsis (...)",
                ));
            }
            seen_ellipsis = true;
            let n = dims.len() - consuming;
            out.extend(std::iter::repeat_n(Idx::All, n));
            axis += n;
        } else if let Ok(s) = k.cast::<PySlice>() {
            let len = dims[axis] as isize;
            let ind = s.indices(len)?;
            if ind.step <= 0 {
                return Err(value_err("index", "slice steps must be positive"));
            }
            out.push(Idx::Range {
                start: Some(ind.start),
                end: Some(ind.stop.max(ind.start)),
                step: ind.step as usize,
            });
            axis += 1;
        } else if let Ok(i) = k.extract::<isize>() {
            let len = dims[axis] as isize;
            if i >= len || i < -len {
                return Err(PyIndexError::new_err(format!(
                    "index {i} is out of bounds for axis {axis} with size {len}"
                )));
            }
            out.push(Idx::At(i));
            axis += 1;
        } else {
            return Err(PyTypeError::new_err(format!(
                "unsupported index of type {}: use ints, slices, ..., None or a 1-d int64 tensor",
                k.get_type().name()?
            )));
        }
    }
    Ok(Key::Basic(out))
}

/// `t[key]`.
pub fn get(t: &Tensor, key: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    match parse(key, t.dims())? {
        Key::Basic(idx) => t.try_index(&idx).py(),
        Key::Select(ix) => t.try_index_select(0, &ix).py(),
    }
}

/// The tensor `t` with `t[key] = value` applied.
pub fn set(t: &Tensor, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let Key::Basic(idx) = parse(key, t.dims())? else {
        return Err(value_err(
            "index assignment",
            "assigning through a tensor index is not supported; use ints, slices, ... and None",
        ));
    };
    match operand(value)? {
        Some(Operand::S(x)) => t.try_index_fill(&idx, x).py(),
        Some(Operand::T(v)) => {
            let v = if v.dtype() != t.dtype() {
                v.try_to_dtype(t.dtype()).py()?
            } else {
                v
            };
            t.try_index_put(&idx, &v).py()
        }
        None => Err(PyTypeError::new_err(format!(
            "can only assign a gt.Tensor or a number, not {}",
            value.get_type().name()?
        ))),
    }
}
