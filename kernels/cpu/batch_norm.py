"""Per-channel passes of batch normalisation over x viewed as (N, C, L), L = H*W (1 for (N, C)).

NumPy's reductions over axes (0, 2, 3) of an NCHW array, plus the temporaries of
``(x - mean) * inv_std * gamma + beta``, cost about eight passes over memory; these kernels do
the forward in two passes (statistics, then one affine write) and the backward in two.
Sums run in float64 so float32 statistics stay accurate over a whole batch.

When batch norm is followed by a ReLU the two are one op: the affine write clamps at zero, and
the backward reads the ReLU's gate ``y > 0`` from the op's output ``relu_y`` instead of first
writing the gated gradient out (``relu_y=None``: plain batch norm; Numba compiles the two
cases separately, dropping the dead branch).

The kernels loop over a channel's L values at a time. For L of at most ``TINY_PLANE`` (MobileNet's
4x4 and 2x2 planes, and (N, C) inputs) those loops are too short to vectorise, and each image's
C*L values are one loop instead: the per-channel constants spread to one value per lane, the
sums gathered per lane in float64 and added up per channel at the end. Measured on the 2-core
host, batch norm + ReLU forward and backward at batch 128, per-channel loops -> per-image
loops (alternating in one process): 512 channels at 4x4 4.1 -> 3.0 ms, 1024 at 2x2 5.3 -> 1.7,
BatchNorm1d over 1024 features 2.3 -> 0.5; at 16x16 the two ways tie.
"""
import numpy as np
from numba import njit, prange

TINY_PLANE = 16
# Image chunks of the per-image sums, each with float64 sums per lane: a fixed number, so that
# the result does not depend on the thread count.
_SUM_CHUNKS = 8

# Reassociation lets LLVM vectorise the sums; no assumption about NaN/Inf is made.
_SUM_MATH = {"reassoc", "contract"}


@njit(parallel=True, cache=True, fastmath=_SUM_MATH)
def _mean_var_per_channel(x, mean, var):
    """mean[c] = average of x[:, c, :], var[c] = average of (x[:, c, :] - mean[c])^2 (biased).

    One pass: the sums of ``x - s`` and its square, shifted by the channel's first value ``s``
    so that var = E[(x - s)^2] - E[x - s]^2 does not cancel catastrophically when the mean is
    large against the spread (the shift is within a few standard deviations of the mean)."""
    n, c, length = x.shape
    count = n * length
    for ch in prange(c):
        shift = float(x[0, ch, 0])
        total = 0.0
        squares = 0.0
        for i in range(n):
            row = x[i, ch]
            for j in range(length):
                d = row[j] - shift
                total += d
                squares += d * d
        m = total / count
        mean[ch] = shift + m
        var[ch] = max(squares / count - m * m, 0.0)


@njit(parallel=True, cache=True)
def _affine_per_channel(x, scale, shift, relu, y):
    """y[n, c, :] = x[n, c, :] * scale[c] + shift[c], clamped at 0 when ``relu`` (NaN stays NaN)."""
    n, c, length = x.shape
    zero = y.dtype.type(0)
    for t in prange(n * c):
        i, ch = t // c, t % c
        src, dst = x[i, ch], y[i, ch]
        a, b = scale[ch], shift[ch]
        if relu:
            for j in range(length):
                v = src[j] * a + b
                dst[j] = zero if v < zero else v
        else:
            for j in range(length):
                dst[j] = src[j] * a + b


@njit(parallel=True, cache=True, fastmath=_SUM_MATH)
def _grad_sums_per_channel(gy, x, relu_y, sum_gy, sum_gy_x):
    """sum_gy[c] = sum of g[:, c, :], sum_gy_x[c] = sum of g[:, c, :] * x[:, c, :], where g is gy,
    or gy gated by ``relu_y > 0`` when the ReLU's output ``relu_y`` is given."""
    n, c, length = x.shape
    zero = gy.dtype.type(0)
    for ch in prange(c):
        s = 0.0
        sx = 0.0
        for i in range(n):
            g, v = gy[i, ch], x[i, ch]
            if relu_y is None:
                for j in range(length):
                    s += g[j]
                    sx += g[j] * v[j]
            else:
                gate = relu_y[i, ch]
                for j in range(length):
                    gj = g[j] if gate[j] > zero else zero
                    s += gj
                    sx += gj * v[j]
        sum_gy[ch] = s
        sum_gy_x[ch] = sx


