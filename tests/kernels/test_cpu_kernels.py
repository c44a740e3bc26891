"""The Numba CPU kernels against naive references written straight from each kernel's definition.

The references are plain Python loops over every (output, tap) pair, scattering where the kernels
gather, so they share no code or loop structure with the kernels. Shapes stay tiny to keep the
loops cheap; hypothesis covers odd sizes, non-square kernels, stride > kernel, padding up to half
the kernel, dilation 1..3 and both float dtypes.
"""
import itertools
from unittest import mock

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyconv.kernels.cpu import (add_relu, avg_pool_backward, avg_pool_forward, col2im, col2im_phases,
                                  col2im_serial, conv_epilogue, depthwise_backward_input, depthwise_backward_weight,
                                  depthwise_forward, im2col, im2col_phases, im2col_serial, max_pool_backward,
                                  max_pool_forward, relu_backward)
from tinyconv.kernels.cpu import depthwise

DTYPES = (np.float32, np.float64)
# Kernels sum in a different order than the references; float32 gets float32-sized slack.
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
SETTINGS = settings(deadline=None, max_examples=100)


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv_cases(draw):
    """(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, dtype) with oh, ow >= 1."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    # Smallest input that still gives one output, plus a few.
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 11))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 11))
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    return n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, draw(st.sampled_from(DTYPES))


def taps(kh, kw, oh, ow):
    return itertools.product(range(kh), range(kw), range(oh), range(ow))


def ref_im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n_in, c_in, h_in, w_in = x.shape
    col = np.zeros((c_in * kh * kw, n_in * oh * ow), x.dtype)
    for n, c in itertools.product(range(n_in), range(c_in)):
        for i, j, y, z in taps(kh, kw, oh, ow):
            h, w = y * sh - ph + i * dh, z * sw - pw + j * dw
            if 0 <= h < h_in and 0 <= w < w_in:
                col[(c * kh + i) * kw + j, (n * oh + y) * ow + z] = x[n, c, h, w]
    return col


def ref_col2im(col, shape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n_in, c_in, h_in, w_in = shape
    x_grad = np.zeros(shape, np.float64)
    for n, c in itertools.product(range(n_in), range(c_in)):
        for i, j, y, z in taps(kh, kw, oh, ow):
            h, w = y * sh - ph + i * dh, z * sw - pw + j * dw
            if 0 <= h < h_in and 0 <= w < w_in:
                x_grad[n, c, h, w] += col[(c * kh + i) * kw + j, (n * oh + y) * ow + z]
    return x_grad


def depthwise_terms(x_shape, w_shape, sh, sw, ph, pw, dh, dw, oh, ow):
    """Every (n, o, c, i, j, y, z, h, w) with input pixel (h, w) inside the image: the terms of
    the depthwise sum y[n, o, y, z] += w[o, 0, i, j] * x[n, c, h, w], c = o // m."""
    n_in, c_in, h_in, w_in = x_shape
    c_out, _, kh, kw = w_shape
    m = c_out // c_in
    for n, o in itertools.product(range(n_in), range(c_out)):
        for i, j, y, z in taps(kh, kw, oh, ow):
            h, w = y * sh - ph + i * dh, z * sw - pw + j * dw
            if 0 <= h < h_in and 0 <= w < w_in:
                yield n, o, o // m, i, j, y, z, h, w


def random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# --- im2col / col2im -------------------------------------------------------------------------

# The parallel kernels and their single-threaded twins (same task bodies, different loop drivers)
# are held to the same definition.
UNFOLD = pytest.mark.parametrize("im2col", [im2col, im2col_serial], ids=["parallel", "serial"])
FOLD = pytest.mark.parametrize("col2im", [col2im, col2im_serial], ids=["parallel", "serial"])


@UNFOLD
@SETTINGS
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_im2col_matches_definition(im2col, case, seed):
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, dtype = case
    x = random(np.random.default_rng(seed), (n, c, h, w), dtype)
    col = np.full((c * kh * kw, n * oh * ow), np.nan, dtype)  # every entry must be written
    im2col(x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    np.testing.assert_array_equal(col, ref_im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow))


