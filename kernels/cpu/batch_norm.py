"""Per-channel passes of batch normalisation over x viewed as (N, C, L), L = H*W (1 for (N, C)).

NumPy's reductions over axes (0, 2, 3) of an NCHW array, plus the temporaries of
``(x - mean) * inv_std * gamma + beta``, cost about eight passes over memory; these kernels do
the forward in two passes (statistics, then one affine write) and the backward in two.
Sums run in float64 so float32 statistics stay accurate over a whole batch.

When batch norm is followed by a ReLU the two are one op: the affine write clamps at zero, and
the backward reads the ReLU's gate ``y > 0`` from the op's output ``relu_y`` instead of first
writing the gated gradient out (``relu_y=None``: plain batch norm; Numba compiles the two
cases separately, dropping the dead branch).
"""
from numba import njit, prange

# Reassociation lets LLVM vectorise the sums; no assumption about NaN/Inf is made.
_SUM_MATH = {"reassoc", "contract"}


@njit(parallel=True, cache=True, fastmath=_SUM_MATH)
def channel_mean_var(x, mean, var):
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
def channel_affine(x, scale, shift, relu, y):
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
def channel_grad_sums(gy, x, relu_y, sum_gy, sum_gy_x):
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
def channel_affine2(gy, x, relu_y, a, b, k, gx):
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
