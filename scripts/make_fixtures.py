#!/usr/bin/env python3
"""Reference fixtures from PyTorch for GT's tests (CI does not need Python or torch).

Writes into crates/gt/tests/fixtures/:
  ops.json               forward values and input gradients of every differentiable op on fixed
                         float64 inputs (loss = sum(out * w) with a fixed w)
  mlp_init.safetensors   a torch.nn.Sequential MLP's state_dict (PyTorch names: 0.weight, ...)
  mlp_data.safetensors   its inputs x, targets y
  mlp.json               outputs of the initial model on x, and 50 per-step losses of Adam
  gpt_init.safetensors   a one-block character transformer's state_dict (GT's module names)
  gpt.json               its 20 per-step AdamW losses on fixed batches (stored in the json)

Run: python3 scripts/make_fixtures.py   (needs torch, numpy, safetensors)
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "gt", "tests", "fixtures")
torch.manual_seed(0)
rng = np.random.default_rng(0)


def t(shape, positive=False):
    a = rng.standard_normal(shape)
    if positive:
        a = 0.5 + rng.random(shape) * 2.0
    return torch.tensor(a, dtype=torch.float64)


def idx(values, shape):
    return torch.tensor(values, dtype=torch.int64).reshape(shape)


# name -> (inputs, function). Float inputs get gradients; int/bool inputs do not.
CASES = {
    "neg": ([t((3, 4))], lambda a: -a),
    "exp": ([t((3, 4))], torch.exp),
    "log": ([t((3, 4), True)], torch.log),
    "sqrt": ([t((3, 4), True)], torch.sqrt),
    "relu": ([t((3, 4))], torch.relu),
    "sigmoid": ([t((3, 4))], torch.sigmoid),
    "tanh": ([t((3, 4))], torch.tanh),
    "abs": ([t((3, 4))], torch.abs),
    "add": ([t((2, 1, 3)), t((4, 1))], torch.add),
    "sub": ([t((2, 1, 3)), t((4, 1))], torch.sub),
    "mul": ([t((2, 1, 3)), t((4, 1))], torch.mul),
    "div": ([t((2, 1, 3)), t((4, 1), True)], torch.div),
    "pow": ([t((2, 3), True), t((3,))], torch.pow),
    "pow_scalar": ([t((2, 3), True)], lambda a: a ** 2.5),
    "rsub_scalar": ([t((2, 3))], lambda a: 1.5 - a),
    "rdiv_scalar": ([t((2, 3), True)], lambda a: 2.0 / a),
    "maximum": ([t((2, 3)), t((3,))], torch.maximum),
    "minimum": ([t((2, 3)), t((3,))], torch.minimum),
    "matmul": ([t((2, 1, 3, 4)), t((5, 4, 2))], torch.matmul),
    "matmul_vec": ([t((3,)), t((3, 4))], torch.matmul),
    "sum_dims": ([t((2, 3, 4))], lambda a: a.sum(dim=(0, 2))),
    "mean_keepdim": ([t((2, 3, 4))], lambda a: a.mean(dim=1, keepdim=True)),
    "amax": ([t((2, 3, 4))], lambda a: a.amax(dim=-1)),
    "amin": ([t((2, 3, 4))], lambda a: a.amin(dim=(0, 1))),
    "sum_all": ([t((2, 3))], lambda a: a.sum()),
    "var": ([t((3, 5))], lambda a: a.var(dim=1)),
    "std": ([t((3, 5))], lambda a: a.std(dim=0, keepdim=True)),
    "logsumexp": ([t((3, 5))], lambda a: torch.logsumexp(a, dim=1)),
    "softmax": ([t((3, 5))], lambda a: torch.softmax(a, dim=-1)),
    "log_softmax": ([t((3, 5))], lambda a: torch.log_softmax(a, dim=0)),
    "gelu": ([t((3, 4))], F.gelu),
    "gelu_tanh": ([t((3, 4))], lambda a: F.gelu(a, approximate="tanh")),
    "silu": ([t((3, 4))], F.silu),
    "layer_norm": ([t((2, 3, 4)), t((4,)), t((4,))], lambda a, w, b: F.layer_norm(a, (4,), w, b, 1e-5)),
    "clamp": ([t((3, 4))], lambda a: a.clamp(-0.5, 0.7)),
    "where": ([idx([1, 0, 0, 1], (4,)).bool(), t((3, 4)), t((4,))], torch.where),
    "masked_fill": ([t((3, 4)), idx([0, 1, 1, 0], (4,)).bool()], lambda a, m: a.masked_fill(m, -2.0)),
    "cat": ([t((3, 2)), t((3, 4)), t((3, 1))], lambda a, b, c: torch.cat([a, b, c], dim=1)),
    "stack": ([t((3, 2)), t((3, 2))], lambda a, b: torch.stack([a, b], dim=1)),
    "transpose": ([t((2, 3, 4))], lambda a: a.transpose(0, 2)),
    "reshape": ([t((2, 3, 4))], lambda a: a.reshape(4, -1)),
    "slice": ([t((4, 5))], lambda a: a[1:4:2, ::3]),
    "index_select": ([t((4, 3)), idx([3, 0, 3], (3,))], lambda a, i: a.index_select(0, i)),
    "gather": ([t((3, 4)), idx([0, 3, 3, 1, 2, 0], (3, 2))], lambda a, i: a.gather(1, i)),
    "embedding": ([t((5, 3)), idx([4, 0, 4, 2], (2, 2))], lambda w, i: F.embedding(i, w)),
    "index_put": ([t((4, 5)), t((2, 5))], lambda a, v: torch.cat([a[:1], v, a[3:]], dim=0)),
    "mse_loss": ([t((4, 3)), t((4, 3))], F.mse_loss),
    "cross_entropy": ([t((4, 5)), idx([1, 0, 4, 2], (4,))], F.cross_entropy),
    "cross_entropy_ignore": ([t((4, 5)), idx([1, -100, 4, 2], (4,))], lambda a, i: F.cross_entropy(a, i, ignore_index=-100)),
    "nll_loss": ([t((4, 5)), idx([1, 0, 4, 2], (4,))], lambda a, i: F.nll_loss(torch.log_softmax(a, 1), i)),
    "bce": ([torch.sigmoid(t((4, 3))), torch.rand(4, 3, dtype=torch.float64)], F.binary_cross_entropy),
    "bce_with_logits": ([t((4, 3)), torch.rand(4, 3, dtype=torch.float64)], F.binary_cross_entropy_with_logits),
}


def dump(x):
    return {"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", ""), "data": x.detach().reshape(-1).double().tolist()}


def make_ops():
    out = {}
    for name, (inputs, fn) in CASES.items():
        ins = [x.clone().requires_grad_(x.dtype == torch.float64) for x in inputs]
        y = fn(*ins)
        w = torch.tensor(rng.standard_normal(tuple(y.shape)), dtype=torch.float64)
        (y * w).sum().backward()
        out[name] = {
            "inputs": [dump(x) for x in inputs],
            "output": dump(y),
            "weight": dump(w),
            "grads": [dump(x.grad) if x.grad is not None else None for x in ins],
        }
    with open(os.path.join(OUT, "ops.json"), "w") as f:
        json.dump(out, f)


def make_mlp():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(64, 4)
    y = (x.sum(dim=1, keepdim=True) > 0).float()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, "mlp_init.safetensors"))
    save_file({"x": x, "y": y}, os.path.join(OUT, "mlp_data.safetensors"))
    out0 = model(x).detach()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with open(os.path.join(OUT, "mlp.json"), "w") as f:
        json.dump({"initial_output": out0.reshape(-1).tolist(), "losses": losses}, f)


class Attn(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.qkv, self.proj, self.h = nn.Linear(d, 3 * d), nn.Linear(d, d), h

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = [z.reshape(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v)]
        s = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // self.h))
        mask = torch.arange(t).reshape(1, -1) > torch.arange(t).reshape(-1, 1)
        a = s.masked_fill(mask, float("-inf")).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.ln1, self.attn, self.ln2 = nn.LayerNorm(d), Attn(d, h), nn.LayerNorm(d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class Gpt(nn.Module):
    def __init__(self, vocab, ctx, d, h):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList([Block(d, h)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


def make_gpt():
    torch.manual_seed(2)
    vocab, ctx, d, h, batch = 20, 8, 16, 2, 4
    model = Gpt(vocab, ctx, d, h)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, "gpt_init.safetensors"))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batches, losses = [], []
    for _ in range(20):
        ids = torch.randint(0, vocab, (batch, ctx + 1))
        batches.append(ids.reshape(-1).tolist())
        opt.zero_grad()
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    cfg = {"vocab": vocab, "context": ctx, "dim": d, "heads": h, "batch": batch}
    with open(os.path.join(OUT, "gpt.json"), "w") as f:
        json.dump({"config": cfg, "batches": batches, "losses": losses}, f)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_ops()
    make_mlp()
    make_gpt()
    print("fixtures written to", os.path.normpath(OUT))
