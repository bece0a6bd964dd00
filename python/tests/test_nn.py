"""gt.nn and gt.optim against NumPy: module registration and PyTorch names, zero_grad through
children, state dicts, layer layouts and values, activations, losses, and the optimizers' update
rules step by step."""

import math

import numpy as np
import pytest

import gt
import gt.nn as nn
import gt.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        self.norm = nn.LayerNorm(3)
        self.scale = gt.ones(3, requires_grad=True)
        self.not_a_param = gt.ones(3)

    def forward(self, x):
        return self.norm(self.body(x)) * self.scale


def test_registration_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias",
                     "norm.weight", "norm.bias"]
    assert len(list(net.parameters())) == 7
    assert net.body[0].weight.shape == (8, 4)
    assert [n for n, _ in net.named_modules()][:3] == ["", "body", "body.0"]
    net.train(False)
    assert not net.body[1].training
    assert "Linear(in_features=4, out_features=8, bias=True)" in repr(net)
    with pytest.raises(AttributeError):
        class Bad(nn.Module):
            def __init__(self):
                self.w = gt.ones(1)

        Bad()


def test_zero_grad_recurses():
    net = Net()
    net(gt.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net(gt.randn(2, 4)).sum().backward()
    net.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0.0 for p in net.parameters())


def test_state_dict_round_trip():
    a, b = Net(), Net()
    sd = a.state_dict()
    assert list(sd) == [n for n, _ in a.named_parameters()]
    b.load_state_dict(sd)
    x = gt.randn(5, 4)
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), rtol=1e-6)
    assert all(p.requires_grad and p.is_leaf for p in b.parameters())
    b.load_state_dict({k: v.numpy() for k, v in sd.items()})
    with pytest.raises(KeyError):
        b.load_state_dict({"scale": sd["scale"]})
    bad = dict(sd)
    bad["scale"] = gt.ones(4)
    with pytest.raises(ValueError, match="shape"):
        b.load_state_dict(bad)


def test_linear_embedding_layernorm_values(rng):
    lin = nn.Linear(5, 3)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    bound = 1 / math.sqrt(5)
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    np.testing.assert_allclose(lin(gt.from_numpy(x)).numpy(), x @ w.T + b, rtol=1e-5, atol=1e-6)
    assert nn.Linear(5, 3, bias=False).bias is None

    emb = nn.Embedding(6, 2)
    ids = np.array([[0, 5], [3, 3]])
    np.testing.assert_allclose(emb(gt.from_numpy(ids)).numpy(), emb.weight.numpy()[ids])

    ln = nn.LayerNorm(4)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    ref = (y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln(gt.from_numpy(y)).numpy(), ref, rtol=1e-4, atol=1e-5)


