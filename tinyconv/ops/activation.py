"""Pointwise nonlinearities: relu, leaky_relu, sigmoid, tanh."""
from tinyconv import backend
from tinyconv.autograd import Function
from tinyconv.backend import array_module


class ReLU(Function):
    """y = max(x, 0);  dx = gy where y > 0 (the subgradient at 0 is taken as 0)."""

    def forward(self, x):
        self.y = array_module(x).maximum(x, 0)
        return self.y

    def backward(self, gy):
        xp = array_module(gy)
        gx = xp.empty_like(self.y)
        # One fused pass instead of a boolean temporary and a multiply.
        backend.kernels(xp).relu_backward(xp.ascontiguousarray(gy), xp.ascontiguousarray(self.y), gx)
        return gx


class LeakyReLU(Function):
    """y = x for x > 0, slope * x otherwise."""

    def __init__(self, negative_slope):
        self.slope = negative_slope

    def forward(self, x):
        xp = array_module(x)
        self.positive = x > 0
        return xp.where(self.positive, x, x * x.dtype.type(self.slope))

    def backward(self, gy):
        return array_module(gy).where(self.positive, gy, gy * gy.dtype.type(self.slope))


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2, which cannot overflow;  dx = gy y (1 - y)."""

    def forward(self, x):
        xp = array_module(x)
        self.y = (xp.tanh(x * x.dtype.type(0.5)) + 1) * x.dtype.type(0.5)
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class Tanh(Function):
    """y = tanh(x);  dx = gy (1 - y^2)."""

    def forward(self, x):
        self.y = array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


def relu(x):
    return ReLU()(x)


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU(negative_slope)(x)


def sigmoid(x):
    return Sigmoid()(x)


def tanh(x):
    return Tanh()(x)
