"""Neural-network building blocks in the spirit of ``torch.nn``: :class:`Module` (attribute
registration, PyTorch parameter names such as ``layers.0.weight``, ``state_dict``), layers with
PyTorch's layouts and initialisations, activations as modules and functions, and losses.

A parameter is any tensor attribute that requires gradients (``nn.Parameter(t)`` makes one).
GT tensors are immutable handles, so an update such as ``p -= lr * p.grad`` rebinds the Python
object to the new value: the module and the optimizer holding it both see it.
"""

from collections import OrderedDict

from .. import _gt
from .._gt import Tensor
from . import functional
from .functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    dropout,
    embedding,
    gelu,
    layer_norm,
    linear,
    log_softmax,
    mse_loss,
    nll_loss,
    relu,
    sigmoid,
    silu,
    softmax,
    tanh,
)

F = functional


def Parameter(data, requires_grad=True):  # noqa: N802  (PyTorch's class name)
    """A leaf tensor with ``data``'s values that requires gradients: assigned to a module
    attribute, it is registered as a parameter."""
    from .. import tensor

    t = data.detach() if isinstance(data, Tensor) else tensor(data)
    return t.requires_grad_(requires_grad)


class Module:
    """Base class of layers and models: assign parameters and submodules as attributes in
    ``__init__`` (after ``super().__init__()``), write ``forward``, call the module."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError("cannot assign attributes before Module.__init__() is called")
        params.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Module):
            self._modules[name] = value
        elif isinstance(value, Tensor) and value.requires_grad:
            params[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name, value):
        """Registers ``value`` (a tensor that requires gradients, or ``None``) as ``name``."""
        if value is not None and not (isinstance(value, Tensor) and value.requires_grad):
            raise ValueError(f"parameter {name!r} must be a tensor that requires gradients")
        setattr(self, name, value)

    def add_module(self, name, module):
        """Registers a submodule as ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module")
        setattr(self, name, module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal ----

    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        """This module and every submodule, with dotted names (the root's is ``''``)."""
        seen = set()

        def walk(m, p):
            if id(m) in seen:
                return
            seen.add(id(m))
            yield p, m
            for n, c in m._modules.items():
                if c is not None:
                    yield from walk(c, f"{p}.{n}" if p else n)

        return walk(self, prefix)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix="", recurse=True):
        """``(name, parameter)`` pairs with PyTorch's dotted names, in registration order, each
        parameter once."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for n, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mp}.{n}" if mp else n), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def zero_grad(self, set_to_none=True):
        """Clears the gradient of every parameter, here and in every submodule."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def apply(self, fn):
        for m in list(self.modules())[::-1]:
            fn(m)
        return self

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, **kwargs):
        """Returns self: placement is the runtime's business in GT."""
        return self

    # ---- state ----

    def state_dict(self):
        """Every parameter's value (detached), by dotted name."""
        return OrderedDict((n, p.detach()) for n, p in self.named_parameters())

    def load_state_dict(self, state_dict, strict=True):
        """Copies values (tensors or NumPy arrays) into the parameters of the same names.
        Missing or unexpected names raise ``KeyError`` when ``strict``; shapes must match."""
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        from .. import no_grad, tensor

        with no_grad():
            for name, p in own.items():
                if name not in state_dict:
                    continue
                v = state_dict[name]
                v = v if isinstance(v, Tensor) else tensor(v)
                if tuple(v.shape) != tuple(p.shape):
                    raise ValueError(
                        f"shape error in load_state_dict: {name} has shape {p.shape}, the state dict {v.shape}"
                    )
                p.copy_(v)
        return missing, unexpected

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for n, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({n}): {sub}")
        if len(lines) == 1:
            return lines[0] + ")"
        return "\n".join(lines) + "\n)"


def _uniform(shape, bound, dtype):
    return (_gt.rand(*shape, dtype=dtype) * (2.0 * bound) - bound).requires_grad_()


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight: [out, in]``, initialised like PyTorch (uniform
    in ±1/√in)."""

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        bound = 1.0 / max(in_features, 1) ** 0.5
        self.weight = _uniform((out_features, in_features), bound, dtype)
        self.bias = _uniform((out_features,), bound, dtype) if bias else None

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table ``[num_embeddings, embedding_dim]``, initialised standard normal."""

    def __init__(self, num_embeddings, embedding_dim, dtype=None):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = _gt.randn(num_embeddings, embedding_dim, dtype=dtype).requires_grad_()

    def forward(self, ids):
        return embedding(ids, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalises over the last ``len(normalized_shape)`` axes; weight ones, bias zeros."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        if elementwise_affine:
            self.weight = _gt.ones(*self.normalized_shape, dtype=dtype, requires_grad=True)
            self.bias = _gt.zeros(*self.normalized_shape, dtype=dtype, requires_grad=True)
        else:
            self.weight = None
            self.bias = None

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    """Zeroes elements with probability ``p`` while training (and rescales the rest)."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        return x.dropout(self.p, self.training)


class Sequential(Module):
    """Applies its modules in order; parameters are named ``0.weight``, ``1.bias``…"""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)


class ModuleList(Module):
    """A list of modules whose parameters are registered (``0.weight``…)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, m):
        self.add_module(str(len(self._modules)), m)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)


def _activation(name, fn, doc):
    def forward(self, x):
        return fn(x)

    return type(name, (Module,), {"forward": forward, "__doc__": doc})


ReLU = _activation("ReLU", relu, "``max(x, 0)`` as a module.")
Sigmoid = _activation("Sigmoid", sigmoid, "The logistic function as a module.")
Tanh = _activation("Tanh", tanh, "``tanh`` as a module.")
SiLU = _activation("SiLU", silu, "``x * sigmoid(x)`` as a module.")
Identity = _activation("Identity", lambda x: x, "Returns its input.")


class GELU(Module):
    """GELU as a module (``approximate='none'`` or ``'tanh'``)."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return x.gelu(self.approximate)


class Softmax(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.softmax(self.dim)


class LogSoftmax(Softmax):
    def forward(self, x):
        return x.log_softmax(self.dim)


class MSELoss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):  # noqa: A002
        return mse_loss(input, target, self.reduction)


class BCELoss(MSELoss):
    def forward(self, input, target):  # noqa: A002
        return binary_cross_entropy(input, target, self.reduction)


class CrossEntropyLoss(Module):
    def __init__(self, ignore_index=-100, reduction="mean"):
        super().__init__()
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, input, target):  # noqa: A002
        return cross_entropy(input, target, self.ignore_index, self.reduction)


# The prototype exposed its optimizer as gt.nn.SGD.
from ..optim import SGD, Adam, AdamW  # noqa: E402,F401