@njit(parallel=True, cache=True)
def _affine2_per_channel(gy, x, relu_y, a, b, k, gx):
    """gx[n, c, :] = a[c] * g[n, c, :] + b[c] * x[n, c, :] + k[c], g as in :func:`channel_grad_sums`:
    batch norm's input gradient, whose three terms are per-channel constants once the sums are known."""
    n, c, length = x.shape
    zero = gy.dtype.type(0)
    for t in prange(n * c):
        i, ch = t // c, t % c
        g, v, dst = gy[i, ch], x[i, ch], gx[i, ch]
        ac, bc, kc = a[ch], b[ch], k[ch]
        if relu_y is None:
            for j in range(length):
                dst[j] = ac * g[j] + bc * v[j] + kc
        else:
            gate = relu_y[i, ch]
            for j in range(length):
                gj = g[j] if gate[j] > zero else zero
                dst[j] = ac * gj + bc * v[j] + kc


@njit(inline="always", cache=True)
def _per_lane(coef, length, dtype):
    """``coef`` (C,) spread to one value per lane of an image: out[ch*length + j] = coef[ch]."""
    out = np.empty(coef.size * length, dtype)
    for ch in range(coef.size):
        for j in range(length):
            out[ch * length + j] = coef[ch]
    return out


@njit(inline="always", cache=True)
def _lane_sums_per_channel(lanes, c, length, out):
    """out[ch] = the sum of ``lanes`` (chunks, C*L) over chunks and the channel's L lanes, in order."""
    for ch in range(c):
        total = 0.0
        for chunk in range(lanes.shape[0]):
            for j in range(length):
                total += lanes[chunk, ch * length + j]
        out[ch] = total


