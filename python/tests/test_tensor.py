"""Tensor values against NumPy: creation, dtypes, arithmetic (with reflected forms), matmul,
comparisons, elementwise functions, reductions, views, splitting, indexing, reads and repr."""

import numpy as np
import pytest

import gt


def close(t, ref, tol=1e-5):
    got = t.numpy()
    assert got.shape == np.shape(ref), (got.shape, np.shape(ref))
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


@pytest.fixture
def ab(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32) + 3.0
    return a, b, gt.from_numpy(a), gt.from_numpy(b)


def test_creation_shapes_and_dtypes():
    assert gt.randn(2, 3).shape == (2, 3)
    assert gt.randn((2, 3)).shape == (2, 3)
    assert gt.randn([4]).dtype == gt.float32
    assert gt.randn(2, dtype="float64").dtype == gt.float64
    assert gt.randn(2, dtype=gt.float64).dtype == gt.float64
    assert gt.rand(5).numpy().min() >= 0.0 and gt.rand(5).numpy().max() < 1.0
    close(gt.zeros(2, 3), np.zeros((2, 3)))
    close(gt.ones(4), np.ones(4))
    assert gt.ones(2, dtype=gt.int64).dtype == gt.int64
    close(gt.full([2, 2], 7.5), np.full((2, 2), 7.5))
    close(gt.arange(0, 5), np.arange(5))
    assert gt.randn(2, 2, requires_grad=True).requires_grad
    assert not gt.zeros(2).requires_grad
    assert {gt.float32, gt.float64, gt.int64, gt.bool} == {gt.float32, gt.float64, gt.int64, gt.bool}
    assert repr(gt.float32) == "gt.float32" and gt.float32.name == "float32"
    assert gt.float32 == "float32" and gt.int64 == np.int64 and gt.float32 != gt.float64
    assert len({gt.float32, gt.float64, gt.int64, gt.bool}) == 4


def test_tensor_from_lists_and_numpy():
    t = gt.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.dtype == gt.float32
    close(t, [[1, 2], [3, 4]])
    assert gt.tensor([1, 2, 3]).dtype == gt.int64
    assert gt.tensor([True, False]).dtype == gt.bool
    assert gt.tensor(2.5).shape == ()
    assert gt.tensor([1, 2], dtype=gt.float64).dtype == gt.float64
    assert gt.tensor([1.0], requires_grad=True).requires_grad
    for dt in (np.float32, np.float64, np.int64, np.bool_):
        arr = (np.arange(6).reshape(2, 3) % 2).astype(dt)
        t = gt.from_numpy(arr)
        assert t.numpy().dtype == arr.dtype
        np.testing.assert_array_equal(t.numpy(), arr)
    # Non-contiguous and narrower inputs.
    arr = np.arange(12, dtype=np.float32).reshape(3, 4).T
    close(gt.from_numpy(arr), arr)
    assert gt.from_numpy(np.arange(3, dtype=np.int32)).dtype == gt.int64
    assert gt.tensor(np.ones(2, dtype=np.float64)).dtype == gt.float64


def test_arithmetic_and_reflected(ab):
    a, b, ta, tb = ab
    close(ta + tb, a + b)
    close(ta - tb, a - b)
    close(ta * tb, a * b)
    close(ta / tb, a / b)
    close(1.0 + ta, 1.0 + a)
    close(2 * ta, 2 * a)
    close(1 / tb, 1 / b)
    close(3.0 - ta, 3.0 - a)
    close(ta + 1, a + 1)
    close(ta ** 2, a ** 2)
    close(tb ** 0.5, b ** 0.5)
    close(2.0 ** ta, 2.0 ** a)
    close(tb ** tb, b ** b, 1e-4)
    close(-ta, -a)
    close(abs(ta), abs(a))
    close(ta + gt.from_numpy(b[0]), a + b[0])  # broadcasting


