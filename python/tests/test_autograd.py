"""Gradients against central finite differences (float64), and PyTorch's leaf-parameter
semantics: `.grad` accumulation, `p -= lr * p.grad` under no_grad, `p.grad.zero_()`,
`requires_grad_`, refusal of in-place updates of leaves while recording."""

import numpy as np
import pytest

import gt
import gt.nn.functional as F


def fd_check(f, *arrays, eps=1e-6, tol=1e-5):
    """Compares the gradients of `f(*tensors)` (a scalar) with central differences."""
    ts = [gt.from_numpy(a.copy()).requires_grad_() for a in arrays]
    out = f(*ts)
    out.backward()
    for i, a in enumerate(arrays):
        num = np.zeros_like(a)
        it = np.nditer(a, flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            plus, minus = [x.copy() for x in arrays], [x.copy() for x in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            with gt.no_grad():
                fp = f(*[gt.from_numpy(x) for x in plus]).item()
                fm = f(*[gt.from_numpy(x) for x in minus]).item()
            num[idx] = (fp - fm) / (2 * eps)
        got = ts[i].grad
        assert got is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(got.numpy(), num, rtol=tol, atol=tol, err_msg=f"input {i}")


def arr(rng, *shape, positive=False):
    a = rng.standard_normal(shape)
    return np.abs(a) + 0.5 if positive else a


CASES = {
    "add_sub_mul_div": (lambda a, b: ((a + b) * (a - 2.0) / (b * b + 1.0)).sum(), [(3, 4), (3, 4)]),
    "reflected": (lambda a: (1.0 + a).sum() + (2 * a).sum() + (1 / (a * a + 1)).sum() + (3 - a).mean(), [(2, 3)]),
    "pow": (lambda a: (a ** 3).sum() + (2.0 ** a).sum(), [(2, 3)]),
    "neg_matmul": (lambda a, b: (-(a @ b)).sum(), [(3, 4), (4, 2)]),
    "exp_tanh_sigmoid": (lambda a: (a.exp() + a.tanh() + a.sigmoid()).sum(), [(2, 3)]),
    "relu": (lambda a: (a.relu() * a).sum(), [(3, 3)]),
    "softmax": (lambda a: (a.softmax(-1) * gt.arange(0, 4, dtype=gt.float64)).sum(), [(3, 4)]),
    "log_softmax": (lambda a: (a.log_softmax(dim=0) * a).sum(), [(3, 4)]),
    "sum_mean_max_axes": (lambda a: a.sum(axis=1).max() + a.mean(axis=(0, 2), keepdims=True).sum()
                          + a.max(axis=0).sum(), [(2, 3, 4)]),
    "views": (lambda a: (a.reshape(4, 6).T @ a.view(-1, 4).permute(1, 0)[:, :4]).sum()
              + a.transpose(0, 2).unsqueeze(0).squeeze(0).sum(), [(2, 3, 4)]),
    "split_chunk_cat": (lambda a: (a.split(1)[0] * a.chunk(2, dim=1)[1].sum()).sum()
                        + gt.cat([a, a * 2], axis=1).pow(2).sum(), [(2, 4)]),
    "indexing": (lambda a: (a[0] * a[1, ::2].sum() + a[..., None][:, 1:3].sum()).sum(), [(3, 4)]),
    "losses": (lambda p, t: F.mse_loss(p, t) + F.binary_cross_entropy(p.sigmoid(), t.sigmoid())
               + F.binary_cross_entropy_with_logits(p, t.sigmoid()), [(4, 3), (4, 3)]),
    "linear_layer_norm": (lambda x, w, b: F.layer_norm(F.linear(x, w, b), 3).pow(2).mean()
                          + F.gelu(x).sum(), [(2, 4), (3, 4), (3,)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_finite_differences(name, rng):
    f, shapes = CASES[name]
    fd_check(f, *[arr(rng, *s) for s in shapes])


def test_log_sqrt_gradients(rng):
    fd_check(lambda a: (a.log() + a.sqrt()).sum(), arr(rng, 3, 2, positive=True))


def test_cross_entropy_and_embedding_gradients(rng):
    ids = gt.tensor([1, 0, 3])
    fd_check(lambda logits: F.cross_entropy(logits, ids), arr(rng, 3, 4))
    fd_check(lambda w: F.embedding(gt.tensor([[0, 2], [2, 1]]), w).pow(2).sum(), arr(rng, 3, 2))


def test_setitem_is_differentiable(rng):
    def f(a, v):
        x = a * 1.0
        x[0, 1:3] = v * 2.0
        return (x * x).sum()

    fd_check(f, arr(rng, 2, 4), arr(rng, 2))


def test_grad_accumulates_and_resets(rng):
    x = gt.from_numpy(arr(rng, 3)).requires_grad_()
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0, 5.0])
    x.grad.zero_()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 0.0])
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0, 1.0])
    x.grad = None
    assert x.grad is None


def test_parameter_update_semantics(rng):
    a = arr(rng, 2, 2)
    p = gt.from_numpy(a.copy()).requires_grad_()
    assert p.is_leaf and p.requires_grad
    (p * p).sum().backward()
    g = p.grad.numpy()
    np.testing.assert_allclose(g, 2 * a)
    with pytest.raises(RuntimeError, match="in-place"):
        p -= 0.1 * p.grad
    alias = p
    with gt.no_grad():
        p -= 0.1 * p.grad
        p.grad.zero_()
    assert p is alias
    assert p.is_leaf and p.requires_grad
    np.testing.assert_allclose(p.numpy(), a - 0.1 * g)
    np.testing.assert_allclose(p.grad.numpy(), np.zeros((2, 2)))
    with gt.no_grad():
        p += 1.0
        p *= 2.0
        p /= 2.0
        p.sub_(1.0)
    np.testing.assert_allclose(p.numpy(), a - 0.1 * g, rtol=1e-6)
    (p * 3.0).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), np.full((2, 2), 3.0))


def test_requires_grad_and_no_grad():
    x = gt.ones(2)
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad = False
    assert not x.requires_grad
    y = gt.ones(2, requires_grad=True)
    with gt.no_grad():
        assert not gt.is_grad_enabled()
        z = y * 2
    assert gt.is_grad_enabled()
    assert not z.requires_grad
    assert (y * 2).requires_grad
    assert not (y * 2).is_leaf
    assert not y.detach().requires_grad

    @gt.no_grad()
    def f():
        return y * 2

    assert not f().requires_grad
    with pytest.raises(ValueError):
        gt.zeros(2, dtype=gt.int64).requires_grad_()
    with pytest.raises(ValueError, match="backward"):
        gt.ones(2).sum().backward()
    with pytest.raises(ValueError, match="backward"):
        (y * 2).backward()


def test_backward_with_explicit_gradient(rng):
    x = gt.from_numpy(arr(rng, 3)).requires_grad_()
    (x * 2.0).backward(gt.tensor([1.0, 2.0, 3.0], dtype=gt.float64))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])
