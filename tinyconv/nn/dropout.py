"""Dropout layer: inverted dropout in training mode, the identity in eval mode."""
import tinyconv.functional as F
from tinyconv.nn.module import Module


class Dropout(Module):
    """In training, zero each value with probability p and scale the survivors by 1 / (1 - p).

    Masks come from ``tinyconv.random.generator()``, so ``tinyconv.random.manual_seed`` makes them
    reproducible.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
