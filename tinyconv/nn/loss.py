"""Loss modules over the functional losses."""
import tinyconv.functional as F
from tinyconv.nn.module import Module


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of (N, K) logits against (N,) integer classes.

    ``reduction``: 'mean' (default), 'sum' or 'none'; ``label_smoothing`` eps mixes the one-hot
    target with the uniform distribution: q = (1 - eps) onehot + eps / K.
    """

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, self.reduction, self.label_smoothing)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"


class MSELoss(Module):
    """Mean (or summed, or per-element with 'none') squared error (x - target)^2."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, x, target):
        return F.mse_loss(x, target, self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"
