"""dropout, nearest upsampling and the fused residual add+ReLU."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyconv
from tinyconv import random
from tinyconv.ops.dropout import dropout
from tinyconv.ops.residual import add_relu
from tinyconv.ops.upsample import upsample_nearest
from tinyconv.testing import arrays, check_grad, distinct_arrays

shapes = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))


def test_dropout_scales_kept_values_and_routes_gradient():
    random.manual_seed(0)
    x = tinyconv.tensor(np.ones((200, 50)), requires_grad=True)
    y = dropout(x, p=0.3, training=True)
    kept = y.data != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y.data[kept], 1 / 0.7)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.7)


def test_dropout_is_identity_in_eval_and_seeded():
    x = tinyconv.tensor(np.arange(12.0).reshape(3, 4))
    assert dropout(x, 0.5, training=False) is x
    random.manual_seed(7)
    a = dropout(x, 0.5).data
    random.manual_seed(7)
    np.testing.assert_array_equal(a, dropout(x, 0.5).data)


def test_dropout_gradient_with_fixed_mask():
    x = np.random.default_rng(0).standard_normal((3, 4))

    def fn(t):
        random.manual_seed(3)  # the same mask at every evaluation
        return dropout(t, 0.4)

    check_grad(fn, x)


def test_dropout_bad_p():
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got 1.5"):
        dropout(tinyconv.tensor(np.ones(3)), 1.5)


@settings(max_examples=25)
@given(shapes, st.integers(1, 3), st.integers(1, 3), st.data())
def test_upsample_nearest(shape, sh, sw, data):
    x = data.draw(arrays(shape))
    y = upsample_nearest(tinyconv.tensor(x), (sh, sw))
    n, c, h, w = shape
    expected = np.empty((n, c, h * sh, w * sw))
    for r in range(h * sh):
        for s in range(w * sw):
            expected[:, :, r, s] = x[:, :, r // sh, s // sw]
    np.testing.assert_array_equal(y.data, expected)
    check_grad(lambda t: upsample_nearest(t, (sh, sw)), x)


def test_upsample_bad_input():
    with pytest.raises(ValueError, match="upsample_nearest: input must be 4-D"):
        upsample_nearest(tinyconv.tensor(np.zeros((2, 2), np.float32)))
    with pytest.raises(ValueError, match="upsample_nearest: scale_factor must be >= 1"):
        upsample_nearest(tinyconv.tensor(np.zeros((1, 1, 2, 2), np.float32)), 0)


@settings(max_examples=25)
@given(shapes, st.sampled_from([np.float32, np.float64]), st.data())
def test_add_relu_forward(shape, dtype, data):
    a, b = data.draw(arrays(shape, dtype)), data.draw(arrays(shape, dtype))
    y = add_relu(tinyconv.tensor(a), tinyconv.tensor(b))
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.data, np.maximum(a + b, 0))


@settings(max_examples=25)
@given(shapes, st.data())
def test_add_relu_gradients(shape, data):
    # a + b must stay away from 0 (the kink): a takes distinct values, b is 0.
    a = data.draw(distinct_arrays(shape)) + 1.0 / (2 * np.prod(shape) + 2)
    check_grad(add_relu, a, np.zeros(shape))


def test_add_relu_bad_input():
    with pytest.raises(ValueError, match=r"add_relu: shapes must match .* \(2, 3\) and \(3,\)"):
        add_relu(tinyconv.tensor(np.zeros((2, 3))), tinyconv.tensor(np.zeros(3)))
    with pytest.raises(TypeError, match="add_relu: dtypes must match"):
        add_relu(tinyconv.tensor(np.zeros(3, np.float32)), tinyconv.tensor(np.zeros(3)))
