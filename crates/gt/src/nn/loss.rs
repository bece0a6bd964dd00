//! Losses with PyTorch's definitions and mean reduction.

use gt_client::Tensor;
use gt_core::{DType, Error, Result};

/// `mean((pred - target)²)`.
#[track_caller]
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Tensor {
    let d = pred - target;
    (&d * &d).mean()
}

/// Negative log-likelihood of `log_probs: [N, C]` at integer `targets: [N]`, averaged over the
/// targets that are not `ignore_index`.
pub fn nll_loss(log_probs: &Tensor, targets: &Tensor, ignore_index: Option<i64>) -> Result<Tensor> {
    if log_probs.rank() != 2 || targets.rank() != 1 || targets.dims()[0] != log_probs.dims()[0] {
        return Err(Error::shape(
            "nll_loss",
            format!(
                "expected log-probabilities [N, C] and targets [N], got {} and {}",
                log_probs.shape(),
                targets.shape()
            ),
        ));
    }
    if targets.dtype() != DType::I64 {
        return Err(Error::dtype(
            "nll_loss",
            format!("targets must be int64, got {}", targets.dtype()),
        ));
    }
    let (valid, safe) = match ignore_index {
        Some(ig) => {
            let valid = targets.ne_scalar(ig as f64);
            // Ignored rows pick class 0 (then weigh nothing), so gather never sees a bad index.
            (
                Some(valid.clone()),
                targets.masked_fill(&valid.eq_scalar(0.0), 0.0),
            )
        }
        None => (None, targets.clone()),
    };
    let picked = log_probs.gather(1, &safe.unsqueeze(1)).squeeze(1);
    Ok(match valid {
        Some(v) => {
            let w = v.to_dtype(log_probs.dtype());
            -(&picked * &w).sum() / w.sum()
        }
        None => -picked.mean(),
    })
}

/// Multi-class cross-entropy of `logits: [N, C]` against integer `targets: [N]`
/// (= `nll_loss(log_softmax(logits))`), mean over non-ignored targets.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: Option<i64>,
) -> Result<Tensor> {
    nll_loss(&logits.log_softmax(-1), targets, ignore_index)
}

/// Binary cross-entropy of probabilities `p` against `target` in [0, 1] (logs clamped at -100
/// like PyTorch).
#[track_caller]
pub fn binary_cross_entropy(p: &Tensor, target: &Tensor) -> Tensor {
    let log_p = p.log().clamp(Some(-100.0), None);
    let log_1mp = (1.0 - p).log().clamp(Some(-100.0), None);
    -(target * &log_p + (1.0 - target) * &log_1mp).mean()
}

/// Binary cross-entropy on logits, computed stably:
/// `max(x, 0) - x·t + log(1 + e^(-|x|))`.
#[track_caller]
pub fn binary_cross_entropy_with_logits(logits: &Tensor, target: &Tensor) -> Tensor {
    let softplus = ((-logits.abs()).exp() + 1.0).log();
    (logits.relu() - logits * target + softplus).mean()
}
