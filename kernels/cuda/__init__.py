"""CUDA C kernels behind the same Python calls as :mod:`tinyconv.kernels.cpu`.

Every CPU kernel has a twin here with the same name, arguments and semantics: it takes
caller-allocated C-contiguous arrays (CuPy arrays on a GPU) and writes its outputs in place.
:class:`CudaKernels` holds the set; it is built from a loader ``load_module(source_text)`` that
returns an object with ``get_function(name)``: ``cupy.RawModule`` on a GPU (:func:`for_cupy`), or
:class:`tinyconv.testing.cuda.EmulatedModule`, which runs the same source on the CPU in tests.

Each ``.cu`` file stamps every kernel twice, ``<name>_f32`` and ``<name>_f64``; the wrappers pick
one by dtype and pass every scalar with an explicit NumPy type (``np.int32`` for ``int``,
``np.int64`` for ``long long``), because CuPy passes a Python int as 64 bits. Kernels use
grid-stride loops, so any grid covers the work: launches use a fixed block and a capped grid.

Importing this package never imports CuPy.
"""
import functools
import importlib.resources
import re

import numpy as np

# NVRTC options for cupy.RawModule; CuPy adds the target architecture itself. The kernels need
# only C++11; naming the dialect makes every NVRTC compile the same language (11.x defaults to
# C++14, 12.x to C++17).
OPTIONS = ("--std=c++14",)

# The kernel files, each compiled on its own the first time one of its kernels runs.
SOURCES = ("im2col.cu", "winograd.cu", "winograd4.cu", "epilogue.cu", "depthwise.cu", "pool.cu", "residual.cu",
           "batch_norm.cu")

_SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_LOCAL_INCLUDE = re.compile(r'^#include "([\w.]+)"[ \t]*$', re.MULTILINE)


def _read(name):
    return importlib.resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def source(name):
    """The text of kernel file ``name`` with each ``#include "header"`` line replaced by the
    header's text, so a compiler given only this string (RawModule, the emulator) needs no
    include path. ``#line`` directives keep compiler messages pointing at the original files."""
    text = _read(name)

    def inline(match):
        line = text.count("\n", 0, match.start()) + 1
        return f'#line 1 "{match.group(1)}"\n{_read(match.group(1))}\n#line {line + 1} "{name}"'

    return _LOCAL_INCLUDE.sub(inline, text)


def _int32(*values):
    return tuple(np.int32(v) for v in values)


def _suffix(kernel, floats, fixed=()):
    """``'f32'`` or ``'f64'``: the stamp of ``kernel`` for the one float dtype that the arrays
    ``floats`` share. Each ``(array, dtype)`` in ``fixed`` must have exactly that dtype. Every
    array must be C-contiguous: the kernels index raw memory."""
    dtypes = {a.dtype for a in floats}
    dtype = dtypes.pop() if len(dtypes) == 1 else None
    if dtype not in _SUFFIXES:
        got = ", ".join(str(a.dtype) for a in floats)
        raise TypeError(f"{kernel}: needs float32 or float64 arrays, all of one dtype; got {got}")
    for array, expected in fixed:
        if array.dtype != expected:
            raise TypeError(f"{kernel}: needs a {np.dtype(expected)} array, got {array.dtype}")
    for array in (*floats, *(array for array, _ in fixed)):
        if not array.flags.c_contiguous:
            raise ValueError(f"{kernel}: needs C-contiguous arrays, got one of shape {array.shape} "
                             f"with strides {array.strides}")
    return _SUFFIXES[dtype]


