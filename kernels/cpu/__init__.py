"""Numba CPU kernels: plain NumPy arrays in, caller-preallocated arrays out.

Every kernel compiles lazily for the dtypes it is called with (float32 and float64), caches the
machine code on disk, assumes C-contiguous arguments and leaves validation to the op layer.

Importing this package also chooses numba's threading layer, which has to happen before the first
parallel kernel runs. Measured on the 2-core host with kernels alternating with OpenBLAS sgemm, as
conv2d runs them, the order of preference is:

1. ``tbb`` (pip ``tbb``): 1.7 us to launch an empty parallel loop, 4-18 us right after a GEMM.
   im2col+GEMM at ResNet-20's C=16 layer: 22.5 ms.
2. ``omp`` with ``OMP_WAIT_POLICY=PASSIVE``: the same 22-23 ms, but ~50 us per launch (15 us
   right after a GEMM). With GNU OpenMP's default spinning policy its workers and OpenBLAS's
   fight over the cores: 32.8 ms, a launch right after a GEMM took 3-7 ms and the GEMM itself
   5.0 ms instead of 1.0.
3. ``workqueue``: the same 23 ms, but 80-90 us per launch, and it aborts the process if two
   Python threads launch parallel kernels at once, so it comes last.

Setting ``NUMBA_THREADING_LAYER`` in the environment overrides the choice.
"""
import ctypes
import importlib.metadata
import os
import sys

import numba


def _preload_tbb():
    """Load ``libtbb.so.12`` from the pip ``tbb`` wheel into the global symbol namespace.

    The wheel puts the library in ``<prefix>/lib``, which is not on the loader path, so numba's
    ``tbbpool`` extension cannot find it by itself. Once a library with that soname is loaded
    with ``RTLD_GLOBAL``, the loader reuses it. Returns whether tbb is now usable by numba.
    """
    candidates = []
    try:
        candidates += [f.locate() for f in importlib.metadata.files("tbb") or ()
                       if f.name == "libtbb.so.12"]
    except importlib.metadata.PackageNotFoundError:
        pass
    candidates.append(os.path.join(sys.prefix, "lib", "libtbb.so.12"))
    for path in candidates:
        if os.path.exists(path):
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                break
            except OSError:
                continue
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401  (loads only; starts no threads)
    except ImportError:
        return False
    return True


def choose_threading_layer():
    """Point numba at tbb, else passive-waiting OpenMP, else workqueue (see the module docstring).

    Returns the layer numba will try first. Has no effect once a parallel kernel has run.
    """
    requested = os.environ.get("NUMBA_THREADING_LAYER", "").lower()
    if requested not in ("", "default"):
        if requested == "tbb":
            _preload_tbb()
        return requested
    if _preload_tbb():
        first = "tbb"
    else:
        # Read by libgomp when it starts, i.e. at numba's first parallel launch.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        first = "omp"
    numba.config.THREADING_LAYER_PRIORITY = [first] + [
        layer for layer in ("tbb", "omp", "workqueue") if layer != first]
    numba.config.THREADING_LAYER = "default"
    return first


choose_threading_layer()

from .batch_norm import channel_affine, channel_affine2, channel_grad_sums, channel_mean_var  # noqa: E402
from .epilogue import conv_epilogue  # noqa: E402
from .depthwise import depthwise_backward_input, depthwise_backward_weight, depthwise_forward  # noqa: E402
from .im2col import col2im, col2im_phases, col2im_serial, im2col, im2col_phases, im2col_serial  # noqa: E402
from .pool import (avg_pool_backward, avg_pool_forward, max_pool_backward,  # noqa: E402
                   max_pool_forward)
from .residual import add_relu, relu_backward  # noqa: E402
from .winograd import winograd_input, winograd_output, winograd_output_adjoint  # noqa: E402
from .winograd4 import winograd4_input, winograd4_output, winograd4_output_adjoint  # noqa: E402

__all__ = [
    "channel_mean_var", "channel_affine", "channel_grad_sums", "channel_affine2",
    "im2col", "col2im", "im2col_serial", "col2im_serial", "im2col_phases", "col2im_phases",
    "depthwise_forward", "depthwise_backward_input", "depthwise_backward_weight",
    "max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward",
    "add_relu", "relu_backward", "conv_epilogue",
    "winograd_input", "winograd_output", "winograd_output_adjoint",
    "winograd4_input", "winograd4_output", "winograd4_output_adjoint",
    "choose_threading_layer",
]
