"""GT: a multiplexing tensor runtime, with the prototype's PyTorch-like Python API.

    import gt                      # or: import gt as torch
    x = gt.randn(64, 32, requires_grad=True)
    loss = (x @ gt.randn(32, 8)).relu().mean()
    loss.backward()
    print(x.grad.shape)

Ops are checked at the call site (shape, dtype and axis errors raise ``ValueError`` right there)
and streamed to the runtime without waiting; reading a value (``.numpy()``, ``.item()``,
printing) is the first round trip. The first op starts an embedded runtime in this process,
or joins the dispatcher named by ``GT_ADDR`` / :func:`connect`.
"""

from __future__ import annotations

import collections as _collections
import contextlib as _contextlib
import os as _os

import numpy as _np

from . import _gt
from ._gt import (  # noqa: F401  (re-exported API)
    Tensor,
    arange,
    cat,
    connect,
    dtype,
    from_numpy as _from_numpy,
    full,
    gpu_workers,
    is_grad_enabled,
    load_config,
    manual_seed,
    ones,
    rand,
    randn,
    stack,
    sync,
    zeros,
)

float32 = _gt.float32
float64 = _gt.float64
int64 = _gt.int64
bool = _gt.bool  # noqa: A001  (PyTorch has gt.bool too)
float = float32  # noqa: A001
double = float64
long = int64
where = _gt.where

__version__ = "0.1.0"


def _numpy_dtype(d):
    return {float32: _np.float32, float64: _np.float64, int64: _np.int64, bool: _np.bool_}[d]


def from_numpy(arr, requires_grad=False):
    """A tensor with ``arr``'s shape and values. float32, float64, int64 and bool arrays keep
    their dtype; other integer arrays become int64, other floats float32."""
    arr = _np.asarray(arr)
    if arr.dtype not in (_np.float32, _np.float64, _np.int64, _np.bool_):
        if arr.dtype.kind in "iu":
            arr = arr.astype(_np.int64)
        elif arr.dtype.kind == "f":
            arr = arr.astype(_np.float32)
        else:
            raise TypeError(f"from_numpy: unsupported dtype {arr.dtype}")
    return _from_numpy(arr, requires_grad)


def tensor(data, dtype=None, requires_grad=False):
    """A tensor holding ``data`` (a number, nested lists, a NumPy array or a tensor). Python
    floats become float32, ints int64 and bools bool, like PyTorch; NumPy arrays keep their
    dtype (float16/int32… are widened)."""
    if isinstance(data, Tensor):
        t = data.detach()
        if dtype is not None:
            t = t.to(dtype)
        return t.requires_grad_() if requires_grad else t
    arr = _np.asarray(data)
    if dtype is not None:
        arr = arr.astype(_numpy_dtype(_gt._parse_dtype(dtype)))
    elif arr.dtype.kind == "f" and not isinstance(data, _np.ndarray):
        arr = arr.astype(_np.float32)
    return from_numpy(arr, requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    """Zeros with ``t``'s shape (and dtype unless given)."""
    return zeros(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    """Ones with ``t``'s shape (and dtype unless given)."""
    return ones(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def randn_like(t, dtype=None, requires_grad=False):
    """Standard normal values with ``t``'s shape (and dtype unless given)."""
    return randn(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    """``t``'s shape filled with ``fill_value``."""
    return full(list(t.shape), fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad)


class no_grad(_contextlib.ContextDecorator):
    """Context manager (and decorator) under which ops are not recorded for autograd, like
    ``torch.no_grad()``; parameter updates (``p -= lr * p.grad``) belong inside one."""

    def __enter__(self):
        _gt._no_grad_enter()
        return self

    def __exit__(self, *exc):
        _gt._no_grad_exit()
        return False


# Elementwise functions at module level, as in PyTorch (``gt.exp(x)``, ``gt.relu(x)``…).
def _method(name):
    def f(x, *args, **kwargs):
        return getattr(x, name)(*args, **kwargs)

    f.__name__ = name
    f.__doc__ = f"``x.{name}(...)`` as a function."
    return f


for _name in (
    "exp", "log", "sqrt", "abs", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "sum",
    "mean", "max", "min", "reshape", "transpose", "permute", "unsqueeze", "squeeze", "split",
    "chunk", "matmul", "flatten", "argmax", "argmin", "clamp", "maximum", "minimum", "var", "std",
    "logsumexp", "gather", "index_select", "masked_fill", "erf", "sign", "neg", "pow",
):
    globals()[_name] = _method(_name)
del _name


def save(obj, path):
    """Writes a state dict (name → tensor), or a module's, to ``path`` as a safetensors file
    (PyTorch and ``safetensors.torch.load_file`` read it; names are PyTorch's)."""
    from .nn import Module

    if isinstance(obj, Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise TypeError("gt.save writes a dict of name -> gt.Tensor (e.g. model.state_dict()) or a Module")
    _gt.save_tensors(_os.fspath(path), [(str(k), v) for k, v in obj.items()])


def load(path):
    """Reads a safetensors file written by :func:`save` (or by PyTorch) into a dict of tensors,
    ready for ``model.load_state_dict``."""
    path = _os.fspath(path)
    if not _os.path.exists(path):
        raise FileNotFoundError(path)
    return _collections.OrderedDict(_gt.load_tensors(path))


def is_tensor(obj):
    """Whether ``obj`` is a ``gt.Tensor``."""
    return isinstance(obj, Tensor)


from . import debug, nn, optim, signal  # noqa: E402,F401
from . import client  # noqa: E402,F401
