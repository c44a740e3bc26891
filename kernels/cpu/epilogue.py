"""A convolution's epilogue: bias, an optional residual and an optional ReLU, in place on a chunk.

The conv ops call it on each batch chunk right after computing it, while the chunk is still in
the cache, so none of them costs a pass over the output in memory (nor, at inference, the batch
norm folded into the bias and the residual join after it: ``tinyconv.nn.conv_bn``). NaN
propagates as in ``np.maximum``.
"""
from numba import njit


@njit(nogil=True, cache=True)
def conv_epilogue(y, bias, residual, relu):
    """``y[n, c, :] += bias[c]``, then ``+= residual[n, c, :]`` when ``residual`` has y's shape
    (an empty (0, 0, 0) array for none), then ``max(y, 0)`` if ``relu``; y (N, C, L)."""
    zero = y.dtype.type(0)
    add = residual.shape[0] != 0
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            row, b = y[n, c], bias[c]
            res = residual[n, c] if add else row
            for k in range(row.size):
                s = row[k] + b
                if add:
                    s += res[k]
                if relu and s < 0:
                    s = zero
                row[k] = s
