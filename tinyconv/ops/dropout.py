"""Inverted dropout: in training, zero each value with probability p and scale the rest by 1/(1-p),
so evaluation needs no rescaling;  dx = gy * mask / (1 - p)."""
from tinyconv import random
from tinyconv.autograd import Function
from tinyconv.backend import array_module
from tinyconv.tensor import Tensor


class Dropout(Function):
    def __init__(self, p):
        self.p = p

    def forward(self, x):
        xp = array_module(x)
        keep = random.generator().random(x.shape) >= self.p
        self.scale = xp.asarray(keep, dtype=x.dtype) * x.dtype.type(1 / (1 - self.p))
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale


def dropout(x, p=0.5, training=True):
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    x = x if isinstance(x, Tensor) else Tensor(x)
    if not training or p == 0.0:
        return x
    return Dropout(p)(x)
