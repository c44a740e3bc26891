"""Batch normalisation (Ioffe & Szegedy 2015) over the channel axis of (N, C) or (N, C, H, W).

Training:  mu, var = batch mean and biased variance per channel (m values each),
           xhat = (x - mu) / sqrt(var + eps),  y = gamma xhat + beta,
           running stats <- (1 - momentum) running + momentum batch (unbiased variance).
           dx = gamma / sqrt(var + eps) * (gy - sum(gy) / m - xhat * sum(gy xhat) / m)
Eval:      the running statistics replace the batch ones and are constants: dx = gamma gy / sqrt(var + eps).
Both directions: dgamma = sum(gy xhat), dbeta = sum(gy).

Every per-element formula above is affine in gy and x with per-channel coefficients, so the
kernels make two passes each way: per-channel sums, then one affine write.

With ``relu=True`` the op is relu(batch_norm(x)), the conv-BN-ReLU unit's tail: the affine
write clamps at zero and the backward takes gy gated by y > 0 in place of gy, so the ReLU costs
no pass of its own and no array of its own.
"""
from tinyconv import backend
from tinyconv.autograd import Function
from tinyconv.backend import array_module
from tinyconv.ops.params import check_same_dtype
from tinyconv.tensor import Tensor


def _as_ncl(a):
    """(N, C) or (N, C, H, W) as a contiguous (N, C, L) view."""
    return array_module(a).ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


class BatchNorm(Function):
    def __init__(self, training, eps, running=None, momentum=0.1, relu=False):
        self.training, self.eps, self.running, self.momentum = training, eps, running, momentum
        self.relu = relu

    def forward(self, x, gamma, beta):
        xp = array_module(x)
        kernels = backend.kernels(xp)
        x3 = _as_ncl(x)
        n, c, length = x3.shape
        if self.training:
            mean, var = xp.empty(c, dtype=xp.float64), xp.empty(c, dtype=xp.float64)
            kernels.channel_mean_var(x3, mean, var)
            if self.running is not None:
                running_mean, running_var = self.running
                m, count = self.momentum, n * length
                running_mean *= 1 - m
                running_mean += m * mean
                running_var *= 1 - m
                running_var += (m * count / max(count - 1, 1)) * var
        else:
            mean, var = (s.astype(xp.float64) for s in self.running)
        inv_std = 1 / xp.sqrt(var + self.eps)
        scale = gamma * inv_std
        y = xp.empty_like(x3)
        kernels.channel_affine(x3, scale.astype(x.dtype), (beta - mean * scale).astype(x.dtype), self.relu, y)
        self.x3, self.mean, self.inv_std, self.gamma = x3, mean, inv_std, gamma
        self.relu_y = y if self.relu else None
        return y.reshape(x.shape)

    def backward(self, gy):
        xp = array_module(gy)
        kernels = backend.kernels(xp)
        gy3 = _as_ncl(gy)
        n, c, length = gy3.shape
        sum_gy, sum_gy_x = xp.empty(c, dtype=xp.float64), xp.empty(c, dtype=xp.float64)
        kernels.channel_grad_sums(gy3, self.x3, self.relu_y, sum_gy, sum_gy_x)
        sum_gy_xhat = self.inv_std * (sum_gy_x - self.mean * sum_gy)
        a = self.gamma * self.inv_std
        if self.training:
            # The batch statistics depend on x, which adds the two mean-gradient terms.
            count = n * length
            b = -a * self.inv_std * sum_gy_xhat / count
            k = -a * sum_gy / count - b * self.mean
        else:
            b = k = xp.zeros(c)
        gx = xp.empty_like(gy3)
        dtype = gy.dtype
        kernels.channel_affine2(gy3, self.x3, self.relu_y, a.astype(dtype), b.astype(dtype), k.astype(dtype), gx)
        return gx.reshape(gy.shape), sum_gy_xhat.astype(dtype), sum_gy.astype(dtype)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5,
               relu=False):
    """Normalise x (N, C) or (N, C, H, W) per channel; see the module docstring for the math.
    ``relu=True`` returns relu of the result, computed in the same passes.

    ``running_mean``/``running_var`` are (C,) Tensors (or None when not tracked); in training mode
    they are updated in place. In eval mode they are required and used instead of batch statistics.
    """
    op = "batch_norm_relu" if relu else "batch_norm"
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: input must be (N, C) or (N, C, H, W), got shape {x.shape}")
    c = x.shape[1]
    xp = x.xp
    weight = weight if weight is not None else Tensor(xp.ones(c, dtype=x.dtype))
    bias = bias if bias is not None else Tensor(xp.zeros(c, dtype=x.dtype))
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) for input {x.shape}, got {tuple(t.shape)}")
    check_same_dtype(op, input=x, weight=weight, bias=bias)
    tracked = running_mean is not None and running_var is not None
    if not training and not tracked:
        raise ValueError(f"{op}: eval mode needs running_mean and running_var")
    if training and x.size // c < 2:
        raise ValueError(f"{op}: training needs more than one value per channel, got input shape {x.shape}")
    running = (running_mean.data, running_var.data) if tracked else None
    return BatchNorm(training, eps, running, momentum, bool(relu))(x, weight, bias)
