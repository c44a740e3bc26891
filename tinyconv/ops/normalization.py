"""Batch normalisation (Ioffe & Szegedy 2015) over the channel axis of (N, C) or (N, C, H, W).

Training:  mu, var = batch mean and biased variance per channel,
           xhat = (x - mu) / sqrt(var + eps),  y = gamma xhat + beta,
           running stats <- (1 - momentum) running + momentum batch (unbiased variance).
           dx = gamma / (m sqrt(var + eps)) * (m gy - sum gy - xhat sum(gy xhat)), m = values per channel.
Eval:      the running statistics replace the batch ones and are constants, so dx = gamma gy / sqrt(var + eps).
"""
from tinyconv.autograd import Function
from tinyconv.backend import array_module
from tinyconv.ops.params import check_same_dtype
from tinyconv.tensor import Tensor


class BatchNorm(Function):
    def __init__(self, training, eps, running=None, momentum=0.1):
        self.training, self.eps, self.running, self.momentum = training, eps, running, momentum

    def forward(self, x, gamma, beta):
        xp = array_module(x)
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
        count = x.size // x.shape[1]
        if self.training:
            mean = x.mean(axis=axes)
            centered = x - mean.reshape(shape)
            var = (centered * centered).mean(axis=axes)
            if self.running is not None:
                running_mean, running_var = self.running
                m = self.momentum
                running_mean *= 1 - m
                running_mean += m * mean
                running_var *= 1 - m
                running_var += (m * count / max(count - 1, 1)) * var
        else:
            mean, var = self.running
            centered = x - mean.reshape(shape).astype(x.dtype)
        self.inv_std = (1 / xp.sqrt(var.astype(x.dtype) + x.dtype.type(self.eps))).reshape(shape)
        self.xhat = centered * self.inv_std
        self.gamma, self.axes, self.count = gamma.reshape(shape), axes, count
        return self.xhat * self.gamma + beta.reshape(shape)

    def backward(self, gy):
        gbeta = gy.sum(axis=self.axes)
        ggamma = (gy * self.xhat).sum(axis=self.axes)
        shape = self.gamma.shape
        if self.training:
            scale = self.gamma * self.inv_std / gy.dtype.type(self.count)
            gx = scale * (self.count * gy - gbeta.reshape(shape) - self.xhat * ggamma.reshape(shape))
        else:
            gx = gy * (self.gamma * self.inv_std)
        return gx, ggamma, gbeta


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalise x (N, C) or (N, C, H, W) per channel; see the module docstring for the math.

    ``running_mean``/``running_var`` are (C,) Tensors (or None when not tracked); in training mode
    they are updated in place. In eval mode they are required and used instead of batch statistics.
    """
    op = "batch_norm"
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
    return BatchNorm(training, eps, running, momentum)(x, weight, bias)
