"""Elementwise arithmetic with NumPy broadcasting.

Forward broadcasts the inputs against each other; backward sums each gradient back to the shape of
its input (``sum_to``), since an input broadcast along an axis was used once per element there.
"""
import numpy as np

from tinyconv.autograd import Function
from tinyconv.backend import array_module
from tinyconv.tensor import Tensor, as_tensor


def sum_to(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _operands(a, b, op):
    """Both operands as Tensors (a Python scalar takes the other side's dtype), checked to broadcast."""
    if isinstance(a, Tensor):
        a, b = a, as_tensor(b, like=a)
    else:
        b = as_tensor(b)
        a = as_tensor(a, like=b)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None
    return a, b


class Add(Function):
    """y = a + b"""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(Function):
    """y = a - b"""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Mul(Function):
    """y = a * b;  da = gy * b,  db = gy * a"""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        need_a, need_b = self.needs_input_grad
        ga = sum_to(gy * self.b, self.a.shape) if need_a else None
        gb = sum_to(gy * self.a, self.b.shape) if need_b else None
        return ga, gb


class Div(Function):
    """y = a / b;  da = gy / b,  db = -gy * a / b^2"""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        need_a, need_b = self.needs_input_grad
        ga = sum_to(gy / self.b, self.a.shape) if need_a else None
        gb = sum_to(-gy * self.a / (self.b * self.b), self.b.shape) if need_b else None
        return ga, gb


class Pow(Function):
    """y = a ** b;  da = gy * b * a^(b-1),  db = gy * y * log(a)  (defined for a > 0)"""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        need_a, need_b = self.needs_input_grad
        xp = array_module(gy)
        ga = sum_to(gy * self.b * self.a ** (self.b - 1), self.a.shape) if need_a else None
        gb = sum_to(gy * self.y * xp.log(self.a), self.b.shape) if need_b else None
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(Function):
    """y = e^x;  dx = gy * y"""

    def forward(self, x):
        self.y = array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = ln x;  dx = gy / x"""

    def forward(self, x):
        self.x = x
        return array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    """y = sqrt(x);  dx = gy / (2 y)"""

    def forward(self, x):
        self.y = array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Abs(Function):
    """y = |x|;  dx = gy * sign(x)  (0 at x = 0)"""

    def forward(self, x):
        self.x = x
        return array_module(x).abs(x)

    def backward(self, gy):
        return gy * array_module(gy).sign(self.x)


class Maximum(Function):
    """y = max(a, b) elementwise; the gradient goes to the larger input, split evenly on ties."""

    pick_larger = True

    def forward(self, a, b):
        xp = array_module(a, b)
        self.a, self.b = a, b
        return xp.maximum(a, b) if self.pick_larger else xp.minimum(a, b)

    def backward(self, gy):
        a_wins = (self.a > self.b) if self.pick_larger else (self.a < self.b)
        share_a = a_wins + 0.5 * (self.a == self.b)
        share_a = share_a.astype(gy.dtype)
        return sum_to(gy * share_a, self.a.shape), sum_to(gy * (1 - share_a), self.b.shape)


class Minimum(Maximum):
    """y = min(a, b) elementwise; the gradient goes to the smaller input, split evenly on ties."""

    pick_larger = False


def add(a, b):
    return Add()(*_operands(a, b, "add"))


def sub(a, b):
    return Sub()(*_operands(a, b, "sub"))


def mul(a, b):
    return Mul()(*_operands(a, b, "mul"))


def div(a, b):
    return Div()(*_operands(a, b, "div"))


def pow(a, b):
    return Pow()(*_operands(a, b, "pow"))


def maximum(a, b):
    return Maximum()(*_operands(a, b, "maximum"))


def minimum(a, b):
    return Minimum()(*_operands(a, b, "minimum"))


def neg(x):
    return Neg()(x)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):
    return Abs()(x)