@FOLD
@SETTINGS
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_col2im_matches_definition_and_is_the_adjoint(col2im, case, seed):
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, dtype = case
    rng = np.random.default_rng(seed)
    x = random(rng, (n, c, h, w), dtype)
    col = random(rng, (c * kh * kw, n * oh * ow), dtype)
    x_grad = np.full(x.shape, np.nan, dtype)  # every pixel must be written, uncovered ones as 0
    col2im(col, x_grad, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    expected = ref_col2im(col, x.shape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    np.testing.assert_allclose(x_grad, expected, **TOL[dtype])

    unfolded = np.empty_like(col)
    im2col(x, unfolded, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    lhs = np.vdot(unfolded.astype(np.float64), col.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), x_grad.astype(np.float64))
    assert lhs == pytest.approx(rhs, rel=TOL[dtype]["rtol"] * 10, abs=TOL[dtype]["atol"] * 10)


@st.composite
def strided_cases(draw):
    """conv_cases with both strides > 1 and no dilation: the polyphase layout's problems."""
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, dtype = draw(conv_cases())
    sh, sw = draw(st.integers(2, 4)), draw(st.integers(2, 4))
    return n, c, h, w, kh, kw, sh, sw, ph, pw, out_size(h, kh, sh, ph, 1), out_size(w, kw, sw, pw, 1), dtype


def phase_columns(col, n, oh, ow, q):
    """The real columns of a polyphase col (rows, n*oh*q), as the plain layout (rows, n*oh*ow)."""
    return col.reshape(col.shape[0], n, oh, q)[..., :ow].reshape(col.shape[0], n * oh * ow)


@SETTINGS
@given(strided_cases(), st.integers(0, 2**32 - 1))
def test_im2col_phases_matches_definition(case, seed):
    """Real columns as defined, dummies finite."""
    n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, dtype = case
    q = ow + (kw - 1) // sw
    x = random(np.random.default_rng(seed), (n, c, h, w), dtype)
    col = np.full((c * kh * kw, n * oh * q), np.nan, dtype)
    im2col_phases(x, col, kh, kw, sh, sw, ph, pw, oh, ow)
    np.testing.assert_array_equal(phase_columns(col, n, oh, ow, q), ref_im2col(x, kh, kw, sh, sw, ph, pw, 1, 1, oh, ow))
    assert np.isfinite(col).all()


@SETTINGS
@given(strided_cases(), st.integers(0, 2**32 - 1))
def test_col2im_phases_matches_definition(case, seed):
    n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, dtype = case
    q = ow + (kw - 1) // sw
    rng = np.random.default_rng(seed)
    col = np.zeros((c * kh * kw, n, oh, q), dtype)  # dummy columns zero, as the op passes them
    col[..., :ow] = random(rng, (c * kh * kw, n, oh, ow), dtype)
    x_grad = np.full((n, c, h, w), np.nan, dtype)  # every pixel must be written, uncovered ones as 0
    col2im_phases(col.reshape(c * kh * kw, -1), x_grad, kh, kw, sh, sw, ph, pw, oh, ow)
    expected = ref_col2im(col[..., :ow].reshape(c * kh * kw, -1), x_grad.shape, kh, kw, sh, sw, ph, pw, 1, 1, oh, ow)
    np.testing.assert_allclose(x_grad, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("h, w, kh, kw, ph, pw, dh, dw", [
    (7, 9, 3, 3, 1, 1, 1, 1), (5, 6, 5, 3, 2, 1, 1, 1), (4, 4, 3, 3, 2, 2, 2, 2),
    (6, 5, 1, 1, 0, 0, 1, 1), (1, 1, 3, 3, 1, 1, 1, 1), (2, 1, 3, 3, 1, 1, 1, 1),
    (3, 2, 5, 5, 2, 2, 1, 1)])
def test_im2col_same_convolutions(dtype, h, w, kh, kw, ph, pw, dh, dw):
    """Stride 1 with oh == H and ow == W takes im2col's whole-plane copy path."""
    x = random(np.random.default_rng(3), (2, 3, h, w), dtype)
    col = np.full((3 * kh * kw, 2 * h * w), np.nan, dtype)
    im2col(x, col, kh, kw, 1, 1, ph, pw, dh, dw, h, w)
    np.testing.assert_array_equal(col, ref_im2col(x, kh, kw, 1, 1, ph, pw, dh, dw, h, w))


def test_col2im_uncovered_pixels_are_zero():
    # stride 3 > kernel 2: every third row and column is read by no window.
    x_grad = np.full((1, 1, 8, 8), np.nan)
    col = np.ones((4, 3 * 3))
    col2im(col, x_grad, 2, 2, 3, 3, 0, 0, 1, 1, 3, 3)
    covered = np.zeros((8, 8), bool)
    for r in (0, 1, 3, 4, 6, 7):
        covered[r, [0, 1, 3, 4, 6, 7]] = True
    np.testing.assert_array_equal(x_grad[0, 0], covered.astype(float))


# --- depthwise -------------------------------------------------------------------------------

@st.composite
def depthwise_cases(draw, multipliers=st.integers(1, 3)):
    case = draw(conv_cases())
    return case, draw(multipliers), draw(st.integers(0, 2**32 - 1))


def depthwise_inputs(case, m, seed):
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, dtype = case
    rng = np.random.default_rng(seed)
    x = random(rng, (n, c, h, w), dtype)
    wt = random(rng, (c * m, 1, kh, kw), dtype)
    gy = random(rng, (n, c * m, oh, ow), dtype)
    return x, wt, gy, (sh, sw, ph, pw, dh, dw), (oh, ow)


def depthwise_strategy(strategy):
    """"planes": every problem a plane at a time; "channels-last": every problem with one
    output channel per input channel channels-last, however large its planes."""
    return mock.patch.object(depthwise, "CHANNELS_LAST_MAX_PLANE", 0 if strategy == "planes" else 10**9)


DEPTHWISE_STRATEGIES = pytest.mark.parametrize("strategy", ["planes", "channels-last"])


@DEPTHWISE_STRATEGIES
@SETTINGS
@given(args=depthwise_cases(multipliers=st.sampled_from([1, 2])))
def test_depthwise_forward_matches_definition_for_multiplier_1_and_2(strategy, args):
    case, m, seed = args
    x, wt, _, conv, (oh, ow) = depthwise_inputs(case, m, seed)
    y = np.full((x.shape[0], wt.shape[0], oh, ow), np.nan, x.dtype)
    with depthwise_strategy(strategy):
        depthwise_forward(x, wt, y, *conv)
    expected = np.zeros(y.shape)
    for n, o, c, i, j, yy, z, h, w in depthwise_terms(x.shape, wt.shape, *conv, oh, ow):
        expected[n, o, yy, z] += float(wt[o, 0, i, j]) * float(x[n, c, h, w])
    np.testing.assert_allclose(y, expected, **TOL[x.dtype.type])


@DEPTHWISE_STRATEGIES
@SETTINGS
@given(args=depthwise_cases())
def test_depthwise_backward_matches_definition(strategy, args):
    case, m, seed = args
    x, wt, gy, conv, (oh, ow) = depthwise_inputs(case, m, seed)
    gx = np.full(x.shape, np.nan, x.dtype)
    gw = np.full(wt.shape, np.nan, x.dtype)
    with depthwise_strategy(strategy):
        depthwise_backward_input(gy, wt, gx, *conv)
        depthwise_backward_weight(gy, x, gw, *conv)
    gx_expected, gw_expected = np.zeros(x.shape), np.zeros(wt.shape)
    for n, o, c, i, j, yy, z, h, w in depthwise_terms(x.shape, wt.shape, *conv, oh, ow):
        gx_expected[n, c, h, w] += float(wt[o, 0, i, j]) * float(gy[n, o, yy, z])
        gw_expected[o, 0, i, j] += float(x[n, c, h, w]) * float(gy[n, o, yy, z])
    np.testing.assert_allclose(gx, gx_expected, **TOL[x.dtype.type])
    np.testing.assert_allclose(gw, gw_expected, **TOL[x.dtype.type])


# --- pooling ---------------------------------------------------------------------------------

def pool_out_size(size, k, s, p, ceil_mode):
    """PyTorch's rule: the last window must start inside the input or its left padding."""
    o = -(-(size + 2 * p - k) // s) + 1 if ceil_mode else (size + 2 * p - k) // s + 1
    if ceil_mode and (o - 1) * s >= size + p:
        o -= 1
    return o


@st.composite
def pool_cases(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 11))
    w = draw(st.integers(max(1, kw - 2 * pw), 11))
    ceil_mode = draw(st.booleans())
    oh, ow = pool_out_size(h, kh, sh, ph, ceil_mode), pool_out_size(w, kw, sw, pw, ceil_mode)
    return (n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, draw(st.sampled_from(DTYPES)),
            draw(st.integers(0, 2**32 - 1)))


def pool_window(o, k, s, p, size):
    """Input positions of output o's window along one axis, and its extent in the padded input."""
    start = o * s - p
    inside = [q for q in range(start, start + k) if 0 <= q < size]
    return inside, min(start + k, size + p) - start


@SETTINGS
@given(pool_cases())
def test_max_pool_matches_definition(case):
    n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, dtype, seed = case
    rng = np.random.default_rng(seed)
    # A permutation: no ties, so the argmax is unique.
    x = (rng.permutation(n * c * h * w).reshape(n, c, h, w) - n * c * h * w / 2).astype(dtype)
    y = np.full((n, c, oh, ow), np.nan, dtype)
    argmax = np.full((n, c, oh, ow), -7, np.int32)
    max_pool_forward(x, y, argmax, kh, kw, sh, sw, ph, pw)
    gy = random(rng, y.shape, dtype)
    gx = np.full(x.shape, np.nan, dtype)
    max_pool_backward(gy, argmax, gx)

    gx_expected = np.zeros(x.shape)
    for b, ch, yy, z in itertools.product(range(n), range(c), range(oh), range(ow)):
        rows, _ = pool_window(yy, kh, sh, ph, h)
        cols, _ = pool_window(z, kw, sw, pw, w)
        window = [(x[b, ch, r, q], r, q) for r in rows for q in cols]
        value, r, q = max(window)
        assert y[b, ch, yy, z] == value
        assert argmax[b, ch, yy, z] == r * w + q
        gx_expected[b, ch, r, q] += gy[b, ch, yy, z]
    np.testing.assert_allclose(gx, gx_expected, **TOL[dtype])


def test_max_pool_ties_and_nan_follow_pytorch():
    x = np.array([[[[1.0, 3.0, 3.0, np.nan, 2.0, np.nan]]]])
    y, argmax = np.empty((1, 1, 1, 2)), np.empty((1, 1, 1, 2), np.int32)
    max_pool_forward(x, y, argmax, 1, 3, 1, 3, 0, 0)
    assert y[0, 0, 0, 0] == 3.0 and argmax[0, 0, 0, 0] == 1  # first maximum wins a tie
    assert np.isnan(y[0, 0, 0, 1]) and argmax[0, 0, 0, 1] == 5  # NaN wins, the last one


@SETTINGS
@given(pool_cases(), st.booleans())
def test_avg_pool_matches_definition(case, count_include_pad):
    n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = random(rng, (n, c, h, w), dtype)
    y = np.full((n, c, oh, ow), np.nan, dtype)
    avg_pool_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad)
    gy = random(rng, y.shape, dtype)
    gx = np.full(x.shape, np.nan, dtype)
    avg_pool_backward(gy, gx, kh, kw, sh, sw, ph, pw, count_include_pad)

    y_expected, gx_expected = np.zeros(y.shape), np.zeros(x.shape)
    for b, ch, yy, z in itertools.product(range(n), range(c), range(oh), range(ow)):
        rows, padded_h = pool_window(yy, kh, sh, ph, h)
        cols, padded_w = pool_window(z, kw, sw, pw, w)
        divisor = padded_h * padded_w if count_include_pad else len(rows) * len(cols)
        for r, q in itertools.product(rows, cols):
            y_expected[b, ch, yy, z] += x[b, ch, r, q] / divisor
            gx_expected[b, ch, r, q] += gy[b, ch, yy, z] / divisor
    np.testing.assert_allclose(y, y_expected, **TOL[dtype])
    np.testing.assert_allclose(gx, gx_expected, **TOL[dtype])


@pytest.mark.torch
def test_pooling_matches_pytorch_in_ceil_mode(torch):
    rng = np.random.default_rng(0)
    x = rng.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8).astype(np.float64)
    kh, kw, sh, sw, ph, pw = 3, 2, 2, 3, 1, 1
    oh, ow = pool_out_size(7, kh, sh, ph, True), pool_out_size(8, kw, sw, pw, True)
    xt = torch.from_numpy(x)
    for include in (True, False):
        y = np.empty((2, 3, oh, ow))
        avg_pool_forward(x, y, kh, kw, sh, sw, ph, pw, include)
        yt = torch.nn.functional.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), ceil_mode=True,
                                            count_include_pad=include)
        np.testing.assert_allclose(y, yt.numpy(), rtol=1e-12)
    y, argmax = np.empty((2, 3, oh, ow)), np.empty((2, 3, oh, ow), np.int32)
    max_pool_forward(x, y, argmax, kh, kw, sh, sw, ph, pw)
    yt, it = torch.nn.functional.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), ceil_mode=True,
                                            return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(argmax, it.numpy())


