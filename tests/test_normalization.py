"""batch_norm and local_response_norm: definitions, finite differences, PyTorch, errors."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyconv
from tinyconv.kernels.cpu import batch_norm as batch_norm_kernels
from tinyconv.ops.lrn import local_response_norm
from tinyconv.ops.normalization import batch_norm
from tinyconv.ops.activation import relu
from tinyconv.testing import arrays, check_grad, distinct_arrays

shapes_4d = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))
shapes_2d = st.tuples(st.integers(2, 5), st.integers(1, 4))


def stats(c):
    return tinyconv.tensor(np.zeros(c)), tinyconv.tensor(np.ones(c))


def kernel_loops(loops):
    """The CPU kernels' two ways, forced: "per channel" loops or "per image" loops (the way of
    tiny planes), whatever the plane size."""
    return mock.patch.object(batch_norm_kernels, "TINY_PLANE", 0 if loops == "per channel" else 10**9)


LOOPS = pytest.mark.parametrize("loops", ["per channel", "per image"])


@LOOPS
@settings(max_examples=20)
@given(shape=st.one_of(shapes_4d, shapes_2d).filter(lambda s: np.prod(s) // s[1] >= 2), data=st.data())
def test_training_forward_and_gradients(loops, shape, data):
    with kernel_loops(loops):
        x = data.draw(arrays(shape))
        c = shape[1]
        gamma, beta = np.linspace(0.5, 1.5, c), np.linspace(-1, 1, c)
        axes = (0,) if len(shape) == 2 else (0, 2, 3)
        bshape = (1, c) + (1,) * (len(shape) - 2)
        mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
        expected = (x - mean) / np.sqrt(var + 1e-5) * gamma.reshape(bshape) + beta.reshape(bshape)
        y = batch_norm(tinyconv.tensor(x), *stats(c), tinyconv.tensor(gamma), tinyconv.tensor(beta), training=True)
        np.testing.assert_allclose(y.data, expected, rtol=1e-9, atol=1e-9)
        check_grad(lambda x, g, b: batch_norm(x, None, None, g, b, training=True), x, gamma, beta, atol=1e-4)


@LOOPS
@settings(max_examples=15)
@given(shape=shapes_4d, data=st.data())
def test_eval_gradients(loops, shape, data):
    x = data.draw(arrays(shape))
    c = shape[1]
    rm, rv = tinyconv.tensor(np.linspace(-0.5, 0.5, c)), tinyconv.tensor(np.linspace(0.5, 2.0, c))
    with kernel_loops(loops):
        check_grad(lambda x, g, b: batch_norm(x, rm, rv, g, b, training=False), x, np.ones(c) * 1.3, np.zeros(c) + 0.2)


def kink_free_beta(scaled):
    """Per-channel beta that puts relu's kink halfway between the two middle values of the
    channel in ``scaled`` (the normalised input times gamma), so that finite differences never
    step across it."""
    channels = np.moveaxis(scaled, 1, 0).reshape(scaled.shape[1], -1)
    z = np.sort(channels, axis=1)
    middle = z.shape[1] // 2
    return -(z[:, middle - 1] + z[:, middle]) / 2


@LOOPS
@settings(max_examples=20)
@given(shape=st.one_of(shapes_4d, shapes_2d).filter(lambda s: np.prod(s) // s[1] >= 2), data=st.data())
def test_fused_relu_forward_and_gradients(loops, shape, data):
    with kernel_loops(loops):
        x = data.draw(distinct_arrays(shape))
        c = shape[1]
        axes = (0,) if len(shape) == 2 else (0, 2, 3)
        bshape = (1, c) + (1,) * (len(shape) - 2)
        gamma = np.linspace(0.5, 1.5, c)
        xhat = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-5)
        beta = kink_free_beta(xhat * gamma.reshape(bshape))
        y = batch_norm(tinyconv.tensor(x), None, None, tinyconv.tensor(gamma), tinyconv.tensor(beta), training=True,
                       relu=True)
        np.testing.assert_allclose(y.data, np.maximum(xhat * gamma.reshape(bshape) + beta.reshape(bshape), 0),
                                   rtol=1e-9, atol=1e-9)
        check_grad(lambda x, g, b: batch_norm(x, None, None, g, b, training=True, relu=True), x, gamma, beta, atol=1e-4)

        rm, rv = tinyconv.tensor(np.linspace(-0.5, 0.5, c)), tinyconv.tensor(np.linspace(0.5, 2.0, c))
        eval_beta = kink_free_beta((x - rm.data.reshape(bshape)) / np.sqrt(rv.data.reshape(bshape) + 1e-5)
                                   * gamma.reshape(bshape))
        check_grad(lambda x, g, b: batch_norm(x, rm, rv, g, b, training=False, relu=True), x, gamma, eval_beta)


@LOOPS
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_relu_equals_batch_norm_then_relu_exactly(loops, training, dtype):
    with kernel_loops(loops):
        rng = np.random.default_rng(3)
        x, gy = (rng.standard_normal((6, 5, 7, 3)).astype(dtype) for _ in range(2))
        gamma, beta = (rng.standard_normal(5).astype(dtype) for _ in range(2))
        results = []
        for fused in (True, False):
            leaves = [tinyconv.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
            rm, rv = stats(5)
            rm.data, rv.data = rm.data.astype(dtype), rv.data.astype(dtype) + 0.5
            y = batch_norm(leaves[0], rm, rv, leaves[1], leaves[2], training=training, relu=fused)
            y = y if fused else relu(y)
            y.backward(gy)
            results.append([y.data, rm.data, rv.data] + [leaf.grad for leaf in leaves])
        for mine, reference in zip(*results):
            np.testing.assert_array_equal(mine, reference)


@LOOPS
def test_statistics_of_values_far_from_zero(loops):
    # One-pass statistics must not cancel: mean 1e4, standard deviation 1e-2.
    rng = np.random.default_rng(4)
    x = (1e4 + 1e-2 * rng.standard_normal((16, 3, 8, 8))).astype(np.float32)
    rm, rv = stats(3)
    with kernel_loops(loops):
        batch_norm(tinyconv.tensor(x), rm, rv, training=True, momentum=1.0)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(rm.data, exact.mean(axis=(0, 2, 3)), rtol=1e-12)
    n = x.size // 3
    np.testing.assert_allclose(rv.data, exact.var(axis=(0, 2, 3)) * n / (n - 1), rtol=1e-4)


def test_running_statistics_update():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
    rm, rv = stats(3)
    batch_norm(tinyconv.tensor(x), rm, rv, training=True, momentum=0.1)
    n = x.size // 3
    np.testing.assert_allclose(rm.data, 0.1 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(rv.data, 0.9 + 0.1 * x.var(axis=(0, 2, 3)) * n / (n - 1))


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("fused_relu", [False, True])
def test_batch_norm_matches_pytorch(training, fused_relu):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 4, 6, 6)).astype(np.float32) * 3 + 2
    gamma, beta = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    rm0, rv0 = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    trm, trv = torch.tensor(rm0), torch.tensor(rv0)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=training, momentum=0.1, eps=1e-5)
    ty = torch.relu(ty) if fused_relu else ty
    ty.backward(torch.tensor(gy))
    ours = [tinyconv.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    rm, rv = tinyconv.tensor(rm0.copy()), tinyconv.tensor(rv0.copy())
    y = batch_norm(ours[0], rm, rv, ours[1], ours[2], training=training, momentum=0.1, eps=1e-5,
                   relu=fused_relu)
    y.backward(gy)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rm.data, trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.data, trv.numpy(), rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(ours, (tx, tg, tb)):
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_batch_norm_bad_input():
    x = tinyconv.tensor(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"batch_norm: input must be \(N, C\) or \(N, C, H, W\), got shape \(2, 3, 4\)"):
        batch_norm(tinyconv.tensor(np.zeros((2, 3, 4), np.float32)), None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: weight must have shape \(3,\).*got \(4,\)"):
        batch_norm(x, None, None, tinyconv.tensor(np.ones(4, np.float32)), training=True)
    with pytest.raises(ValueError, match="batch_norm: eval mode needs running_mean"):
        batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="more than one value per channel"):
        batch_norm(tinyconv.tensor(np.zeros((1, 3), np.float32)), None, None, training=True)
    with pytest.raises(TypeError, match="batch_norm: .*float32.*float64"):
        batch_norm(x, None, None, tinyconv.tensor(np.ones(3)), training=True)
    with pytest.raises(ValueError, match=r"batch_norm_relu: bias must have shape \(3,\).*got \(2,\)"):
        batch_norm(x, None, None, bias=tinyconv.tensor(np.ones(2, np.float32)), training=True, relu=True)


def naive_lrn(x, size, alpha, beta, k):
    n, c, h, w = x.shape
    y = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        s = k + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] / s ** beta
    return y


@settings(max_examples=30)
@given(shapes_4d, st.integers(1, 5), st.data())
def test_lrn_forward_and_gradients(shape, size, data):
    x = data.draw(arrays(shape))
    y = local_response_norm(tinyconv.tensor(x), size, alpha=0.5, beta=0.75, k=2.0)
    np.testing.assert_allclose(y.data, naive_lrn(x, size, 0.5, 0.75, 2.0), rtol=1e-10, atol=1e-12)
    check_grad(lambda t: local_response_norm(t, size, alpha=0.5, beta=0.75, k=2.0), x)


@pytest.mark.torch
def test_lrn_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((2, 7, 5, 5)).astype(np.float32) * 3
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.local_response_norm(tx, 5, alpha=1e-2, beta=0.75, k=2.0)
    ty.sum().backward()
    t = tinyconv.tensor(x, requires_grad=True)
    y = local_response_norm(t, 5, alpha=1e-2, beta=0.75, k=2.0)
    y.sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_lrn_bad_input():
    with pytest.raises(ValueError, match=r"local_response_norm: input must be 4-D"):
        local_response_norm(tinyconv.tensor(np.zeros((2, 3), np.float32)), 3)
    with pytest.raises(ValueError, match="local_response_norm: size must be a positive int"):
        local_response_norm(tinyconv.tensor(np.zeros((1, 3, 2, 2), np.float32)), 0)
