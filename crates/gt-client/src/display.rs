//! Torch-like printing: `tensor([[ 1.0000, -2.5000], …])`, integers-valued floats as `1.`,
//! scientific notation when magnitudes span too much, `...` summaries above 1000 elements.
//! Printing reads the tensor, so it is a sync point; an error prints as `tensor(<error: …>)`.

use crate::tensor::Tensor;
use gt_core::DType;

const SUMMARIZE_ABOVE: usize = 1000;
const EDGE: usize = 3;

/// How floats are printed, chosen once per tensor like PyTorch does.
enum Style {
    Int,
    Fixed,
    Sci,
    Plain,
}

fn choose(values: &[f64], dtype: DType) -> Style {
    if !dtype.is_float() {
        return Style::Plain;
    }
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.iter().all(|v| v.fract() == 0.0) {
        let max = finite.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        return if max >= 1e8 { Style::Sci } else { Style::Int };
    }
    let nz: Vec<f64> = finite
        .iter()
        .map(|v| v.abs())
        .filter(|&v| v > 0.0)
        .collect();
    let max = nz.iter().copied().fold(0.0f64, f64::max);
    let min = nz.iter().copied().fold(f64::INFINITY, f64::min);
    if max >= 1e8 || min < 1e-4 || (min > 0.0 && max / min > 1000.0) {
        Style::Sci
    } else {
        Style::Fixed
    }
}

fn fmt_one(v: f64, style: &Style, dtype: DType) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    match style {
        Style::Int => format!("{v:.0}."),
        Style::Fixed => format!("{v:.4}"),
        Style::Sci => {
            let s = format!("{v:.4e}");
            // Rust prints `1.0000e-5`; PyTorch prints `1.0000e-05`.
            match s.split_once('e') {
                Some((m, e)) => {
                    let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                    format!("{m}e{sign}{digits:0>2}")
                }
                None => s,
            }
        }
        Style::Plain => match dtype {
            DType::Bool => (if v != 0.0 { "True" } else { "False" }).into(),
            _ => format!("{v}"),
        },
    }
}

/// Renders values with `dims` the way PyTorch's `repr` does (without the `tensor(` wrapper).
pub fn render(values: &[f64], dims: &[usize], dtype: DType) -> String {
    let summarize = values.len() > SUMMARIZE_ABOVE;
    let style = choose(values, dtype);
    let strs: Vec<String> = values.iter().map(|&v| fmt_one(v, &style, dtype)).collect();
    let width = strs.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = String::new();
    if dims.is_empty() {
        return strs.first().cloned().unwrap_or_default();
    }
    write_level(&mut out, &strs, dims, 0, 0, width, summarize);
    out
}

fn write_level(
    out: &mut String,
    strs: &[String],
    dims: &[usize],
    depth: usize,
    offset: usize,
    width: usize,
    summarize: bool,
) {
    let n = dims[depth];
    let inner: usize = dims[depth + 1..].iter().product();
    let shown: Vec<Option<usize>> = if summarize && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    out.push('[');
    for (k, i) in shown.iter().enumerate() {
        if k > 0 {
            if depth + 1 == dims.len() {
                out.push_str(", ");
            } else {
                out.push(',');
                out.push_str(&"\n".repeat(dims.len() - depth - 1));
                out.push_str(&" ".repeat("tensor(".len() + depth + 1));
            }
        }
        match i {
            None => out.push_str("..."),
            Some(i) if depth + 1 == dims.len() => {
                out.push_str(&format!("{:>width$}", strs[offset + i]));
            }
            Some(i) => write_level(
                out,
                strs,
                dims,
                depth + 1,
                offset + i * inner,
                width,
                summarize,
            ),
        }
    }
    out.push(']');
}

impl std::fmt::Display for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let suffix = match self.dtype() {
            DType::F32 => String::new(),
            d => format!(", dtype={d}"),
        };
        match self.to_vec_f64() {
            Ok(values) => write!(
                f,
                "tensor({}{suffix})",
                render(&values, self.dims(), self.dtype())
            ),
            Err(e) => write!(f, "tensor(<error: {e}>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pytorch_repr() {
        assert_eq!(
            render(&[1.0, 2.0, 3.0, 4.5], &[2, 2], DType::F32),
            "[[1.0000, 2.0000],\n        [3.0000, 4.5000]]"
        );
        assert_eq!(render(&[1.0, 2.0], &[2], DType::F32), "[1., 2.]");
        assert_eq!(render(&[3.0], &[], DType::F32), "3.");
        assert_eq!(render(&[1.0, -2.5], &[2], DType::F32), "[ 1.0000, -2.5000]");
        assert_eq!(
            render(&[1e-5, 1.0], &[2], DType::F32),
            "[1.0000e-05, 1.0000e+00]"
        );
        let big: Vec<f64> = (0..2000).map(|i| i as f64).collect();
        let s = render(&big, &[2000], DType::F32);
        assert!(
            s.starts_with("[   0.,    1.,    2., ...") && s.ends_with("1999.]"),
            "{s}"
        );
        let cube: Vec<f64> = (0..8).map(|i| i as f64).collect();
        assert_eq!(
            render(&cube, &[2, 2, 2], DType::F32),
            "[[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]]"
        );
    }
}