def test_activations_and_dropout(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    t = gt.from_numpy(x)
    sig = 1 / (1 + np.exp(-x))
    for mod, fn, ref in [(nn.ReLU(), F.relu, np.maximum(x, 0)), (nn.Sigmoid(), F.sigmoid, sig),
                         (nn.Tanh(), F.tanh, np.tanh(x)), (nn.SiLU(), F.silu, x * sig)]:
        np.testing.assert_allclose(mod(t).numpy(), ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fn(t).numpy(), ref, rtol=1e-5, atol=1e-6)
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(nn.GELU()(t).numpy(), 0.5 * x * (1 + erf(x / math.sqrt(2))), rtol=1e-4, atol=1e-5)
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(nn.Softmax(dim=-1)(t).numpy(), e / e.sum(-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(F.softmax(t, dim=0).numpy().sum(0), np.ones(4), rtol=1e-5)
    d = nn.Dropout(0.5)
    kept = d(gt.ones(1000)).numpy()
    assert set(np.unique(kept)) <= {0.0, 2.0} and 0 < kept.sum() < 2000
    d.eval()
    np.testing.assert_array_equal(d(gt.ones(10)).numpy(), np.ones(10))


def test_losses(rng):
    p = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
    t = rng.uniform(0, 1, (4, 3)).astype(np.float32)
    tp, tt = gt.from_numpy(p), gt.from_numpy(t)
    np.testing.assert_allclose(F.mse_loss(tp, tt).item(), ((p - t) ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(nn.MSELoss(reduction="sum")(tp, tt).item(), ((p - t) ** 2).sum(), rtol=1e-5)
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()
    np.testing.assert_allclose(F.binary_cross_entropy(tp, tt).item(), bce, rtol=1e-5)
    np.testing.assert_allclose(nn.BCELoss()(tp, tt).item(), bce, rtol=1e-5)
    logits = rng.standard_normal((4, 5)).astype(np.float32)
    ids = np.array([0, 4, 2, 2])
    lsm = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -lsm[np.arange(4), ids].mean()
    np.testing.assert_allclose(F.cross_entropy(gt.from_numpy(logits), gt.from_numpy(ids)).item(), ce, rtol=1e-5)
    np.testing.assert_allclose(nn.CrossEntropyLoss()(gt.from_numpy(logits), gt.from_numpy(ids)).item(), ce, rtol=1e-5)
    ign = np.array([0, -100, 2, -100])
    ce_ign = -(lsm[0, 0] + lsm[2, 2]) / 2
    np.testing.assert_allclose(F.cross_entropy(gt.from_numpy(logits), gt.from_numpy(ign)).item(), ce_ign, rtol=1e-5)
    with pytest.raises(ValueError, match="mse_loss"):
        F.mse_loss(tp, gt.ones(2))
    with pytest.raises(ValueError, match="cross_entropy"):
        F.cross_entropy(gt.ones(2, 3, 4), gt.from_numpy(ids))


def _grads_of(w):
    """The gradient of sum(w**2 * c) for a fixed c, as both a tensor op and NumPy."""
    c = np.array([1.0, -2.0, 3.0])
    return c, lambda wn: 2 * wn * c


@pytest.mark.parametrize("make,ref", [
    (lambda ps: gt.optim.SGD(ps, lr=0.1), "sgd"),
    (lambda ps: gt.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01), "sgd_mom"),
    (lambda ps: gt.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True), "sgd_nesterov"),
    (lambda ps: gt.optim.Adam(ps, lr=0.1), "adam"),
    (lambda ps: gt.optim.Adam(ps, lr=0.1, weight_decay=0.1), "adam_wd"),
    (lambda ps: gt.optim.AdamW(ps, lr=0.1), "adamw"),
    (lambda ps: nn.SGD(ps, lr=0.1), "sgd"),
])
def test_optimizers_match_reference(make, ref):
    w0 = np.array([0.5, -1.0, 2.0])
    c, grad = _grads_of(w0)
    p = gt.tensor(w0).requires_grad_()
    opt = make([p])
    wn, buf, m, v = w0.copy(), None, np.zeros(3), np.zeros(3)
    for step in range(1, 6):
        opt.zero_grad()
        (p * p * gt.tensor(c)).sum().backward()
        opt.step()
        g = grad(wn)
        if ref.startswith("sgd"):
            wd = 0.01 if ref == "sgd_mom" else 0.0
            g = g + wd * wn
            if ref != "sgd":
                buf = g if buf is None else 0.9 * buf + g
                g = g + 0.9 * buf if ref == "sgd_nesterov" else buf
            wn = wn - 0.1 * g
        else:
            lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
            if ref == "adamw":
                wn = wn * (1 - lr * 0.01)
            elif ref == "adam_wd":
                g = g + 0.1 * wn
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            denom = np.sqrt(v) / math.sqrt(1 - b2 ** step) + eps
            wn = wn - lr / (1 - b1 ** step) * m / denom
        np.testing.assert_allclose(p.numpy(), wn, rtol=1e-6, atol=1e-9, err_msg=f"step {step}")


def test_optimizer_updates_reach_the_module():
    gt.manual_seed(1)
    model = nn.Linear(3, 1)
    x, y = gt.randn(16, 3), gt.randn(16, 1)
    opt = gt.optim.Adam(model.parameters(), lr=0.05)
    sched = gt.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert sched.get_last_lr() == [0.05 * 0.25]
    with pytest.raises(ValueError):
        gt.optim.SGD([], lr=0.1)


def test_client_nn_alias():
    from gt.client import nn as cnn

    assert cnn is nn and cnn.Module is nn.Module and nn.SGD is gt.optim.SGD


def test_parameter_from_data():
    p = nn.Parameter(np.ones((2, 2), dtype=np.float64))
    assert p.requires_grad and p.is_leaf and p.dtype == gt.float64
    q = nn.Parameter(gt.ones(3) * 2)
    assert q.is_leaf and q.requires_grad

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(gt.zeros(2))
            self.register_parameter("b", nn.Parameter([1.0, 2.0]))

    assert [n for n, _ in M().named_parameters()] == ["w", "b"]


def test_save_and_load_checkpoints(tmp_path):
    a, b = Net(), Net()
    path = tmp_path / "net.safetensors"
    gt.save(a, path)
    sd = gt.load(path)
    assert sorted(sd) == sorted(n for n, _ in a.named_parameters())
    b.load_state_dict(sd)
    x = gt.randn(3, 4)
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), rtol=1e-6)
    gt.save({"i": gt.tensor([1, 2]), "d": gt.ones(2, dtype=gt.float64)}, str(path))
    back = gt.load(str(path))
    assert back["i"].dtype == gt.int64 and back["d"].dtype == gt.float64
    with pytest.raises(FileNotFoundError):
        gt.load(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError):
        gt.save({"x": 1}, path)
    (tmp_path / "bad").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError):
        gt.load(tmp_path / "bad")