def test_matmul_and_transpose(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((4, 5)).astype(np.float32)
    ta, tb = gt.from_numpy(a), gt.from_numpy(b)
    close(ta @ tb, a @ b)
    close(ta.matmul(tb), a @ b)
    close(ta.T, a.T)
    close(ta.t(), a.T)
    close(ta.transpose(), a.T)
    close(ta.transpose(0, 1), a.T)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    close(gt.from_numpy(x) @ tb, x @ b)
    close(gt.from_numpy(x).transpose(-2, -1), np.swapaxes(x, -2, -1))
    close(gt.from_numpy(x).T, x.T)


def test_comparisons(ab):
    a, b, ta, tb = ab
    for got, ref in [(ta < tb, a < b), (ta <= 0, a <= 0), (ta > 0, a > 0), (ta >= tb, a >= b),
                     (ta == ta, a == a), (ta != 0.5, a != 0.5)]:
        assert got.dtype == gt.bool
        np.testing.assert_array_equal(got.numpy(), ref)
    assert (ta == None) is False  # noqa: E711  (falls back to identity, like PyTorch)
    assert len({ta, tb}) == 2  # hashable by identity


def test_elementwise_functions(ab):
    a, b, ta, tb = ab
    close(ta.exp(), np.exp(a))
    close(tb.log(), np.log(b))
    close(tb.sqrt(), np.sqrt(b))
    close(ta.relu(), np.maximum(a, 0))
    close(ta.sigmoid(), 1 / (1 + np.exp(-a)))
    close(ta.tanh(), np.tanh(a))
    e = np.exp(a - a.max(-1, keepdims=True))
    sm = e / e.sum(-1, keepdims=True)
    close(ta.softmax(), sm)
    close(ta.softmax(dim=-1), sm)
    close(ta.log_softmax(-1), np.log(sm))
    e0 = np.exp(a - a.max(0, keepdims=True))
    close(ta.softmax(axis=0), e0 / e0.sum(0, keepdims=True))
    close(gt.exp(ta), np.exp(a))
    close(gt.relu(ta), np.maximum(a, 0))
    close(ta.clamp(-0.5, 0.5), np.clip(a, -0.5, 0.5))


def test_reductions(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    t = gt.from_numpy(x)
    for name in ("sum", "mean", "max", "min"):
        ref = getattr(np, name)
        close(getattr(t, name)(), ref(x))
        close(getattr(t, name)(axis=1), ref(x, axis=1))
        close(getattr(t, name)(axis=-1, keepdims=True), ref(x, axis=-1, keepdims=True))
        close(getattr(t, name)(axis=(0, 2)), ref(x, axis=(0, 2)))
        close(getattr(t, name)(dim=1, keepdim=True), ref(x, axis=1, keepdims=True))
        close(getattr(t, name)(1), ref(x, axis=1))
    close(t.sum(axis=None, keepdims=True), x.sum(keepdims=True))
    close(t.var(1), x.var(1, ddof=1))
    close(t.std(), x.std(ddof=1))
    np.testing.assert_array_equal(t.argmax(dim=2).numpy(), x.argmax(2))


def test_views(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    t = gt.from_numpy(x)
    close(t.reshape(6, 4), x.reshape(6, 4))
    close(t.reshape((4, -1)), x.reshape(4, -1))
    close(t.view(-1), x.reshape(-1))
    close(t.view([2, 12]), x.reshape(2, 12))
    close(t.permute(2, 0, 1), x.transpose(2, 0, 1))
    close(t.permute((1, 2, 0)), x.transpose(1, 2, 0))
    close(t.unsqueeze(0), x[None])
    close(t.unsqueeze(-1), x[..., None])
    close(t.unsqueeze(1).squeeze(1), x)
    close(gt.ones(1, 3, 1).squeeze(), np.ones(3))
    close(t.flatten(), x.reshape(-1))
    assert t.ndim == 3 and t.dim() == 3 and t.numel() == 24 and len(t) == 2
    assert t.size() == (2, 3, 4) and t.size(-1) == 4


def test_split_chunk_cat_stack(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    t = gt.from_numpy(x)
    parts = t.split(2)
    assert [p.shape for p in parts] == [(2, 4), (2, 4), (1, 4)]
    close(parts[2], x[4:])
    a, b = t.split([3, 2], dim=0)
    close(b, x[3:])
    c = t.chunk(2, dim=1)
    close(c[1], x[:, 2:])
    close(gt.cat(list(parts), axis=0), x)
    close(gt.cat([t, t], axis=1), np.concatenate([x, x], 1))
    close(gt.cat([t, t], dim=-1), np.concatenate([x, x], -1))
    close(gt.stack([t, t]), np.stack([x, x]))


def test_indexing_get(rng):
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    t = gt.from_numpy(x)
    for key in [0, -1, (1, 2), (slice(1, 3),), (slice(None), 2), (..., 1), (None, 0),
                (slice(0, 4, 2), ..., slice(None, None, 3)), (1, None, slice(2, None), -1),
                (..., None), (slice(-3, None),), (slice(10, 20),)]:
        close(t[key], x[key])
    close(t[gt.tensor([2, 0])], x[[2, 0]])
    with pytest.raises(IndexError):
        t[4]
    with pytest.raises(IndexError):
        t[0, 0, 0, 0]
    assert len(list(gt.arange(0, 3))) == 3  # iteration stops at IndexError


def test_indexing_set(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    t = gt.from_numpy(x.copy())
    t[0] = 1.0
    x[0] = 1.0
    t[1:3, 2:] = gt.zeros(2, 3)
    x[1:3, 2:] = 0.0
    t[..., -1] = gt.from_numpy(np.arange(4, dtype=np.float32))
    x[..., -1] = np.arange(4)
    close(t, x)


def test_reads_and_repr():
    t = gt.tensor([[1.0, 2.0], [3.0, 4.5]])
    assert repr(t) == "tensor([[1.0000, 2.0000],\n        [3.0000, 4.5000]])"
    assert repr(gt.tensor([1, 2])) == "tensor([1, 2], dtype=gt.int64)"
    assert repr(gt.ones(2, requires_grad=True)) == "tensor([1., 1.], requires_grad=True)"
    assert t.sum().item() == 10.5
    assert isinstance(gt.tensor([3])[0].item(), int)
    assert gt.tensor([True]).item() is True
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.5]]
    assert isinstance(t.data, gt.Tensor) and not t.data.requires_grad
    np.testing.assert_array_equal(t.data.numpy(), t.numpy())
    np.testing.assert_array_equal(np.asarray(t), t.numpy())
    assert float(t[1, 1]) == 4.5
    assert bool(gt.tensor(1.0) > 0)


def test_dtype_conversions():
    t = gt.tensor([1.5, -2.0])
    assert t.long().dtype == gt.int64
    np.testing.assert_array_equal(t.long().numpy(), [1, -2])
    assert t.double().dtype == gt.float64
    assert t.to(gt.bool).dtype == gt.bool
    assert t.to("float64").dtype == gt.float64
    assert (t > 0).float().dtype == gt.float32


def test_module_level_helpers(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    t = gt.from_numpy(x)
    close(gt.where(t > 0, t, 0.0), np.where(x > 0, x, 0.0))
    close(gt.where(t > 0, 1.0, t), np.where(x > 0, 1.0, x))
    close(gt.zeros_like(t), np.zeros_like(x))
    close(gt.ones_like(t), np.ones_like(x))
    close(gt.full_like(t, 3.0), np.full_like(x, 3.0))
    assert gt.randn_like(t).shape == (2, 3)
    assert gt.is_tensor(t) and not gt.is_tensor(x)
    close(gt.softmax(t, dim=0), np.exp(x) / np.exp(x).sum(0))
    close(gt.sum(t, axis=1), x.sum(1))
    close(gt.matmul(t, t.T), x @ x.T)
    assert gt.tensor(t).shape == (2, 3)
    close(t.maximum(gt.zeros(3)), np.maximum(x, 0))
    close(t.masked_fill(t < 0, 0.0), np.where(x < 0, 0, x))
    close(t.expand(4, 2, 3), np.broadcast_to(x, (4, 2, 3)))
    close(t.clone(), x)
