"""max_pool2d / avg_pool2d / global_avg_pool2d: definition loops, finite differences, PyTorch, errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyconv
from tinyconv.ops.pool import avg_pool2d, global_avg_pool2d, max_pool2d
from tinyconv.testing import check_grad, distinct_arrays, pool_params


def out_size(size, k, s, p, ceil_mode):
    span = size + 2 * p - k
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def naive_pool(x, kernel, stride, padding, ceil_mode, kind, count_include_pad=True):
    n, c, h, w = x.shape
    oh = out_size(h, kernel[0], stride[0], padding[0], ceil_mode)
    ow = out_size(w, kernel[1], stride[1], padding[1], ceil_mode)
    y = np.zeros((n, c, oh, ow))
    for p in range(oh):
        for q in range(ow):
            r0, s0 = p * stride[0] - padding[0], q * stride[1] - padding[1]
            r1 = min(r0 + kernel[0], h + padding[0])
            s1 = min(s0 + kernel[1], w + padding[1])
            padded_area = (r1 - r0) * (s1 - s0)
            rows = range(max(r0, 0), min(r1, h))
            cols = range(max(s0, 0), min(s1, w))
            window = x[:, :, rows.start:rows.stop, cols.start:cols.stop]
            if kind == "max":
                y[:, :, p, q] = window.max(axis=(2, 3))
            else:
                divisor = padded_area if count_include_pad else len(rows) * len(cols)
                y[:, :, p, q] = window.sum(axis=(2, 3)) / divisor
    return y


def problem(p):
    return distinct_arrays((p["n"], p["c"], p["h"], p["w"]))


def args(p):
    return dict(kernel_size=p["kernel"], stride=p["stride"], padding=p["padding"], ceil_mode=p["ceil_mode"])


@settings(max_examples=60)
@given(pool_params(), st.data())
def test_max_forward_matches_definition(p, data):
    x = data.draw(problem(p))
    y = max_pool2d(tinyconv.tensor(x), **args(p))
    np.testing.assert_array_equal(y.data, naive_pool(x, p["kernel"], p["stride"], p["padding"], p["ceil_mode"], "max"))


@settings(max_examples=60)
@given(pool_params(), st.booleans(), st.data())
def test_avg_forward_matches_definition(p, count_include_pad, data):
    x = data.draw(problem(p))
    y = avg_pool2d(tinyconv.tensor(x), count_include_pad=count_include_pad, **args(p))
    expected = naive_pool(x, p["kernel"], p["stride"], p["padding"], p["ceil_mode"], "avg", count_include_pad)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=30)
@given(pool_params(), st.data())
def test_max_gradients(p, data):
    # Distinct values spaced >= 2/size apart keep every argmax stable under the 1e-6 perturbation.
    check_grad(lambda x: max_pool2d(x, **args(p)), data.draw(problem(p)))


@settings(max_examples=30)
@given(pool_params(), st.booleans(), st.data())
def test_avg_gradients(p, count_include_pad, data):
    check_grad(lambda x: avg_pool2d(x, count_include_pad=count_include_pad, **args(p)), data.draw(problem(p)))


def test_global_avg_pool():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    np.testing.assert_allclose(global_avg_pool2d(tinyconv.tensor(x)).data, x.mean(axis=(2, 3)))
    check_grad(global_avg_pool2d, x)


def test_max_pool_overlapping_windows_accumulate():
    """3x3 stride-1 windows over a single peak: every window picks it, so its gradient is their count."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = 5.0
    t = tinyconv.tensor(x, requires_grad=True)
    max_pool2d(t, 3, stride=1).sum().backward()
    assert t.grad[0, 0, 1, 1] == 4.0 and t.grad.sum() == 4.0


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_matches_pytorch(kind, ceil_mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 11, 10)).astype(np.float32)
    kwargs = dict(kernel_size=3, stride=2, padding=1, ceil_mode=ceil_mode)
    tx = torch.tensor(x, requires_grad=True)
    ty = (torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d)(tx, **kwargs)
    gy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(gy))
    t = tinyconv.tensor(x, requires_grad=True)
    y = (max_pool2d if kind == "max" else avg_pool2d)(t, **kwargs)
    y.backward(gy)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn", [max_pool2d, avg_pool2d])
def test_bad_input(fn):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"{name}: input must be 4-D .*\(3, 8, 8\)"):
        fn(tinyconv.tensor(np.zeros((3, 8, 8), np.float32)), 2)
    with pytest.raises(ValueError, match=rf"{name}: kernel \(5, 5\) is larger than the padded input"):
        fn(tinyconv.tensor(np.zeros((1, 1, 3, 3), np.float32)), 5)
    with pytest.raises(ValueError, match=rf"{name}: padding"):
        fn(tinyconv.tensor(np.zeros((1, 1, 8, 8), np.float32)), 2, padding=2)
    with pytest.raises(TypeError, match=rf"{name}: input dtype .*int32"):
        fn(tinyconv.tensor(np.zeros((1, 1, 8, 8), np.int32)), 2)
    with pytest.raises(ValueError, match=rf"{name}: stride must be >= 1"):
        fn(tinyconv.tensor(np.zeros((1, 1, 8, 8), np.float32)), 2, stride=0)
