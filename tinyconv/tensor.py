"""Tensor: an array plus the graph bookkeeping autograd needs.

``data`` is a numpy (or cupy) array, ``grad`` the accumulated gradient (same shape) or None,
``creator`` the Function that produced the tensor (None for leaves). Operators build the graph by
calling the differentiable ops in ``tinyconv.ops``.
"""
import numpy as np

from tinyconv import autograd
from tinyconv.backend import array_module, device_of, is_cupy_array, to_device

DEFAULT_DTYPE = np.float32


def _to_array(data, dtype=None):
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.generic):  # numpy reductions return scalars; keep their dtype
        data = np.asarray(data)
    if isinstance(data, np.ndarray) or is_cupy_array(data):
        return data if dtype is None or data.dtype == dtype else data.astype(dtype)
    array = np.asarray(data, dtype=dtype)
    if dtype is None and array.dtype == np.float64:
        # Python floats and lists become float32, the engine's default; numpy float64 arrays
        # keep their dtype (gradient checks run in float64).
        array = array.astype(DEFAULT_DTYPE)
    return array


class Tensor:
    # Make numpy defer to Tensor's reflected operators (ndarray + Tensor -> Tensor.__radd__).
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _to_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require grad, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.creator = None
        self.output_index = 0
        self.retains_grad = False

    # ---- array-like properties ----
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    xp = property(lambda self: array_module(self.data))
    is_leaf = property(lambda self: self.creator is None)

    @property
    def device(self):
        """The Device the data lives on (compares equal to "cpu", "cuda:0"...)."""
        return device_of(self.data)

    def to(self, device):
        """This tensor on ``device`` ("cpu", "cuda", "cuda:1"); differentiable, and ``self`` when
        it is already there."""
        return device_ops.to(self, device)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(f"cuda:{index}")

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.numpy(), prefix="tensor(", separator=", ", threshold=50)
        return f"tensor({body}, dtype={self.dtype}{grad})"

    def numpy(self):
        """The data as a numpy array (copied from the GPU when needed)."""
        return self.data.get() if is_cupy_array(self.data) else self.data

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    # ---- autograd ----
    def backward(self, grad=None, retain_graph=False):
        """Gradients of this tensor w.r.t. every leaf that requires grad, added into ``leaf.grad``."""
        autograd.backward(self, grad, retain_graph)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep theirs)."""
        self.retains_grad = True
        return self

    def detach(self):
        """A leaf tensor sharing this data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    def astype(self, dtype):
        return shape_ops.cast(self, dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    # ---- shape ----
    def reshape(self, *shape):
        return shape_ops.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    view = reshape

    def transpose(self, *axes):
        return shape_ops.transpose(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else (axes or None))

    def permute(self, *axes):
        return self.transpose(*axes)

    @property
    def T(self):
        return shape_ops.transpose(self, None)

    def flatten(self, start_dim=0, end_dim=-1):
        return shape_ops.flatten(self, start_dim, end_dim)

    def __getitem__(self, index):
        return shape_ops.getitem(self, index)

    # ---- reductions ----
    def sum(self, axis=None, keepdims=False):
        return reduction.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return reduction.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return reduction.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return reduction.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return reduction.var(self, axis, keepdims, ddof)

    def argmax(self, axis=None):
        return Tensor(self.data.argmax(axis=axis))

    # ---- elementwise ----
    def exp(self):
        return elementwise.exp(self)

    def log(self):
        return elementwise.log(self)

    def sqrt(self):
        return elementwise.sqrt(self)

    def abs(self):
        return elementwise.abs(self)

    def relu(self):
        return activation.relu(self)

    def sigmoid(self):
        return activation.sigmoid(self)

    def tanh(self):
        return activation.tanh(self)

    __add__ = lambda self, other: elementwise.add(self, other)
    __radd__ = lambda self, other: elementwise.add(other, self)
    __sub__ = lambda self, other: elementwise.sub(self, other)
    __rsub__ = lambda self, other: elementwise.sub(other, self)
    __mul__ = lambda self, other: elementwise.mul(self, other)
    __rmul__ = lambda self, other: elementwise.mul(other, self)
    __truediv__ = lambda self, other: elementwise.div(self, other)
    __rtruediv__ = lambda self, other: elementwise.div(other, self)
    __pow__ = lambda self, other: elementwise.pow(self, other)
    __rpow__ = lambda self, other: elementwise.pow(other, self)
    __neg__ = lambda self: elementwise.neg(self)
    __pos__ = lambda self: self
    __abs__ = lambda self: elementwise.abs(self)
    __matmul__ = lambda self, other: linear.matmul(self, other)
    __rmatmul__ = lambda self, other: linear.matmul(other, self)

    # Comparisons give plain boolean tensors; they are not differentiable.
    __lt__ = lambda self, other: Tensor(self.data < _to_array(other))
    __le__ = lambda self, other: Tensor(self.data <= _to_array(other))
    __gt__ = lambda self, other: Tensor(self.data > _to_array(other))
    __ge__ = lambda self, other: Tensor(self.data >= _to_array(other))
    __eq__ = lambda self, other: Tensor(self.data == _to_array(other))
    __ne__ = lambda self, other: Tensor(self.data != _to_array(other))
    __hash__ = object.__hash__


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new leaf tensor from a list, scalar or array (Python floats become float32), on
    ``device`` when given (else where ``data`` lives)."""
    array = _to_array(data, dtype)
    if device is not None:
        array = to_device(array, device)
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(value, like=None):
    """``value`` as a Tensor. Next to ``like``, a list takes ``like``'s dtype and a Python scalar
    the dtype numpy 2 gives it: ``like``'s own when that loses nothing (float32 math stays
    float32), else the promoted one (an int tensor times 0.5 is float64)."""
    if isinstance(value, Tensor):
        return value
    if like is not None and not hasattr(value, "shape"):
        scalar = isinstance(value, (int, float, complex))
        dtype = np.result_type(like.dtype, value) if scalar else like.dtype
        return Tensor(like.xp.asarray(value, dtype=dtype))
    return Tensor(value)


# The ops import Tensor from this module, so they are imported after it is defined.
from tinyconv.ops import activation, elementwise, linear, reduction  # noqa: E402
from tinyconv.ops import device as device_ops  # noqa: E402
from tinyconv.ops import shape as shape_ops  # noqa: E402