class CudaKernels:
    """The kernel set of :mod:`tinyconv.kernels.cpu`, run as this package's CUDA C kernels.

    ``load_module(source_text)`` compiles one kernel file (see :func:`source`); it is called
    once per file, the first time one of the file's kernels runs, and each kernel is looked up
    once. Launches use ``block`` threads per block and at most ``max_blocks`` blocks; the
    grid-stride loops cover whatever the grid does not, so tests shrink both to make every
    thread loop.
    """

    def __init__(self, load_module, block=256, max_blocks=65535):
        self._load_module = load_module
        self.block, self.max_blocks = block, max_blocks
        self._modules = {}
        self._functions = {}

    def _function(self, file, name):
        function = self._functions.get(name)
        if function is None:
            module = self._modules.get(file)
            if module is None:
                module = self._modules[file] = self._load_module(source(file))
            function = self._functions[name] = module.get_function(name)
        return function

    def _launch(self, file, name, work, args):
        """Run kernel ``name`` of ``file`` over ``work`` grid-stride indices."""
        if work == 0:  # CUDA rejects an empty grid; there is nothing to write
            return
        blocks = min(-(-work // self.block), self.max_blocks)
        self._function(file, name)((blocks,), (self.block,), args)

    # --- conv2d's im2col and its adjoint ---

    def im2col(self, x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
        """Unfold ``x`` (N, C, H, W) into ``col`` (C*kh*kw, N*oh*ow), every entry written:
        ``col[(c*kh + i)*kw + j, (n*oh + y)*ow + z] = x[n, c, y*sh - ph + i*dh, z*sw - pw + j*dw]``,
        or 0 where that falls outside ``x``."""
        self._unfold("im2col", x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, ow)

    def col2im(self, col, x_grad, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
        """Fold ``col`` into ``x_grad`` (N, C, H, W), overwritten: the adjoint of :meth:`im2col`,
        summed per pixel over the taps in (i, j) order (gather form, deterministic)."""
        self._fold("col2im", col, x_grad, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, ow)

    def im2col_phases(self, x, col, kh, kw, sh, sw, ph, pw, oh, ow):
        """:meth:`im2col` into the polyphase layout of strided convs: q = ow + (kw - 1) // sw
        columns per output row, those past ow dummies (kernels/cpu/im2col.py)."""
        self._unfold("im2col_phases", x, col, kh, kw, sh, sw, ph, pw, 1, 1, oh, ow, ow + (kw - 1) // sw)

    def col2im_phases(self, col, x_grad, kh, kw, sh, sw, ph, pw, oh, ow):
        """:meth:`col2im` from the polyphase layout, its dummy columns ignored."""
        self._fold("col2im_phases", col, x_grad, kh, kw, sh, sw, ph, pw, 1, 1, oh, ow, ow + (kw - 1) // sw)

    def _unfold(self, name, x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, pitch):
        suffix = _suffix(name, (x, col))
        self._launch("im2col.cu", f"im2col_{suffix}", col.size,
                     (x, col, *_int32(*x.shape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, pitch)))

    def _fold(self, name, col, x_grad, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, pitch):
        suffix = _suffix(name, (col, x_grad))
        self._launch("im2col.cu", f"col2im_{suffix}", x_grad.size,
                     (col, x_grad, *_int32(*x_grad.shape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, pitch)))

    # A GPU runs one batch chunk at a time (backend.map_chunks), so there is no serial twin.
    im2col_serial = im2col
    col2im_serial = col2im

    # --- Winograd tile transforms; transformed tiles are rows of a (16, L) array for F(2x2, 3x3),
    # (36, L) for F(4x4, 3x3) ---

    def _tile_transform(self, file, name, arrays, image_shape, row_length, th, pitch, padding=()):
        """Launch transform ``name`` of ``file`` on ``arrays`` (in kernel order), one thread per
        tile of the (N, C, th, pitch) tiles of images of ``image_shape``; tile rows are
        ``row_length`` apart. A tile column past the plane's last (a dummy, when pitch > tw) is a
        tile like the others whose window lies past the edge: the kernels need not tell them apart."""
        suffix = _suffix(name, arrays)
        self._launch(file, f"{name}_{suffix}", image_shape[0] * image_shape[1] * th * pitch,
                     (*arrays, *_int32(*image_shape), np.int64(row_length), *_int32(*padding, th, pitch)))

    def winograd_input(self, x, v, ph, pw, th, tw, pitch):
        """``v[xi, c*N*th*pitch + (n*th + ty)*pitch + tx]`` = ``(B^T d B)[xi]`` for the 4x4 tile
        of ``x`` (N, C, H, W) at padded rows 2ty.., columns 2tx.. (zero padding ph, pw)."""
        self._tile_transform("winograd.cu", "winograd_input", (x, v), x.shape, v.shape[1], th, pitch, (ph, pw))

    def winograd_output(self, m, y, th, tw, pitch):
        """``y`` (N, O, oh, ow), overwritten, = ``A^T M A`` of every tile of ``m``'s layout."""
        self._tile_transform("winograd.cu", "winograd_output", (m, y), y.shape, m.shape[1], th, pitch)

    def winograd_output_adjoint(self, gy, dm, th, tw, pitch):
        """``dm``, in :meth:`winograd_input`'s layout, = ``A dY A^T`` for every 2x2 tile of
        ``gy`` (N, O, oh, ow), zero past its edges (so zero for dummy tiles)."""
        self._tile_transform("winograd.cu", "winograd_output_adjoint", (gy, dm), gy.shape, dm.shape[1], th, pitch)

    def winograd4_input(self, x, v, ph, pw, th, tw, pitch):
        """:meth:`winograd_input` for F(4x4, 3x3): the 6x6 tile at padded rows 4ty.., columns
        4tx.. into the 36 rows of ``v``."""
        self._tile_transform("winograd4.cu", "winograd4_input", (x, v), x.shape, v.shape[1], th, pitch, (ph, pw))

    def winograd4_output(self, m, y, th, tw, pitch):
        """:meth:`winograd_output` for F(4x4, 3x3): 4x4 output tiles from the 36 rows of ``m``."""
        self._tile_transform("winograd4.cu", "winograd4_output", (m, y), y.shape, m.shape[1], th, pitch)

    def winograd4_output_adjoint(self, gy, dm, th, tw, pitch):
        """:meth:`winograd_output_adjoint` for F(4x4, 3x3): every 4x4 tile of ``gy`` into the 36
        rows of ``dm``."""
        self._tile_transform("winograd4.cu", "winograd4_output_adjoint", (gy, dm), gy.shape, dm.shape[1], th, pitch)

    # --- depthwise convolution ---

    def _depthwise(self, name, arrays, work, x_shape, w_shape, y_shape, window):
        """Launch depthwise kernel ``name`` on ``arrays`` (in kernel order) over ``work`` outputs,
        for input ``x_shape``, weight ``w_shape``, output ``y_shape`` and ``window`` =
        (sh, sw, ph, pw, dh, dw)."""
        (n, c_in, h, w), (c_out, _, kh, kw), (oh, ow) = x_shape, w_shape, y_shape[2:]
        suffix = _suffix(name, arrays)
        self._launch("depthwise.cu", f"{name}_{suffix}", work,
                     (*arrays, *_int32(n, c_in, h, w, c_out, kh, kw, *window, oh, ow)))

    def depthwise_forward(self, x, w, y, sh, sw, ph, pw, dh, dw):
        """``y`` (N, C*m, oh, ow), overwritten, = depthwise convolution of ``x`` (N, C, H, W)
        with ``w`` (C*m, 1, kh, kw)."""
        self._depthwise("depthwise_forward", (x, w, y), y.size, x.shape, w.shape, y.shape,
                        (sh, sw, ph, pw, dh, dw))

    def depthwise_backward_input(self, gy, w, gx, sh, sw, ph, pw, dh, dw):
        """``gx`` (N, C, H, W), overwritten, = dL/dx given ``gy`` = dL/dy (N, C*m, oh, ow)."""
        self._depthwise("depthwise_backward_input", (gy, w, gx), gx.size, gx.shape, w.shape,
                        gy.shape, (sh, sw, ph, pw, dh, dw))

    def depthwise_backward_weight(self, gy, x, gw, sh, sw, ph, pw, dh, dw):
        """``gw`` (C*m, 1, kh, kw), overwritten, = dL/dw given ``gy`` = dL/dy (N, C*m, oh, ow)."""
        self._depthwise("depthwise_backward_weight", (gy, x, gw), gw.size, x.shape, gw.shape,
                        gy.shape, (sh, sw, ph, pw, dh, dw))

    # --- pooling ---

    def max_pool_forward(self, x, y, argmax, kh, kw, sh, sw, ph, pw):
        """``y`` (N, C, oh, ow) = window maxima of ``x`` (N, C, H, W); ``argmax`` int32 = their
        flat in-plane index ``h*W + w`` (first maximum wins ties, NaN propagates)."""
        suffix = _suffix("max_pool_forward", (x, y), ((argmax, np.int32),))
        self._launch("pool.cu", f"max_pool_forward_{suffix}", y.size,
                     (x, y, argmax, *_int32(*x.shape, *y.shape[2:], kh, kw, sh, sw, ph, pw)))

    def max_pool_backward(self, gy, argmax, gx):
        """``gx`` (N, C, H, W), overwritten, = 0 plus each ``gy`` entry added at its plane's
        ``argmax`` position (-1 skipped)."""
        suffix = _suffix("max_pool_backward", (gy, gx), ((argmax, np.int32),))
        planes = gx.shape[0] * gx.shape[1]
        self._launch("pool.cu", f"max_pool_backward_{suffix}", planes,
                     (gy, argmax, gx, np.int64(planes),
                      *_int32(gx.shape[2] * gx.shape[3], gy.shape[2] * gy.shape[3])))

    def avg_pool_forward(self, x, y, kh, kw, sh, sw, ph, pw, count_include_pad):
        """``y`` (N, C, oh, ow) = window sums of ``x`` / PyTorch's divisor."""
        suffix = _suffix("avg_pool_forward", (x, y))
        self._launch("pool.cu", f"avg_pool_forward_{suffix}", y.size,
                     (x, y, *_int32(*x.shape, *y.shape[2:], kh, kw, sh, sw, ph, pw,
                                    count_include_pad)))

    def avg_pool_backward(self, gy, gx, kh, kw, sh, sw, ph, pw, count_include_pad):
        """``gx`` (N, C, H, W), overwritten, = dL/dx of :meth:`avg_pool_forward` given ``gy``."""
        suffix = _suffix("avg_pool_backward", (gy, gx))
        self._launch("pool.cu", f"avg_pool_backward_{suffix}", gx.size,
                     (gy, gx, *_int32(*gx.shape, *gy.shape[2:], kh, kw, sh, sw, ph, pw,
                                      count_include_pad)))

    # --- the conv epilogue ---

    def conv_epilogue(self, y, bias, residual, relu):
        """``y[n, c, :] += bias[c]``, then ``+= residual[n, c, :]`` when ``residual`` has y's
        shape (an empty (0, 0, 0) array for none), then ``max(y, 0)`` if ``relu``; y (N, C, L)."""
        has_residual = residual.shape[0] != 0
        suffix = _suffix("conv_epilogue", (y, bias, residual) if has_residual else (y, bias))
        self._launch("epilogue.cu", f"conv_epilogue_{suffix}", y.size,
                     (y, bias, residual if has_residual else y, np.int32(has_residual), np.int32(bool(relu)),
                      *_int32(y.shape[1]), np.int64(y.shape[2]), np.int64(y.size)))

    # --- residual block ---

    def add_relu(self, a, b, out):
        """``out = max(a + b, 0)`` elementwise (NaN propagates); ``out`` may be ``a`` or ``b``."""
        suffix = _suffix("add_relu", (a, b, out))
        self._launch("residual.cu", f"add_relu_{suffix}", out.size, (a, b, out, np.int64(out.size)))

    def relu_backward(self, gy, y, gx):
        """``gx = gy where y > 0 else 0`` elementwise; ``gx`` may be ``gy``."""
        suffix = _suffix("relu_backward", (gy, y, gx))
        self._launch("residual.cu", f"relu_backward_{suffix}", gx.size,
                     (gy, y, gx, np.int64(gx.size)))

    # --- batch normalisation over x viewed as (N, C, L) ---

    def channel_mean_var(self, x, mean, var):
        """``mean``, ``var`` (C,) float64 = per-channel mean and biased variance of ``x``."""
        suffix = _suffix("channel_mean_var", (x,), ((mean, np.float64), (var, np.float64)))
        self._launch("batch_norm.cu", f"channel_mean_var_{suffix}", x.shape[1],
                     (x, mean, var, *_int32(*x.shape)))

    def channel_affine(self, x, scale, shift, relu, y):
        """``y[n, c, :] = x[n, c, :] * scale[c] + shift[c]``, clamped at 0 when ``relu``."""
        suffix = _suffix("channel_affine", (x, scale, shift, y))
        self._launch("batch_norm.cu", f"channel_affine_{suffix}", y.size,
                     (x, scale, shift, *_int32(relu), y, *_int32(*x.shape)))

    def channel_grad_sums(self, gy, x, relu_y, sum_gy, sum_gy_x):
        """``sum_gy``, ``sum_gy_x`` (C,) float64 = per-channel sums of ``g`` and ``g * x``, ``g`` being
        ``gy``, or ``gy`` where ``relu_y > 0`` and 0 elsewhere when ``relu_y`` is given."""
        gate, relu = _gate(gy, relu_y)
        suffix = _suffix("channel_grad_sums", (gy, x, gate), ((sum_gy, np.float64), (sum_gy_x, np.float64)))
        self._launch("batch_norm.cu", f"channel_grad_sums_{suffix}", x.shape[1],
                     (gy, x, gate, relu, sum_gy, sum_gy_x, *_int32(*x.shape)))

    def channel_affine2(self, gy, x, relu_y, a, b, k, gx):
        """``gx[n, c, :] = a[c] * g[n, c, :] + b[c] * x[n, c, :] + k[c]``, ``g`` as in
        :meth:`channel_grad_sums`."""
        gate, relu = _gate(gy, relu_y)
        suffix = _suffix("channel_affine2", (gy, x, gate, a, b, k, gx))
        self._launch("batch_norm.cu", f"channel_affine2_{suffix}", gx.size,
                     (gy, x, gate, relu, a, b, k, gx, *_int32(*x.shape)))


def _gate(gy, relu_y):
    """The ``relu_y, relu`` kernel arguments; without a ReLU the kernel reads no gate and ``gy``
    fills the pointer's place."""
    return (gy, np.int32(0)) if relu_y is None else (relu_y, np.int32(1))


def for_cupy():
    """The kernel set for the current CUDA device, compiled by CuPy (NVRTC, cached on disk)."""
    import cupy
    return _for_device(cupy.cuda.runtime.getDevice())


@functools.cache
def _for_device(device_id):
    # One set per device: a RawModule's functions are loaded on the device that was current
    # when they were first looked up, and CudaKernels keeps them.
    import cupy
    return CudaKernels(lambda code: cupy.RawModule(code=code, options=OPTIONS))
