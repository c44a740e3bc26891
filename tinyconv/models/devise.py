"""DeViSE, a deep visual-semantic embedding model (Frome, Corrado, Shlens, Bengio, Dean, Ranzato &
Mikolov 2013, "DeViSE: A Deep Visual-Semantic Embedding Model", NIPS): a multi-modal net.

A visual network gives image features v(x) (N, F); a learned linear map M (D x F) projects them
into a fixed semantic space where every label y has an embedding t_y (D,), normalised to unit
length (the paper: skip-gram word vectors; here hand-written attribute vectors). The similarity
of an image and a label is s(x, y) = t_y^T M v(x), and training uses the hinge rank loss

    loss(x, y) = sum over labels j != y of max(0, margin - t_y^T M v(x) + t_j^T M v(x)),

margin = 0.1 as in the paper: the true label must beat every other label by the margin. Because
labels enter only through their embeddings, the model can score labels it never saw in training
(zero-shot): an image of a held-out class is predicted right if M v(x) lands nearest to that
class's embedding. With unit-norm t_j, ranking labels by t_j^T M v, by cosine, or by Euclidean
distance ||M v - t_j|| gives the same order.

Shapes: x (N, C, H, W) -> v (N, F) -> M v (N, D); label_embeddings T (K, D); scores (N, K).
The paper starts from a softmax-pretrained visual model and first trains M alone; the example
does the same in miniature (a softmax phase on the seen classes, then the DeViSE phase).
"""
import numpy as np

import tinyconv.functional as F
from tinyconv import nn
from tinyconv.models.multitask import ConvTrunk
from tinyconv.tensor import Tensor


def normalize_rows(matrix, eps=1e-12):
    """Each row divided by its L2 norm (numpy; zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), eps)


class DeViSE(nn.Module):
    """visual: a Module mapping images to (N, F) features, with ``out_features`` = F.
    label_embeddings: (K, D) array, one row per label; stored unit-normalised as a buffer
    (fixed: it is the target space, not learned).

    ``forward(x, labels=None)`` returns scores (N, K) (or (N, len(labels)) for a subset of label
    indices); ``embed(x)`` the projected image M v(x) (N, D).
    """

    def __init__(self, visual, label_embeddings):
        super().__init__()
        table = normalize_rows(label_embeddings)
        if table.ndim != 2:
            raise ValueError(f"DeViSE: label_embeddings must be (K, D), got shape {table.shape}")
        self.visual = visual
        self.projection = nn.Linear(visual.out_features, table.shape[1], bias=False)
        self.register_buffer("label_embeddings", Tensor(table.astype(np.float32)))

    def embed(self, x):
        return self.projection(self.visual(x))

    def forward(self, x, labels=None):
        table = self.label_embeddings
        if labels is not None:
            table = Tensor(table.data[np.asarray(labels)])
        return self.embed(x) @ table.T


def hinge_rank_loss(scores, targets, margin=0.1):
    """mean over i of sum_{j != y_i} max(0, margin - s[i, y_i] + s[i, j]), built from ops.

    scores: (N, K) similarities; targets: (N,) integer labels in 0..K-1 (indices into the columns).
    """
    targets = np.asarray(targets.data if hasattr(targets, "creator") else targets)
    n, k = scores.shape
    if targets.shape != (n,):
        raise ValueError(f"hinge_rank_loss: targets must have shape ({n},), got {targets.shape}")
    rows = np.arange(n)
    true = scores[rows, targets].reshape(n, 1)
    others = np.ones((n, k), dtype=scores.dtype)
    others[rows, targets] = 0          # the true label's own term (always = margin) is left out
    violations = F.relu(margin - true + scores) * Tensor(scores.xp.asarray(others))
    return violations.sum(axis=1).mean()


def devise_cifar(label_embeddings, widths=(32, 64, 128), blocks=1):
    """The demo model: a ConvTrunk visual model projected into the given label space."""
    return DeViSE(ConvTrunk(3, widths, blocks), label_embeddings)
