"""Siamese networks and the contrastive loss (Lin, Cui, Belongie & Hays 2015, "Learning Deep
Representations for Ground-to-Aerial Geolocalization", CVPR; the loss is Hadsell, Chopra & LeCun
2006).

Two branches f_a and f_b embed the two images of a pair; a pair is judged by the distance
d = ||f_a(x_a) - f_b(x_b)||_2 of the embeddings. Training pulls matching pairs together and pushes
non-matching pairs at least a margin m apart:

    L = 1/2 * mean over pairs of [ y d^2 + (1 - y) max(0, m - d)^2 ],   y = 1 for a matching pair.

With ``shared=True`` the branches are one module (f_a = f_b: a true siamese net; every Parameter
is used twice per pair, so its gradient is the sum of both branches' contributions). With
``shared=False`` the branches have the same architecture but their own weights, as Lin et al.
compare for ground-level vs aerial photos, whose statistics differ (the lecture's question: when
do you share?).

Shapes: x_a, x_b (N, C, H, W) -> embeddings (N, D) each; ``contrastive_loss`` -> scalar.
"""
import numpy as np

import tinyconv.functional as F
from tinyconv import nn
from tinyconv.models.multitask import ConvTrunk


class SiameseNet(nn.Module):
    """Two embedding branches built by ``make_branch()`` (a callable returning a Module).

    shared: one branch used twice (``branch_a is branch_b``; ``parameters()`` lists its weights
    once, ``state_dict()`` under both names, as PyTorch does), else two independent branches.
    ``forward(x_a, x_b)`` returns (f_a(x_a), f_b(x_b)).
    """

    def __init__(self, make_branch, shared=True):
        super().__init__()
        self.shared = bool(shared)
        self.branch_a = make_branch()
        self.branch_b = self.branch_a if self.shared else make_branch()

    def forward(self, x_a, x_b):
        return self.branch_a(x_a), self.branch_b(x_b)

    def extra_repr(self):
        return f"shared={self.shared}"


class EmbeddingBranch(nn.Module):
    """ConvTrunk features, then a linear map to the ``embed_dim``-dimensional embedding."""

    def __init__(self, widths=(32, 64, 128), embed_dim=32, in_channels=3):
        super().__init__()
        self.trunk = ConvTrunk(in_channels, widths)
        self.embed = nn.Linear(self.trunk.out_features, embed_dim)

    def forward(self, x):
        return self.embed(self.trunk(x))


def pair_distance(e_a, e_b, eps=1e-9):
    """d = sqrt(sum_k (e_a - e_b)^2 + eps) per row; eps keeps the gradient finite at d = 0."""
    diff = e_a - e_b
    return ((diff * diff).sum(axis=1) + eps).sqrt()


def contrastive_loss(e_a, e_b, same, margin=1.0, eps=1e-9):
    """Hadsell et al.'s contrastive loss, built from differentiable ops (so autograd derives it):

        L = 1/2 mean_i [ y_i d_i^2 + (1 - y_i) relu(m - d_i)^2 ],  d_i = ||e_a[i] - e_b[i]||_2

    e_a, e_b: (N, D) embeddings; same: (N,) 1 for a matching pair, 0 otherwise; margin: m > 0.
    The matching term uses the squared distance directly (smooth at d = 0).
    """
    same = np.asarray(same.data if hasattr(same, "creator") else same)
    if same.shape != (e_a.shape[0],):
        raise ValueError(f"contrastive_loss: same must have shape ({e_a.shape[0]},), got {same.shape}")
    y = e_a.xp.asarray(same, dtype=e_a.dtype)
    diff = e_a - e_b
    d2 = (diff * diff).sum(axis=1)
    gap = F.relu(margin - (d2 + eps).sqrt())
    per_pair = y * d2 + (1 - y) * (gap * gap)
    return per_pair.mean() * 0.5


def make_pairs(labels, n_pairs, rng, same_fraction=0.5):
    """Random index pairs (i, j, same) with about ``same_fraction`` same-label pairs.

    labels: (M,) class labels; rng: a numpy Generator. Returns int64 arrays i, j and an int64
    array same (1 where labels[i] == labels[j]); i != j always.
    """
    labels = np.asarray(labels)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    i = rng.integers(0, len(labels), n_pairs)
    want_same = rng.random(n_pairs) < same_fraction
    j = np.empty(n_pairs, dtype=np.int64)
    for k in range(n_pairs):
        if want_same[k]:
            pool = by_class[labels[i[k]]]
            j[k] = pool[rng.integers(len(pool))]
            while j[k] == i[k] and len(pool) > 1:
                j[k] = pool[rng.integers(len(pool))]
        else:
            j[k] = rng.integers(len(labels))
            while labels[j[k]] == labels[i[k]] and len(by_class) > 1:
                j[k] = rng.integers(len(labels))
    return i.astype(np.int64), j, (labels[i] == labels[j]).astype(np.int64)


def siamese_cifar(shared=True, widths=(32, 64, 128), embed_dim=32):
    """The demo net: two ConvTrunk + linear embedding branches, shared or not."""
    return SiameseNet(lambda: EmbeddingBranch(widths, embed_dim), shared=shared)
