"""Reductions over axes: sum, mean, max/min, var (all with ``keepdims``).

The public functions shadow the builtins ``sum``/``max``/``min`` on purpose (``F.sum(x)``), so
nothing in this module uses those builtins.
"""
from tinyconv.autograd import Function
from tinyconv.backend import array_module


def _normalize_axes(axis, ndim, op):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor of rank {ndim}")
    return tuple(sorted(a % ndim for a in axes))


def _expand(grad, in_shape, axes):
    """Re-insert reduced axes so ``grad`` broadcasts against the input again."""
    shape = list(in_shape)
    for a in axes:
        shape[a] = 1
    return grad.reshape(shape)


class Sum(Function):
    """y = sum of x over ``axes``;  dx = gy broadcast back over them."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axes(self.axis, x.ndim, self.name.lower())  # "sum" or "mean"
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = array_module(gy)
        return xp.broadcast_to(_expand(gy, self.in_shape, self.axes), self.in_shape)


class Mean(Sum):
    """y = mean of x over ``axes``;  dx = gy / (number of elements averaged)."""

    def forward(self, x):
        y = super().forward(x)
        self.count = x.size // y.size if y.size else 0
        return y / x.dtype.type(self.count) if self.count else y

    def backward(self, gy):
        return super().backward(gy / gy.dtype.type(self.count))


class Max(Function):
    """y = max (or min) of x over ``axes``; the gradient is split evenly among tied extremes."""

    def __init__(self, axis, keepdims, largest=True):
        self.axis, self.keepdims, self.largest = axis, keepdims, largest

    def forward(self, x):
        self.axes = _normalize_axes(self.axis, x.ndim, "max" if self.largest else "min")
        if x.size == 0:
            raise ValueError(f"{'max' if self.largest else 'min'}: empty tensor of shape {x.shape}")
        reduce = x.max if self.largest else x.min
        self.x = x
        self.y_keep = reduce(axis=self.axes, keepdims=True)
        return self.y_keep if self.keepdims else self.y_keep.reshape(
            [n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        mask = (self.x == self.y_keep).astype(gy.dtype)
        mask /= mask.sum(axis=self.axes, keepdims=True)
        return mask * _expand(gy, self.x.shape, self.axes)


class Var(Function):
    """y = sum((x - mean)^2) / (n - ddof) over ``axes``;  dx = gy * 2 (x - mean) / (n - ddof)."""

    def __init__(self, axis, keepdims, ddof):
        self.axis, self.keepdims, self.ddof = axis, keepdims, ddof

    def forward(self, x):
        self.axes = _normalize_axes(self.axis, x.ndim, "var")
        mean = x.mean(axis=self.axes, keepdims=True)
        self.centered = x - mean
        self.denominator = x.dtype.type(x.size // mean.size - self.ddof)
        return (self.centered ** 2).sum(axis=self.axes, keepdims=self.keepdims) / self.denominator

    def backward(self, gy):
        return _expand(gy, self.centered.shape, self.axes) * self.centered * (2 / self.denominator)


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    return Mean(axis, keepdims)(x)


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims, largest=True)(x)


def min(x, axis=None, keepdims=False):
    return Max(axis, keepdims, largest=False)(x)


def var(x, axis=None, keepdims=False, ddof=0):
    return Var(axis, keepdims, ddof)(x)
