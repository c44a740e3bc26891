"""Local response normalisation across channels (Krizhevsky et al. 2012), as PyTorch defines it:

    s[n, c] = k + alpha / size * sum_{c' in window(c)} x[n, c']^2,   y = x * s^-beta

window(c) = channels c - floor(size/2) .. c + floor((size-1)/2), clipped to [0, C).
dx[c'] = gy[c'] s[c']^-beta - 2 alpha beta / size * x[c'] * sum_{c: c' in window(c)} gy[c] x[c] s[c]^(-beta-1)
"""
from tinyconv.autograd import Function
from tinyconv.backend import array_module
from tinyconv.ops.params import check_input
from tinyconv.tensor import Tensor


def _window_sum(a, before, after):
    """out[:, c] = sum of a[:, c - before .. c + after] along axis 1 (clipped), via a cumulative sum."""
    xp = array_module(a)
    c = a.shape[1]
    zero = xp.zeros_like(a[:, :1])
    cumulative = xp.concatenate([zero, xp.cumsum(a, axis=1)], axis=1)
    hi = xp.minimum(xp.arange(c) + after + 1, c)
    lo = xp.maximum(xp.arange(c) - before, 0)
    return cumulative[:, hi] - cumulative[:, lo]


class LocalResponseNorm(Function):
    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.before, self.after = size // 2, (size - 1) // 2

    def forward(self, x):
        self.x = x
        self.s = self.k + (self.alpha / self.size) * _window_sum(x * x, self.before, self.after)
        self.s_pow = self.s ** -self.beta
        return x * self.s_pow

    def backward(self, gy):
        inner = gy * self.x * self.s_pow / self.s
        # The adjoint of a window sum with offsets (before, after) is the window sum with them swapped.
        spread = _window_sum(inner, self.after, self.before)
        return gy * self.s_pow - (2 * self.alpha * self.beta / self.size) * self.x * spread


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    x = x if isinstance(x, Tensor) else Tensor(x)
    check_input(x, "local_response_norm")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    return LocalResponseNorm(size, alpha, beta, k)(x)
