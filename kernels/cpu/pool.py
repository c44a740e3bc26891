"""Max and average pooling over NCHW planes, with PyTorch's window and divisor semantics.

Output (y, z) pools the window rows ``[y*sh - ph, y*sh - ph + kh)`` and columns likewise, clipped
to the input; the caller computes ``oh, ow`` (floor or ceil mode), so a last window may run past
the padded input. A pooling window is a convolution window with dilation 1, so max pooling walks
it tap by tap with the convolutions' ``tap_range``. Every kernel gives a whole (n, c) plane to one
task, so the backward passes, where windows overlap, accumulate without races in a fixed order.
"""
import numpy as np
from numba import njit, prange

from ._taps import tap_range


@njit(inline="always", cache=True)
def _window(o, k, s, p, size):
    """Average-pooling window of output position ``o`` along one axis: ``(lo, hi, padded)``
    where ``[lo, hi)`` is the part inside the input and ``padded`` the length inside the padded input,
    ``min(o*s - p + k, size + p) - (o*s - p)`` (PyTorch's ``pool_size`` factor)."""
    start = o * s - p
    padded = min(start + k, size + p) - start
    return max(start, 0), min(start + k, size), padded


@njit(parallel=True, cache=True)
def max_pool_forward(x, y, argmax, kh, kw, sh, sw, ph, pw):
    """``y[n, c, oy, oz]`` = max of ``x[n, c]`` (N, C, H, W) over the window of (oy, oz);
    ``argmax`` (N, C, oh, ow) int32 = its flat index ``h*W + w`` in the plane.

    Padding never wins (it is -inf); the first maximum in row-major window order wins ties; NaN
    propagates (the last NaN in the window wins), as in PyTorch. A window with no input pixel
    (impossible with PyTorch-valid parameters) gives -inf and index -1.
    """
    n_in, c_in, h_in, w_in = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for nc in prange(n_in * c_in):
        n = nc // c_in
        c = nc - n * c_in
        src = x[n, c]
        best = y[n, c]
        at = argmax[n, c]
        for r in range(oh):
            for z in range(ow):
                best[r, z] = -np.inf
                at[r, z] = -1
        # Visiting the taps (i, j) in row-major order visits every window in row-major order,
        # and each tap is a strided pass over whole output rows, which vectorises.
        for i in range(kh):
            y_lo, y_hi = tap_range(i, ph, sh, h_in, oh)
            for j in range(kw):
                z_lo, z_hi = tap_range(j, pw, sw, w_in, ow)
                for r in range(y_lo, y_hi):
                    h = r * sh - ph + i
                    first = z_lo * sw - pw + j
                    b = best[r, z_lo:z_hi]
                    a = at[r, z_lo:z_hi]
                    s = src[h, first::sw]
                    for k in range(b.size):
                        v = s[k]
                        if v > b[k] or v != v or a[k] < 0:
                            b[k] = v
                            a[k] = h * w_in + first + k * sw


@njit(parallel=True, cache=True)
def max_pool_backward(gy, argmax, gx):
    """``gx`` (N, C, H, W), overwritten, = 0 plus each ``gy[n, c, oy, oz]`` added at the plane
    position ``argmax[n, c, oy, oz]`` (overlapping windows accumulate; -1 is skipped)."""
    n_in, c_in, h_in, w_in = gx.shape
    n_out = gy.shape[2] * gy.shape[3]
    for nc in prange(n_in * c_in):
        n = nc // c_in
        c = nc - n * c_in
        dst = gx[n, c].reshape(h_in * w_in)
        g = gy[n, c].reshape(n_out)
        at = argmax[n, c].reshape(n_out)
        for k in range(dst.size):
            dst[k] = 0
        for k in range(n_out):
            if at[k] >= 0:
                dst[at[k]] += g[k]


@njit(inline="always", cache=True)
def _avg_window(oy, oz, kh, kw, sh, sw, ph, pw, h_in, w_in, count_include_pad):
    """Clipped window ``(h_lo, h_hi, w_lo, w_hi)`` of output (oy, oz) and its divisor: the
    window's area within the padded input if ``count_include_pad``, else within the input."""
    h_lo, h_hi, h_padded = _window(oy, kh, sh, ph, h_in)
    w_lo, w_hi, w_padded = _window(oz, kw, sw, pw, w_in)
    if count_include_pad:
        divisor = h_padded * w_padded
    else:
        divisor = (h_hi - h_lo) * (w_hi - w_lo)
    return h_lo, h_hi, w_lo, w_hi, divisor


@njit(parallel=True, cache=True, error_model="numpy")
def avg_pool_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad):
    """``y[n, c, oy, oz]`` = sum of ``x[n, c]`` over the clipped window / divisor, the divisor
    as in PyTorch (see ``_avg_window``); ``y`` (N, C, oh, ow) is overwritten."""
    n_in, c_in, h_in, w_in = x.shape
    oh, ow = y.shape[2], y.shape[3]
    zero = y.dtype.type(0)
    for nc in prange(n_in * c_in):
        n = nc // c_in
        c = nc - n * c_in
        src = x[n, c]
        for oy in range(oh):
            for oz in range(ow):
                h_lo, h_hi, w_lo, w_hi, divisor = _avg_window(
                    oy, oz, kh, kw, sh, sw, ph, pw, h_in, w_in, count_include_pad)
                s = zero
                for h in range(h_lo, h_hi):
                    row = src[h]
                    for w in range(w_lo, w_hi):
                        s += row[w]
                y[n, c, oy, oz] = s / y.dtype.type(divisor)


@njit(parallel=True, cache=True, error_model="numpy")
def avg_pool_backward(gy, gx, kh, kw, sh, sw, ph, pw, count_include_pad):
    """``gx`` (N, C, H, W), overwritten, = dL/dx of :func:`avg_pool_forward` given ``gy``:
    each ``gy[n, c, oy, oz] / divisor`` is added to every input pixel of its clipped window."""
    n_in, c_in, h_in, w_in = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    for nc in prange(n_in * c_in):
        n = nc // c_in
        c = nc - n * c_in
        dst = gx[n, c]
        for h in range(h_in):
            for w in range(w_in):
                dst[h, w] = 0
        for oy in range(oh):
            for oz in range(ow):
                h_lo, h_hi, w_lo, w_hi, divisor = _avg_window(
                    oy, oz, kh, kw, sh, sw, ph, pw, h_in, w_in, count_include_pad)
                g = gy[n, c, oy, oz] / gx.dtype.type(divisor)
                for h in range(h_lo, h_hi):
                    row = dst[h]
                    for w in range(w_lo, w_hi):
                        row[w] += g
