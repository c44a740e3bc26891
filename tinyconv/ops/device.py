"""Moving a tensor between devices, as a differentiable op: y = x on another device, so
dL/dx = dL/dy moved back to x's device."""
from tinyconv.autograd import Function
from tinyconv.backend import device, device_of, to_device
from tinyconv.tensor import Tensor


class ToDevice(Function):
    def __init__(self, target):
        self.target = target

    def forward(self, x):
        self.source = device_of(x)
        return to_device(x, self.target)

    def backward(self, gy):
        return to_device(gy, self.source)


def to(x, target):
    """``x`` on device ``target`` ("cpu", "cuda", "cuda:1" or a Device); ``x`` itself when it is
    already there, as in PyTorch."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    target = device(target)
    if device_of(x.data) == target:
        return x
    return ToDevice(target)(x)
