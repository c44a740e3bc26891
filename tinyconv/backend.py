"""The one place that knows NumPy from CuPy.

Every op asks ``array_module(x)`` for the array library of its inputs and ``kernels(xp)`` for the
hand-written kernels of that backend; nothing else in tinyconv imports numpy-vs-cupy specifics.
CuPy is imported only when a CuPy array is actually seen, so ``import tinyconv`` never pulls it in.
"""
import sys

import numpy as np


def is_cupy_array(x):
    """True when ``x`` is a CuPy array, decided without importing CuPy."""
    return type(x).__module__.split(".", 1)[0] == "cupy"


def array_module(*arrays):
    """The array library (``numpy`` or ``cupy``) that the given arrays live in."""
    for a in arrays:
        if is_cupy_array(a):
            return sys.modules["cupy"]
    return np


def kernels(xp):
    """The hand-written kernel set for backend ``xp`` (CPU: Numba)."""
    if xp is np:
        from tinyconv.kernels import cpu
        return cpu
    raise NotImplementedError("tinyconv: no CUDA kernels in this build; use numpy arrays")


class Workspace:
    """Scratch buffers reused across calls, keyed by purpose.

    A fresh 75 MB im2col buffer per conv call costs more in first-touch page faults than the GEMM
    itself, so ops borrow a buffer here instead. A buffer only grows; callers take a view of the
    size they need and must not keep it past the call.
    """

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape, dtype, xp=np):
        size = 1
        for s in shape:
            size *= int(s)
        dtype = np.dtype(dtype)
        key = (name, dtype.str, xp.__name__)
        buf = self._buffers.get(key)
        if buf is None or buf.size < size:
            buf = xp.empty(size, dtype=dtype)
            self._buffers[key] = buf
        return buf[:size].reshape(shape)

    def clear(self):
        self._buffers.clear()


workspace = Workspace()


# Upper bound (bytes) on a layer's im2col workspace; larger layers run in batch chunks.
workspace_limit = 128 * 2**20


def set_workspace_limit(nbytes):
    """Cap the im2col workspace; trades GEMM size for memory on very large layers."""
    global workspace_limit
    if nbytes < 1:
        raise ValueError(f"workspace limit must be positive, got {nbytes}")
    workspace_limit = int(nbytes)
