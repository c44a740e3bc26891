"""The one place that knows NumPy from CuPy.

Every op asks ``array_module(x)`` for the array library of its inputs and ``kernels(xp)`` for the
hand-written kernels of that backend; nothing else in tinyconv imports numpy-vs-cupy specifics.
CuPy is imported only when a CuPy array is actually seen, so ``import tinyconv`` never pulls it in.
"""
import concurrent.futures
import contextlib
import itertools
import os
import sys
import threading

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
    """The hand-written kernel set for backend ``xp``: Numba on the CPU, CUDA C through CuPy."""
    if xp is np:
        from tinyconv.kernels import cpu
        return cpu
    if xp.__name__ == "cupy":
        from tinyconv.kernels import cuda
        return cuda.for_cupy()
    raise TypeError(f"tinyconv: arrays from {xp.__name__} are not supported; use numpy (CPU) or "
                    "cupy (CUDA) arrays")


# ---- devices ----

class Device:
    """Where a tensor's data lives: ``cpu`` (a NumPy array) or ``cuda:<index>`` (a CuPy array)."""

    def __init__(self, kind, index=None):
        self.type = kind
        self.index = index

    def __repr__(self):
        return f"device({str(self)!r})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        """Equal to the same Device or its spelling: ``x.device == "cuda"`` works anywhere,
        even where CUDA is missing."""
        if isinstance(other, str):
            try:
                other = _parse_device(other)
            except ValueError:
                return False
        return isinstance(other, Device) and (self.type, self.index or 0) == (other.type, other.index or 0)

    def __hash__(self):
        return hash((self.type, self.index or 0))


def _parse_device(spec):
    if not isinstance(spec, str):
        raise TypeError(f"device: expected 'cpu', 'cuda' or 'cuda:<index>', got {spec!r}")
    kind, _, index = spec.strip().lower().partition(":")
    if kind == "cpu" and not index:
        return Device("cpu")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:<index>', got {spec!r}")
    return Device("cuda", int(index) if index else 0)


def device(spec="cpu"):
    """A :class:`Device` from ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a Device.

    Asking for CUDA checks at once that CuPy is installed and sees that GPU, and says what is
    missing otherwise.
    """
    if isinstance(spec, Device):
        return spec
    parsed = _parse_device(spec)
    if parsed.type == "cpu":
        return parsed
    index = parsed.index
    count = _cuda_device_count()
    if index >= count:
        raise RuntimeError(f"device: asked for cuda:{index} but CuPy sees {count} CUDA device(s)")
    return Device("cuda", index)


def device_of(array):
    """The Device an array lives on."""
    return Device("cuda", array.device.id) if is_cupy_array(array) else Device("cpu")


def to_device(array, target):
    """``array`` on ``target`` (a Device or spec): itself when already there, else a copy."""
    target = device(target)
    if device_of(array) == target:
        return array
    if target.type == "cpu":
        return array.get()
    cupy = _cupy()
    with cupy.cuda.Device(target.index):
        return cupy.asarray(array)


def cuda_is_available():
    """True when CuPy is installed and sees at least one CUDA GPU."""
    try:
        return _cuda_device_count() > 0
    except RuntimeError:
        return False


def _cupy():
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError("tinyconv: a CUDA device needs CuPy, which is not installed: "
                           "pip install 'tinyconv[cuda]' (CUDA 12)") from exc
    return cupy


def _cuda_device_count():
    cupy = _cupy()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when there is no driver or no GPU
        raise RuntimeError(f"tinyconv: CuPy is installed but finds no CUDA GPU ({exc})") from exc
    if count == 0:
        raise RuntimeError("tinyconv: CuPy is installed but finds no CUDA GPU")
    return count


class Workspace:
    """Scratch buffers reused across calls, keyed by purpose and by thread.

    A fresh 75 MB im2col buffer per conv call costs more in first-touch page faults than the GEMM
    itself, so ops borrow a buffer here instead. A buffer only grows; callers take a view of the
    size they need and must not keep it past the call. Each thread gets its own buffers, so the
    chunks of one op can run concurrently (``map_chunks``).
    """

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape, dtype, xp=np):
        size = 1
        for s in shape:
            size *= int(s)
        dtype = np.dtype(dtype)
        key = (name, dtype.str, xp.__name__, threading.get_ident())
        buf = self._buffers.get(key)
        if buf is None or buf.size < size:
            buf = xp.empty(size, dtype=dtype)
            self._buffers[key] = buf
        return buf[:size].reshape(shape)

    def clear(self):
        self._buffers.clear()


workspace = Workspace()


# Upper bound (bytes) on one chunk's im2col (or Winograd) workspace: a chunk's unfolding, GEMM and
# folding then stay in the cache. Larger layers run in more batch chunks; smaller chunks pay more
# per-chunk overhead (16 or 36 BLAS calls and three kernel calls for a Winograd chunk). Training steps
# alternated in one process on the 2-core host, 2 MB -> 3 MB: ResNet-20 1.08x faster (1 MB:
# 0.67x), VGG-16 1.12x, MobileNet unchanged; ResNet-20 inference 1.04x.
workspace_limit = 3 * 2**20
# A GPU has no cache to fit and pays a launch per kernel: its chunks are as large as memory allows.
gpu_workspace_limit = 512 * 2**20


def retain_freed_memory(limit=64 * 2**20):
    """Make glibc's malloc keep freed blocks of up to ``limit`` bytes for reuse in this process.

    By default glibc hands large freed blocks back to the OS, and every step of a training loop
    then page-faults its activations in again: ResNet-20 at batch 128 took 28,000 page faults
    per step, and trained at 307-320 img/s against 330-363 with this call (5 faults per step).
    Peak memory is what the loop holds at once either way. It changes malloc for the whole
    process, so the library never calls it on import: ``python -m tinyconv.train``
    (``tinyconv.train.train``) and the benchmarks do; a hand-written training loop may call it
    once at start. Returns whether it took effect (False off glibc).
    """
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    return bool(mallopt(m_mmap_threshold, int(limit)) and mallopt(m_trim_threshold, 4 * int(limit)))


def set_workspace_limit(nbytes):
    """Cap the im2col workspace; trades GEMM size for memory on very large layers."""
    global workspace_limit
    if nbytes < 1:
        raise ValueError(f"workspace limit must be positive, got {nbytes}")
    workspace_limit = int(nbytes)


# ---- running an op's batch chunks on all cores ----
#
# Handing each core whole chunks (im2col -> single-threaded GEMM -> col2im, all in that core's
# cache) scales better than one chunk at a time with BLAS's own threads, and degrades gracefully
# when other processes share the cores: BLAS worker threads spin at barriers and, once one is
# descheduled, the whole GEMM waits; a Python thread waiting on a future sleeps instead.

_pool = None
_blas = None


def cpu_threads():
    """Threads the CPU ops use: ``TINYCONV_NUM_THREADS``, else numba's thread count."""
    value = os.environ.get("TINYCONV_NUM_THREADS")
    if value:
        return max(1, int(value))
    import numba
    return numba.get_num_threads()


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS limited to the calling thread inside the block.

    For GEMMs too small to be worth BLAS's threads, and for chunks that already run on every
    core: OpenBLAS's idle workers keep spinning for a long while after a threaded GEMM, and a
    spinning worker takes a core from the chunk threads that follow (measured: Winograd convs
    whose small weight-transform GEMMs ran threaded trained ResNet-20 at 202 img/s; with those
    GEMMs single-threaded, 283).

    Sets the BLAS libraries' thread counts directly: threadpoolctl's ``limit()`` re-reads every
    library's state on each entry, ~0.1 ms, paid by every op that runs batch chunks.
    """
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    previous = [library.get_num_threads() for library in _blas]
    for library in _blas:
        library.set_num_threads(1)
    try:
        yield
    finally:
        for library, threads in zip(_blas, previous):
            library.set_num_threads(threads)


def map_chunks(fn, total, chunk, xp=np):
    """``[fn(start, size, alone) for each chunk of range(total)]``, chunks spread over the CPU threads.

    ``alone`` tells ``fn`` whether it has the machine to itself (chunks run one after another, so
    its kernels may be parallel) or shares it with concurrent chunks: then it must launch no
    parallel Numba kernel (oversubscription; numba's workqueue layer even aborts). ``fn`` must
    write only its own slice of any shared output; results come back in chunk order, so
    reductions over them are deterministic whatever the thread count.
    """
    spans = [(start, min(chunk, total - start)) for start in range(0, total, chunk)]
    threads = cpu_threads() if xp is np else 1  # a GPU runs one chunk's kernels at a time
    if threads == 1 or len(spans) == 1:
        return [fn(*span, True) for span in spans]
    global _pool
    if _pool is None or _pool._max_workers != threads - 1:
        _pool = concurrent.futures.ThreadPoolExecutor(threads - 1, thread_name_prefix="tinyconv")
    results = [None] * len(spans)
    claim = itertools.count()  # next() on it is atomic under the GIL

    def work():
        while (i := next(claim)) < len(spans):
            results[i] = fn(*spans[i], False)

    # The calling thread takes chunks too: waking a pool thread costs 0.1-0.2 ms on the 2-vCPU
    # host, so the caller starts at once, the helpers join as they wake, and a helper that has
    # not woken by the time the chunks are all done is cancelled rather than waited for.
    with single_threaded_blas():
        helpers = [_pool.submit(work) for _ in range(threads - 1)]
        try:
            work()
        finally:
            running = [helper for helper in helpers if not helper.cancel()]
            concurrent.futures.wait(running)  # they write into the caller's arrays: wait even on an error
        for helper in running:
            helper.result()  # re-raises a helper's error
    return results
