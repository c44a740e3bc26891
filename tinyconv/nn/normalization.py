"""Normalisation layers: BatchNorm1d, BatchNorm2d (Ioffe & Szegedy 2015) and LocalResponseNorm."""
import numpy as np

import tinyconv.functional as F
from tinyconv.nn._checks import check_positive_int
from tinyconv.nn.module import Module
from tinyconv.nn.parameter import Parameter
from tinyconv.tensor import Tensor


class _BatchNorm(Module):
    """y = gamma (x - mean) / sqrt(var + eps) + beta per channel (axis 1).

    Training: batch statistics are used, and (with ``track_running_stats``) the buffers
    ``running_mean``/``running_var`` move towards them: r <- (1 - m) r + m batch_stat, with the
    unbiased batch variance; ``momentum=None`` makes m = 1 / num_batches_tracked (a plain average
    of every batch seen). Evaluation: the running statistics are used, or batch statistics when
    they are not tracked. Parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros) exist when
    ``affine``. Buffer and parameter names match PyTorch's, so state dicts are interchangeable.
    """

    input_ndim = None  # the input rank the subclass accepts
    input_layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        name = type(self).__name__
        check_positive_int(name, num_features=num_features)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        c = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(c, dtype=np.float32))
            self.bias = Parameter(np.zeros(c, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(c, dtype=np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(c, dtype=np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(buffer, None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, x, relu=False):
        """Batch norm of x; ``relu=True`` returns relu(batch_norm(x)) from one fused op."""
        if x.ndim != self.input_ndim:
            raise ValueError(f"{type(self).__name__}: input must be {self.input_ndim}-D "
                             f"{self.input_layout}, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels, "
                             f"got input shape {x.shape}")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:
                momentum = 1.0 / int(self.num_batches_tracked.data)
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=use_batch_stats, momentum=momentum, eps=self.eps, relu=relu)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) inputs (after a Linear layer); statistics over the batch axis."""

    input_ndim, input_layout = 2, "(N, C)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs; statistics over N, H and W for each channel."""

    input_ndim, input_layout = 4, "(N, C, H, W)"


class LocalResponseNorm(Module):
    """AlexNet's cross-channel normalisation: y = x / (k + alpha / size * sum of x^2 over ``size``
    neighbouring channels)^beta, on (N, C, H, W) inputs."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        check_positive_int("LocalResponseNorm", size=size)
        self.size, self.alpha, self.beta, self.k = int(size), alpha, beta, k

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
