"""A convolution's epilogue: its bias and an optional ReLU, applied in place to a chunk of output.

The conv ops call it on each batch chunk right after computing it, while the chunk is still in
the cache, so neither costs a pass over the output in memory (nor, at inference, the batch norm
folded into the bias: ``tinyconv.nn.conv_bn``). NaN propagates as in ``np.maximum``.
"""
from numba import njit


@njit(nogil=True, cache=True)
def bias_relu(y, bias, relu):
    """``y[n, c, :] += bias[c]``, then ``max(y, 0)`` if ``relu``, for y (N, C, L)."""
    zero = y.dtype.type(0)
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            row, b = y[n, c], bias[c]
            if relu:
                for k in range(row.size):
                    s = row[k] + b
                    row[k] = zero if s < 0 else s
            else:
                for k in range(row.size):
                    row[k] += b
