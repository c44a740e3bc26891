"""Pooling over NCHW windows: max (argmax saved for backward), average, global average.

Output sizes follow PyTorch (floor, or ``ceil_mode``); padding counts as -inf for max pooling and,
with ``count_include_pad``, as zeros in the average's divisor.
"""
from tinyconv import backend
from tinyconv.autograd import Function
from tinyconv.backend import array_module
from tinyconv.ops.params import check_input, pair, window_output_size
from tinyconv.tensor import Tensor


class MaxPool2d(Function):
    """y = max over each window;  dx[argmax] += gy (overlapping windows add up)."""

    def __init__(self, kernel, stride, padding, out_size):
        self.window = (*kernel, *stride, *padding)
        self.out_size = out_size

    def forward(self, x):
        xp = array_module(x)
        x = xp.ascontiguousarray(x)
        shape = (*x.shape[:2], *self.out_size)
        y = xp.empty(shape, dtype=x.dtype)
        self.argmax = xp.empty(shape, dtype=xp.int32)
        self.in_shape = x.shape
        backend.kernels(xp).max_pool_forward(x, y, self.argmax, *self.window)
        return y

    def backward(self, gy):
        xp = array_module(gy)
        gx = xp.empty(self.in_shape, dtype=gy.dtype)
        backend.kernels(xp).max_pool_backward(xp.ascontiguousarray(gy), self.argmax, gx)
        return gx


class AvgPool2d(Function):
    """y = window sum / divisor;  dx = gy / divisor spread over the window."""

    def __init__(self, kernel, stride, padding, out_size, count_include_pad):
        self.window = (*kernel, *stride, *padding)
        self.out_size, self.count_include_pad = out_size, count_include_pad

    def forward(self, x):
        xp = array_module(x)
        x = xp.ascontiguousarray(x)
        self.in_shape = x.shape
        y = xp.empty((*x.shape[:2], *self.out_size), dtype=x.dtype)
        backend.kernels(xp).avg_pool_forward(x, y, *self.window, self.count_include_pad)
        return y

    def backward(self, gy):
        xp = array_module(gy)
        gx = xp.empty(self.in_shape, dtype=gy.dtype)
        backend.kernels(xp).avg_pool_backward(xp.ascontiguousarray(gy), gx, *self.window, self.count_include_pad)
        return gx


class GlobalAvgPool2d(Function):
    """y[n, c] = mean over H, W of x[n, c];  dx = gy / (H W) at every pixel."""

    def forward(self, x):
        self.in_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, gy):
        xp = array_module(gy)
        h, w = self.in_shape[2:]
        return xp.broadcast_to((gy / gy.dtype.type(h * w))[:, :, None, None], self.in_shape).copy()


def _window_args(op, x, kernel_size, stride, padding, ceil_mode):
    check_input(x, op)
    kernel = pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else pair(stride, "stride", op, 1)
    padding = pair(padding, "padding", op, 0)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    h, w = x.shape[2:]
    if h + 2 * padding[0] < kernel[0] or w + 2 * padding[1] < kernel[1]:
        raise ValueError(f"{op}: kernel {kernel} is larger than the padded input {h}x{w} "
                         f"(padding {padding}) for input shape {x.shape}")
    out = tuple(window_output_size(s, k, st, p, 1, ceil_mode)
                for s, k, st, p in zip((h, w), kernel, stride, padding))
    return kernel, stride, padding, out


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over kernel_size windows of x (N, C, H, W); stride defaults to the kernel size."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    return MaxPool2d(*_window_args("max_pool2d", x, kernel_size, stride, padding, ceil_mode))(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over kernel_size windows of x (N, C, H, W); stride defaults to the kernel size."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    args = _window_args("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return AvgPool2d(*args, bool(count_include_pad))(x)


def global_avg_pool2d(x):
    """Mean over the spatial axes: (N, C, H, W) -> (N, C)."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    check_input(x, "global_avg_pool2d")
    return GlobalAvgPool2d()(x)
