"""Shape and indexing ops: reshape, transpose, flatten, getitem, concat, stack, split, pad, cast.

None of these change values, so each backward just routes the gradient back to where the value
came from.
"""
from tinyconv.autograd import Function
from tinyconv.backend import array_module


class Reshape(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    """Permute axes (reverse them when ``axes`` is None); backward applies the inverse permutation."""

    def __init__(self, axes):
        self.axes = None if axes is None else tuple(axes)

    def forward(self, x):
        axes = tuple(reversed(range(x.ndim))) if self.axes is None else self.axes
        if (len(axes) != x.ndim or not all(-x.ndim <= a < x.ndim for a in axes)
                or sorted(a % x.ndim for a in axes) != list(range(x.ndim))):
            raise ValueError(f"transpose: axes {axes} are not a permutation of a rank-{x.ndim} tensor's axes")
        self.inverse = tuple(sorted(range(x.ndim), key=lambda i: axes[i] % x.ndim))
        return x.transpose(axes)

    def backward(self, gy):
        return gy.transpose(self.inverse)


class GetItem(Function):
    """y = x[index] for basic or advanced indexing; backward scatters gy back (adding repeats)."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy  # a view: every element is picked at most once
        else:
            xp.add.at(gx, self.index, gy)
        return gx


class Concat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        xp = array_module(*xs)
        ref = xs[0]
        if not -ref.ndim <= self.axis < ref.ndim:
            raise ValueError(f"concat: axis {self.axis} is out of range for tensors of rank {ref.ndim}")
        for x in xs[1:]:
            if x.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, ref.shape))
                                         if i != self.axis % ref.ndim):
                raise ValueError(f"concat: shapes {[t.shape for t in xs]} differ outside axis {self.axis}")
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = array_module(gy)
        bounds = list(_cumulative(self.sizes))[:-1]
        return tuple(xp.split(gy, bounds, axis=self.axis))


class Stack(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        if len({x.shape for x in xs}) != 1:
            raise ValueError(f"stack: all tensors need the same shape, got {[x.shape for x in xs]}")
        return array_module(*xs).stack(xs, axis=self.axis)

    def backward(self, gy):
        xp = array_module(gy)
        return tuple(xp.squeeze(g, axis=self.axis) for g in xp.split(gy, gy.shape[self.axis], axis=self.axis))


class Split(Function):
    """Split along ``axis`` into pieces of the given sizes (the inverse of concat)."""

    def __init__(self, sizes, axis):
        self.sizes, self.axis = list(sizes), axis

    def forward(self, x):
        if sum(self.sizes) != x.shape[self.axis] or any(s < 0 for s in self.sizes):
            raise ValueError(f"split: sizes {self.sizes} must be non-negative and add up to "
                             f"{x.shape[self.axis]}, the size of axis {self.axis} of shape {x.shape}")
        bounds = list(_cumulative(self.sizes))[:-1]
        return tuple(array_module(x).split(x, bounds, axis=self.axis))

    def backward(self, *gys):
        return array_module(*gys).concatenate(gys, axis=self.axis)


class Pad(Function):
    """Constant padding; ``widths`` is one (before, after) pair per axis."""

    def __init__(self, widths, value):
        self.widths, self.value = widths, value

    def forward(self, x):
        if len(self.widths) != x.ndim:
            raise ValueError(f"pad: need {x.ndim} (before, after) pairs for shape {x.shape}, got {self.widths}")
        self.crop = tuple(slice(b, b + n) for (b, _), n in zip(self.widths, x.shape))
        return array_module(x).pad(x, self.widths, constant_values=self.value)

    def backward(self, gy):
        return gy[self.crop]


class Cast(Function):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


def _cumulative(sizes):
    total = 0
    for s in sizes:
        total += s
        yield total


def reshape(x, shape):
    return Reshape(shape)(x)


def transpose(x, axes=None):
    return Transpose(axes)(x)


def flatten(x, start_dim=1, end_dim=-1):
    """Merge axes start_dim..end_dim into one (``flatten(x)`` keeps the batch axis, like torch)."""
    shape = x.shape
    start, end = start_dim % len(shape), end_dim % len(shape)
    merged = 1
    for n in shape[start:end + 1]:
        merged *= n
    return reshape(x, shape[:start] + (merged,) + shape[end + 1:])


def getitem(x, index):
    if hasattr(index, "creator"):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if hasattr(i, "creator") else i for i in index)
    return GetItem(index)(x)


def concat(xs, axis=0):
    return Concat(axis)(*xs)


cat = concat


def stack(xs, axis=0):
    return Stack(axis)(*xs)


def split(x, split_size_or_sections, axis=0):
    """Like torch.split: an int gives equal chunks (the last may be smaller), a list gives sizes."""
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: the chunk size must be positive, got {step}")
        sizes = [min(step, n - i) for i in range(0, n, step)]
    else:
        sizes = list(split_size_or_sections)
    return Split(sizes, axis)(x)


def pad(x, pad_width, value=0.0):
    """``pad_width`` as numpy's (one (before, after) pair per axis) or torch's flat tuple
    (last axis first: (left, right, top, bottom, ...))."""
    if pad_width and isinstance(pad_width[0], int):
        if len(pad_width) % 2:
            raise ValueError(f"pad: flat widths need an even length (pairs), got {tuple(pad_width)}")
        pairs = [tuple(pad_width[i:i + 2]) for i in range(0, len(pad_width), 2)]
        widths = [(0, 0)] * (x.ndim - len(pairs)) + list(reversed(pairs))
    else:
        widths = [tuple(p) for p in pad_width]
    return Pad(widths, value)(x)


def cast(x, dtype):
    return Cast(dtype)(x)
