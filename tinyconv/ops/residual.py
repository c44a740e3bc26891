"""The residual join y = relu(a + b) as one op: one pass over memory instead of three, and only
y is kept for backward (da = db = gy where y > 0)."""
from tinyconv import backend
from tinyconv.autograd import Function
from tinyconv.backend import array_module
from tinyconv.tensor import Tensor


class AddReLU(Function):
    def forward(self, a, b):
        xp = array_module(a)
        a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
        self.y = xp.empty_like(a)
        backend.kernels(xp).add_relu(a, b, self.y)
        return self.y

    def backward(self, gy):
        xp = array_module(gy)
        gx = xp.empty_like(self.y)
        backend.kernels(xp).relu_backward(xp.ascontiguousarray(gy), self.y, gx)
        return gx, gx


def add_relu(a, b):
    """relu(a + b) for two tensors of the same shape and dtype (a ResNet block's output)."""
    a = a if isinstance(a, Tensor) else Tensor(a)
    b = b if isinstance(b, Tensor) else Tensor(b)
    if a.shape != b.shape:
        raise ValueError(f"add_relu: shapes must match (no broadcasting), got {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"add_relu: dtypes must match, got {a.dtype} and {b.dtype}")
    return AddReLU()(a, b)