# --- residual --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_add_relu_and_relu_backward(dtype):
    rng = np.random.default_rng(1)
    a, b, gy = (random(rng, (3, 4, 5, 7), dtype) for _ in range(3))
    a[0, 0, 0, 0] = np.nan
    out = np.full_like(a, 7)
    add_relu(a, b, out)
    expected = np.maximum(a + b, 0)
    np.testing.assert_array_equal(out, expected)  # NaN propagates like np.maximum
    gx = np.full_like(a, 7)
    relu_backward(gy, out, gx)
    np.testing.assert_array_equal(gx, np.where(out > 0, gy, 0))
    add_relu(a, b, a)  # in place
    np.testing.assert_array_equal(a, expected)


# --- determinism -----------------------------------------------------------------------------

def test_backward_kernels_do_not_depend_on_the_thread_count():
    """Gather form / one plane per task: bit-identical results with 1 thread and with all."""
    rng = np.random.default_rng(2)
    x = random(rng, (4, 3, 9, 9), np.float32)
    col = random(rng, (3 * 9, 4 * 5 * 5), np.float32)
    wt = random(rng, (6, 1, 3, 3), np.float32)
    gy = random(rng, (4, 6, 5, 5), np.float32)
    gy_pool = random(rng, (4, 3, 4, 4), np.float32)
    argmax = np.empty((4, 3, 4, 4), np.int32)
    max_pool_forward(x, np.empty((4, 3, 4, 4), np.float32), argmax, 3, 3, 2, 2, 0, 0)

    def run():
        outs = [np.empty_like(x) for _ in range(4)] + [np.empty_like(wt)]
        col2im(col, outs[0], 3, 3, 2, 2, 1, 1, 1, 1, 5, 5)
        depthwise_backward_input(gy, wt, outs[1], 2, 2, 1, 1, 1, 1)
        max_pool_backward(gy_pool, argmax, outs[2])
        avg_pool_backward(gy_pool, outs[3], 3, 3, 2, 2, 0, 0, True)
        depthwise_backward_weight(gy, x, outs[4], 2, 2, 1, 1, 1, 1)
        return outs

    threads = numba.get_num_threads()
    parallel = run()
    numba.set_num_threads(1)
    try:
        serial = run()
    finally:
        numba.set_num_threads(threads)
    for p, s in zip(parallel, serial):
        np.testing.assert_array_equal(p, s)


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("with_residual", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_epilogue_matches_definition(relu, with_residual, dtype):
    rng = np.random.default_rng(6)
    y, bias = rng.standard_normal((3, 4, 10)).astype(dtype), rng.standard_normal(4).astype(dtype)
    residual = rng.standard_normal(y.shape).astype(dtype) if with_residual else np.empty((0, 0, 0), dtype)
    y[0, 1, 2] = np.nan
    expected = y + bias.reshape(1, -1, 1) + (residual if with_residual else 0)
    if relu:
        expected = np.maximum(expected, 0)
    conv_epilogue(y, bias, residual, relu)
    np.testing.assert_array_equal(y, expected)
