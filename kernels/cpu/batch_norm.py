"""Per-channel passes of batch normalisation over x viewed as (N, C, L), L = H*W (1 for (N, C)).

NumPy's reductions over axes (0, 2, 3) of an NCHW array, plus the temporaries of
``(x - mean) * inv_std * gamma + beta``, cost about eight passes over memory; these kernels do
the forward in two passes (statistics, then one affine write) and the backward in two.
Sums run in float64 so float32 statistics stay accurate over a whole batch.
"""
from numba import njit, prange

# Reassociation lets LLVM vectorise the sums; no assumption about NaN/Inf is made.
_SUM_MATH = {"reassoc", "contract"}


@njit(parallel=True, cache=True, fastmath=_SUM_MATH)
def channel_mean_var(x, mean, var):
    """mean[c] = average of x[:, c, :], var[c] = average of (x[:, c, :] - mean[c])^2 (biased).

    Two passes per channel (mean first): as accurate as NumPy's ``var``."""
    n, c, length = x.shape
    count = n * length
    for ch in prange(c):
        total = 0.0
        for i in range(n):
            row = x[i, ch]
            for j in range(length):
                total += row[j]
        m = total / count
        squares = 0.0
        for i in range(n):
            row = x[i, ch]
            for j in range(length):
                d = row[j] - m
                squares += d * d
        mean[ch] = m
        var[ch] = squares / count


@njit(parallel=True, cache=True)
def channel_affine(x, scale, shift, y):
    """y[n, c, :] = x[n, c, :] * scale[c] + shift[c]."""
    n, c, length = x.shape
    for t in prange(n * c):
        i, ch = t // c, t % c
        src, dst = x[i, ch], y[i, ch]
        a, b = scale[ch], shift[ch]
        for j in range(length):
            dst[j] = src[j] * a + b


@njit(parallel=True, cache=True, fastmath=_SUM_MATH)
def channel_grad_sums(gy, x, sum_gy, sum_gy_x):
    """sum_gy[c] = sum of gy[:, c, :], sum_gy_x[c] = sum of gy[:, c, :] * x[:, c, :]."""
    n, c, length = x.shape
    for ch in prange(c):
        s = 0.0
        sx = 0.0
        for i in range(n):
            g, v = gy[i, ch], x[i, ch]
            for j in range(length):
                s += g[j]
                sx += g[j] * v[j]
        sum_gy[ch] = s
        sum_gy_x[ch] = sx


@njit(parallel=True, cache=True)
def channel_affine2(gy, x, a, b, k, gx):
    """gx[n, c, :] = a[c] * gy[n, c, :] + b[c] * x[n, c, :] + k[c]: batch norm's input gradient,
    whose three terms are per-channel constants once the sums are known."""
    n, c, length = x.shape
    for t in prange(n * c):
        i, ch = t // c, t % c
        g, v, dst = gy[i, ch], x[i, ch], gx[i, ch]
        ac, bc, kc = a[ch], b[ch], k[ch]
        for j in range(length):
            dst[j] = ac * g[j] + bc * v[j] + kc
