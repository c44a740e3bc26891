"""Losses: cross_entropy (softmax + negative log-likelihood, fused for stability) and mse_loss."""
import numpy as np

from tinyconv.autograd import Function
from tinyconv.backend import array_module
from tinyconv.ops.softmax import stable_log_softmax
from tinyconv.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    """loss_n = -sum_k q_nk log softmax(x_n)_k with q = (1 - eps) onehot(t_n) + eps / K.

    x: (N, K) logits, t: (N,) integer classes. d loss_n / dx_n = softmax(x_n) - q_n.
    """

    def __init__(self, targets, reduction, label_smoothing):
        self.targets, self.reduction, self.eps = targets, reduction, label_smoothing

    def forward(self, x):
        xp = array_module(x)
        n, k = x.shape
        log_p = stable_log_softmax(x, axis=1)
        rows = xp.arange(n)
        picked = log_p[rows, self.targets]
        loss = -(1 - self.eps) * picked
        if self.eps:
            loss = loss - self.eps / k * log_p.sum(axis=1)
        self.log_p, self.rows = log_p, rows
        if self.reduction == "none":
            return loss.astype(x.dtype)
        total = loss.sum()
        return xp.asarray(total / n if self.reduction == "mean" else total, dtype=x.dtype)

    def backward(self, gy):
        xp = array_module(gy)
        n, k = self.log_p.shape
        gx = xp.exp(self.log_p)
        if self.eps:
            gx -= gx.dtype.type(self.eps / k)
        gx[self.rows, self.targets] -= gx.dtype.type(1 - self.eps)
        if self.reduction == "none":
            return gx * gy[:, None]
        scale = gy / n if self.reduction == "mean" else gy
        return gx * scale


def cross_entropy(logits, targets, reduction="mean", label_smoothing=0.0):
    """Mean (or summed) cross-entropy of (N, K) logits against (N,) integer class targets."""
    targets = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, K), got shape {logits.shape}")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"cross_entropy: targets must have shape ({logits.shape[0]},) for logits "
                         f"of shape {logits.shape}, got {targets.shape}")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype {targets.dtype}")
    if targets.size and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]):
        raise ValueError(f"cross_entropy: targets must lie in [0, {logits.shape[1]}), "
                         f"got range [{int(targets.min())}, {int(targets.max())}]")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    xp = logits.xp
    return CrossEntropy(xp.asarray(targets), reduction, label_smoothing)(logits)


class MSELoss(Function):
    """loss = mean or sum of (x - t)^2;  dx = 2 (x - t) gy (/ N for the mean)."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t):
        self.diff = x - t
        sq = self.diff * self.diff
        if self.reduction == "none":
            return sq
        return sq.mean() if self.reduction == "mean" else sq.sum()

    def backward(self, gy):
        g = 2 * self.diff * gy
        if self.reduction == "mean":
            g = g / self.diff.dtype.type(self.diff.size)
        return g, -g


def mse_loss(x, target, reduction="mean"):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    target = target if isinstance(target, Tensor) else Tensor(x.xp.asarray(target, dtype=x.dtype))
    if target.shape != x.shape:
        raise ValueError(f"mse_loss: input shape {x.shape} and target shape {target.shape} differ")
    return MSELoss(reduction)(x, target)
