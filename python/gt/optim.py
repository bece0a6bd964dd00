"""Optimizers with PyTorch's update rules: :class:`SGD` (momentum, dampening, Nesterov, weight
decay), :class:`Adam` and :class:`AdamW`, plus the ``StepLR`` and ``CosineAnnealingLR``
schedules. Updates are streamed ops outside autograd (no round trip); each parameter object is
rebound to its new value, so the module holding it sees the update.
"""

import math

from . import _gt


class Optimizer:
    """Holds parameter groups (``params`` may be tensors or dicts with their own options) and
    per-parameter state."""

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        for g in groups:
            g = dict(g)
            g["params"] = list(g["params"])
            for k, v in defaults.items():
                g.setdefault(k, v)
            self.param_groups.append(g)
        self.state = {}

    def zero_grad(self, set_to_none=True):
        """Clears every parameter's gradient (``None``, or zeros when ``set_to_none=False``)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def step(self):
        _gt._no_grad_enter()
        try:
            for g in self.param_groups:
                for p in g["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad, g, self.state.setdefault(id(p), {}))
        finally:
            _gt._no_grad_exit()

    def _update(self, p, grad, group, state):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent (``torch.optim.SGD``)."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid argument to SGD: lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("invalid argument to SGD: Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, p, g, group, state):
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        m = group["momentum"]
        if m:
            buf = state.get("momentum_buffer")
            buf = g if buf is None else buf * m + (1.0 - group["dampening"]) * g
            state["momentum_buffer"] = buf
            g = g + m * buf if group["nesterov"] else buf
        p -= group["lr"] * g


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``; L2 ``weight_decay`` added to the gradient)."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid argument to {type(self).__name__}: lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, p, g, group, state):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        step = state.get("step", 0) + 1
        state["step"] = step
        if wd:
            if self._decoupled:
                p *= 1.0 - lr * wd
            else:
                g = g + wd * p
        m = state.get("exp_avg")
        v = state.get("exp_avg_sq")
        m = g * (1.0 - b1) if m is None else m * b1 + g * (1.0 - b1)
        v = (g * g) * (1.0 - b2) if v is None else v * b2 + (g * g) * (1.0 - b2)
        state["exp_avg"], state["exp_avg_sq"] = m, v
        bc1 = 1.0 - b1 ** step
        bc2 = 1.0 - b2 ** step
        # PyTorch: denom = sqrt(v) / sqrt(bc2) + eps; p -= (lr / bc1) * m / denom.
        denom = v.sqrt() / math.sqrt(bc2) + eps
        p -= (m / denom) * (lr / bc1)


class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``: decoupled weight decay, default 0.01)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


class _Scheduler:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def step(self):
        self.last_epoch += 1
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self._lr(base)

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]


class StepLR(_Scheduler):
    """Multiplies the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def _lr(self, base):
        return base * self.gamma ** (self.last_epoch // self.step_size)


class CosineAnnealingLR(_Scheduler):
    """Cosine decay from the base rate to ``eta_min`` over ``T_max`` epochs."""

    def __init__(self, optimizer, T_max, eta_min=0.0):  # noqa: N803  (PyTorch's name)
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def _lr(self, base):
        t = min(self.last_epoch, self.T_max)
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class lr_scheduler:  # noqa: N801  (``gt.optim.lr_scheduler.StepLR`` like PyTorch)
    StepLR = StepLR
    CosineAnnealingLR = CosineAnnealingLR