@njit(parallel=True, cache=True, fastmath=_SUM_MATH)
def _mean_var_per_image(x, mean, var):
    """:func:`channel_mean_var` for tiny planes, shifted by each channel's first value alike."""
    n, c, length = x.shape
    width = c * length
    shifts = np.empty(c)
    for ch in range(c):
        shifts[ch] = x[0, ch, 0]
    lane_shifts = _per_lane(shifts, length, np.float64)
    chunks = min(n, _SUM_CHUNKS)
    totals, squares = np.zeros((chunks, width)), np.zeros((chunks, width))
    for chunk in prange(chunks):
        total, square = totals[chunk], squares[chunk]
        for i in range(chunk * n // chunks, (chunk + 1) * n // chunks):
            row = x[i].reshape(width)
            for k in range(width):
                d = row[k] - lane_shifts[k]
                total[k] += d
                square[k] += d * d
    sums, sums_sq = np.empty(c), np.empty(c)
    _lane_sums_per_channel(totals, c, length, sums)
    _lane_sums_per_channel(squares, c, length, sums_sq)
    count = n * length
    for ch in range(c):
        m = sums[ch] / count
        mean[ch] = shifts[ch] + m
        var[ch] = max(sums_sq[ch] / count - m * m, 0.0)


@njit(parallel=True, cache=True)
def _affine_per_image(x, scale, shift, relu, y):
    """:func:`channel_affine` for tiny planes."""
    n, c, length = x.shape
    width = c * length
    zero = y.dtype.type(0)
    lane_scale, lane_shift = _per_lane(scale, length, scale.dtype), _per_lane(shift, length, shift.dtype)
    for i in prange(n):
        src, dst = x[i].reshape(width), y[i].reshape(width)
        if relu:
            for k in range(width):
                v = src[k] * lane_scale[k] + lane_shift[k]
                dst[k] = zero if v < zero else v
        else:
            for k in range(width):
                dst[k] = src[k] * lane_scale[k] + lane_shift[k]


@njit(parallel=True, cache=True, fastmath=_SUM_MATH)
def _grad_sums_per_image(gy, x, relu_y, sum_gy, sum_gy_x):
    """:func:`channel_grad_sums` for tiny planes."""
    n, c, length = x.shape
    width = c * length
    zero = gy.dtype.type(0)
    chunks = min(n, _SUM_CHUNKS)
    totals, products = np.zeros((chunks, width)), np.zeros((chunks, width))
    for chunk in prange(chunks):
        total, product = totals[chunk], products[chunk]
        for i in range(chunk * n // chunks, (chunk + 1) * n // chunks):
            g, v = gy[i].reshape(width), x[i].reshape(width)
            if relu_y is None:
                for k in range(width):
                    total[k] += g[k]
                    product[k] += g[k] * v[k]
            else:
                gate = relu_y[i].reshape(width)
                for k in range(width):
                    gk = g[k] if gate[k] > zero else zero
                    total[k] += gk
                    product[k] += gk * v[k]
    _lane_sums_per_channel(totals, c, length, sum_gy)
    _lane_sums_per_channel(products, c, length, sum_gy_x)


@njit(parallel=True, cache=True)
def _affine2_per_image(gy, x, relu_y, a, b, k, gx):
    """:func:`channel_affine2` for tiny planes."""
    n, c, length = x.shape
    width = c * length
    zero = gy.dtype.type(0)
    lane_a, lane_b, lane_k = _per_lane(a, length, a.dtype), _per_lane(b, length, b.dtype), _per_lane(k, length, k.dtype)
    for i in prange(n):
        g, v, dst = gy[i].reshape(width), x[i].reshape(width), gx[i].reshape(width)
        if relu_y is None:
            for j in range(width):
                dst[j] = lane_a[j] * g[j] + lane_b[j] * v[j] + lane_k[j]
        else:
            gate = relu_y[i].reshape(width)
            for j in range(width):
                gj = g[j] if gate[j] > zero else zero
                dst[j] = lane_a[j] * gj + lane_b[j] * v[j] + lane_k[j]


def channel_mean_var(x, mean, var):
    """mean[c] = average of x[:, c, :], var[c] = average of (x[:, c, :] - mean[c])^2 (biased).

    One pass: the sums of ``x - s`` and its square, shifted by the channel's first value ``s``
    so that var = E[(x - s)^2] - E[x - s]^2 does not cancel catastrophically when the mean is
    large against the spread (the shift is within a few standard deviations of the mean)."""
    (_mean_var_per_image if x.shape[2] <= TINY_PLANE else _mean_var_per_channel)(x, mean, var)


def channel_affine(x, scale, shift, relu, y):
    """y[n, c, :] = x[n, c, :] * scale[c] + shift[c], clamped at 0 when ``relu`` (NaN stays NaN)."""
    (_affine_per_image if x.shape[2] <= TINY_PLANE else _affine_per_channel)(x, scale, shift, relu, y)


def channel_grad_sums(gy, x, relu_y, sum_gy, sum_gy_x):
    """sum_gy[c] = sum of g[:, c, :], sum_gy_x[c] = sum of g[:, c, :] * x[:, c, :], where g is gy,
    or gy gated by ``relu_y > 0`` when the ReLU's output ``relu_y`` is given."""
    kernel = _grad_sums_per_image if x.shape[2] <= TINY_PLANE else _grad_sums_per_channel
    kernel(gy, x, relu_y, sum_gy, sum_gy_x)


def channel_affine2(gy, x, relu_y, a, b, k, gx):
    """gx[n, c, :] = a[c] * g[n, c, :] + b[c] * x[n, c, :] + k[c], g as in :func:`channel_grad_sums`:
    batch norm's input gradient, whose three terms are per-channel constants once the sums are known."""
    kernel = _affine2_per_image if x.shape[2] <= TINY_PLANE else _affine2_per_channel
    kernel(gy, x, relu_y, a, b, k, gx)
