"""Functional forms of the layers, activations and losses (``gt.nn.functional``, like
``torch.nn.functional``). Losses average over the batch (``reduction='mean'``) unless told
``'sum'`` or ``'none'``."""

from .. import _gt
from .._gt import Tensor, embedding as _embedding, layer_norm, linear  # noqa: F401


def relu(x):
    return x.relu()


def gelu(x, approximate="none"):
    return x.gelu(approximate)


def silu(x):
    return x.silu()


def sigmoid(x):
    return x.sigmoid()


def tanh(x):
    return x.tanh()


def softmax(x, dim=-1):
    return x.softmax(dim)


def log_softmax(x, dim=-1):
    return x.log_softmax(dim)


def dropout(x, p=0.5, training=True):
    return x.dropout(p, training)


def embedding(input, weight):  # noqa: A002  (PyTorch's argument name)
    """Rows of ``weight`` at the int64 ids ``input`` (any shape)."""
    return _embedding(input, weight)


def _reduce(x, reduction, op):
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"invalid argument to {op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(a, b, op):
    if a.shape != b.shape:
        raise ValueError(f"shape error in {op}: input of shape {a.shape} and target of shape {b.shape} differ")


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    """``mean((input - target)²)``."""
    _same_shape(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")


def binary_cross_entropy(input, target, reduction="mean"):  # noqa: A002
    """Binary cross-entropy of probabilities ``input`` against ``target`` in [0, 1] (logs clamped
    at -100 like PyTorch)."""
    _same_shape(input, target, "binary_cross_entropy")
    log_p = input.log().clamp(min=-100.0)
    log_1mp = (1.0 - input).log().clamp(min=-100.0)
    return _reduce(-(target * log_p + (1.0 - target) * log_1mp), reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, reduction="mean"):  # noqa: A002
    """Binary cross-entropy on logits, computed stably."""
    _same_shape(input, target, "binary_cross_entropy_with_logits")
    softplus = ((-input.abs()).exp() + 1.0).log()
    return _reduce(input.relu() - input * target + softplus, reduction, "binary_cross_entropy_with_logits")


def nll_loss(input, target, ignore_index=-100, reduction="mean"):  # noqa: A002
    """Negative log-likelihood of log-probabilities ``input: [N, C]`` at int64 ``target: [N]``;
    targets equal to ``ignore_index`` count for nothing."""
    if input.ndim != 2 or target.ndim != 1 or target.shape[0] != input.shape[0]:
        raise ValueError(
            f"shape error in nll_loss: expected input [N, C] and target [N], got {input.shape} and {target.shape}"
        )
    if target.dtype != _gt.int64:
        raise ValueError(f"dtype error in nll_loss: target must be int64, got {target.dtype}")
    ignored = target == ignore_index
    safe = target.masked_fill(ignored, 0)
    picked = input.gather(1, safe.unsqueeze(1)).squeeze(1)
    weight = (target != ignore_index).to(input.dtype)
    losses = -(picked * weight)
    if reduction == "mean":
        return losses.sum() / weight.sum()
    return _reduce(losses, reduction, "nll_loss")


def cross_entropy(input, target, ignore_index=-100, reduction="mean"):  # noqa: A002
    """Cross-entropy of logits ``input: [N, C]`` against int64 class ids ``target: [N]``
    (``nll_loss(log_softmax(input))``)."""
    if input.ndim != 2:
        raise ValueError(f"shape error in cross_entropy: expected logits [N, C], got {input.shape}")
    return nll_loss(input.log_softmax(-1), target, ignore_index, reduction)
