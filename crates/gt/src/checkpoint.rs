//! Checkpoints as safetensors files with PyTorch's parameter names (`0.weight`, `layers.1.bias`),
//! so a `state_dict` saved by PyTorch (`safetensors.torch.save_file`) loads into the equivalent GT
//! model and the other way round.

use crate::nn::{Module, Param};
use crate::runtime::try_session;
use gt_core::{DType, Error, Result, Shape};
use gt_proto::TensorData;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::path::Path;

fn to_st(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::I64 => Dtype::I64,
        DType::Bool => Dtype::BOOL,
    }
}

fn from_st(name: &str, d: Dtype) -> Result<DType> {
    match d {
        Dtype::F32 => Ok(DType::F32),
        Dtype::F64 => Ok(DType::F64),
        Dtype::I64 => Ok(DType::I64),
        Dtype::BOOL => Ok(DType::Bool),
        other => Err(Error::dtype(
            "load",
            format!("tensor '{name}' has unsupported dtype {other:?}"),
        )),
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {e}", path.display()))
}

/// Writes `tensors` (name → value) to `path` (reads each value: a sync point).
pub fn save_tensors(path: impl AsRef<Path>, tensors: &[(String, gt_client::Tensor)]) -> Result<()> {
    let path = path.as_ref();
    let datas: Vec<(String, TensorData)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.data()?)))
        .collect::<Result<_>>()?;
    let views: Vec<(String, TensorView<'_>)> = datas
        .iter()
        .map(|(n, d)| {
            TensorView::new(to_st(d.dtype), d.shape.dims().to_vec(), &d.bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| io(path, e))
        })
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize_to_file(views, None, path).map_err(|e| io(path, e))
}

/// Writes `module`'s parameters to `path`.
pub fn save(path: impl AsRef<Path>, module: &dyn Module) -> Result<()> {
    let named: Vec<(String, gt_client::Tensor)> = module
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.get()))
        .collect();
    save_tensors(path, &named)
}

/// Reads every tensor of a safetensors file onto the default session.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<Vec<(String, gt_client::Tensor)>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| io(path, e))?;
    let session = try_session()?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let dtype = from_st(&name, view.dtype())?;
        let data = TensorData {
            dtype,
            shape: Shape::new(view.shape()),
            bytes: view.data().to_vec(),
        };
        out.push((name, session.try_from_data(data)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Loads `path` into `module` (strict like PyTorch: every parameter present with its shape and
/// dtype, no unexpected names).
pub fn load(path: impl AsRef<Path>, module: &dyn Module) -> Result<()> {
    let path = path.as_ref();
    let mut file: std::collections::BTreeMap<String, gt_client::Tensor> =
        load_tensors(path)?.into_iter().collect();
    let params: Vec<(String, Param)> = module.named_parameters();
    let mut problems = Vec::new();
    let mut updates = Vec::new();
    for (name, p) in &params {
        match file.remove(name) {
            None => problems.push(format!("missing '{name}'")),
            Some(t) => {
                let cur = p.get();
                if t.shape() != cur.shape() || t.dtype() != cur.dtype() {
                    problems.push(format!(
                        "'{name}' is {} {} in the file but {} {} in the model",
                        t.dtype(),
                        t.shape(),
                        cur.dtype(),
                        cur.shape()
                    ));
                } else {
                    updates.push((p.clone(), t));
                }
            }
        }
    }
    problems.extend(file.keys().map(|k| format!("unexpected '{k}'")));
    if !problems.is_empty() {
        return Err(Error::invalid(
            "load",
            format!("{}: {}", path.display(), problems.join("; ")),
        ));
    }
    for (p, t) in updates {
        p.set(t);
    }
    Ok(())
}
