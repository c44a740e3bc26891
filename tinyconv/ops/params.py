"""Argument checks shared by the windowed ops (conv, pooling): pairs, output sizes, dtypes."""
import numpy as np


def pair(value, name, op, minimum):
    """``value`` (an int or a pair of ints) as a validated (height, width) pair."""
    values = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) for v in values):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def window_output_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Number of window positions along one axis, as PyTorch counts them.

    floor((size + 2p - d(k-1) - 1) / s) + 1, or the ceiling with ``ceil_mode``, where a last window
    that would start inside the right padding is dropped.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


def check_input(x, op, rank=4, layout="(N, C, H, W)"):
    """Reject a wrong rank or a non-floating dtype with a message naming the op."""
    if x.ndim != rank:
        raise ValueError(f"{op}: input must be {rank}-D {layout}, got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: input dtype must be float32 or float64, got {x.dtype}")


def check_same_dtype(op, **arrays):
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"{op}: all operands need one dtype, got {listed}")
