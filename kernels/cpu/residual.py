"""Elementwise kernels of the residual block: the fused add + ReLU and ReLU's backward.

They take arrays of any shape, all the same shape and C-contiguous, and view them as 1-D inside
the kernel (``reshape`` of a contiguous array is a view), so callers pass NCHW arrays as they are.
NaN propagates as in ``np.maximum``: ``relu(nan) = nan``.
"""
from numba import njit, prange


@njit(parallel=True, cache=True)
def add_relu(a, b, out):
    """``out = max(a + b, 0)`` elementwise; ``out`` may be ``a`` or ``b``."""
    af = a.reshape(a.size)
    bf = b.reshape(b.size)
    of = out.reshape(out.size)
    zero = of.dtype.type(0)
    for k in prange(of.size):
        s = af[k] + bf[k]
        of[k] = zero if s < 0 else s


@njit(parallel=True, cache=True)
def relu_backward(gy, y, gx):
    """``gx = gy where y > 0 else 0`` elementwise, ``y`` being the ReLU's output; ``gx`` may be
    ``gy``."""
    gf = gy.reshape(gy.size)
    yf = y.reshape(y.size)
    of = gx.reshape(gx.size)
    zero = of.dtype.type(0)
    for k in prange(of.size):
        of[k] = gf[k] if yf[k] > 0 else zero
