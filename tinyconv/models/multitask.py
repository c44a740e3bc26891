"""Multi-task learning: one shared convolutional trunk, several task heads, a weighted sum of losses.

The lecture's first "fancier architecture" (Caruana 1997, "Multitask Learning"; in ConvNets e.g.
Sermanet et al. 2014, OverFeat, and Zhang et al. 2014, facial landmarks with auxiliary tasks):
the trunk computes features h = f(x) once, each task t has its own small head g_t, and training
minimises

    L = sum_t lambda_t * L_t(g_t(h), y_t)

so the trunk's gradient is the weighted sum of every task's gradient, dL/dh = sum_t lambda_t dL_t/dh.
Tasks that are related regularise each other; an unrelated or badly weighted one can also hurt.

The CIFAR-10 demo (``examples/multitask.py``) asks three questions of the same (rotated) image:
its class (10-way), animal or vehicle (2-way, derived from the class) and how much it was
rotated (0, 90, 180 or 270 degrees, 4-way; the self-supervised task of Gidaris et al. 2018).

This file also holds the small building blocks the other lecture models reuse: ``conv_bn_relu``,
``ConvTrunk`` (the shared trunk) and ``init_relu_convs``.

Shapes: input (N, 3, H, W) -> trunk features (N, C) -> {task: (N, K_t) logits}.
"""
import numpy as np

import tinyconv.functional as F
from tinyconv import nn

# CIFAR-10 class indices: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse,
# 8 ship, 9 truck.
CIFAR_VEHICLES = (0, 1, 8, 9)


def init_relu_convs(module, keep=()):
    """He-normal (fan_out) initialisation of every Conv2d under ``module``, for ReLU nets (as the
    ResNet models do); the default PyTorch fan-in uniform init trains these small nets slower.

    Convs in ``keep`` keep their default init: a prediction layer with few output channels has a
    tiny fan_out, and He's std sqrt(2 / fan_out) would make its initial outputs huge.
    """
    skip = {id(m) for m in keep}
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in skip:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def conv_bn_relu(in_channels, out_channels, kernel_size=3, stride=1, dilation=1):
    """Conv (no bias: BN's beta plays that role) -> BatchNorm -> ReLU, 'same' padding for odd kernels."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU())


class ConvTrunk(nn.Module):
    """A small VGG-style feature extractor: per stage ``blocks`` conv3x3-BN-ReLU layers of the
    stage's width, a 2x2 max pool between stages, global average pooling at the end.

    (N, in_channels, H, W) -> (N, widths[-1]); with ``pool=False`` the last feature map
    (N, widths[-1], H / 2^(S-1), W / 2^(S-1)) is returned instead. ``out_features`` = widths[-1].
    """

    def __init__(self, in_channels=3, widths=(32, 64, 128), blocks=1, pool=True):
        super().__init__()
        layers, c = [], in_channels
        for stage, width in enumerate(widths):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(blocks):
                layers.append(conv_bn_relu(c, width))
                c = width
        self.features = nn.Sequential(*layers)
        self.pool = bool(pool)
        self.out_features = c
        init_relu_convs(self)

    def forward(self, x):
        x = self.features(x)
        return F.global_avg_pool2d(x) if self.pool else x


class MultiTaskNet(nn.Module):
    """A shared trunk and one linear head per task.

    ``heads`` maps task name -> number of classes. ``forward(x)`` returns a dict
    {task: (N, K_task) logits} in the order of ``heads``; every head reads the same trunk features,
    so backward sums the heads' gradients into the trunk.
    """

    def __init__(self, trunk, heads, dropout=0.0):
        super().__init__()
        if not heads:
            raise ValueError("MultiTaskNet: need at least one head")
        self.trunk = trunk
        self.task_names = tuple(heads)
        self.dropout = nn.Dropout(dropout) if dropout else None
        # A plain Module as a named container (there is no ModuleDict): keys read heads.<task>.weight.
        self.heads = nn.Module()
        for name, k in heads.items():
            self.heads.add_module(name, nn.Linear(trunk.out_features, k))

    def forward(self, x):
        h = self.trunk(x)
        if self.dropout is not None:
            h = self.dropout(h)
        return {name: getattr(self.heads, name)(h) for name in self.task_names}


def multitask_loss(outputs, targets, weights=None):
    """L = sum_t w_t * cross_entropy(outputs[t], targets[t]); returns (L, {task: L_t as float}).

    ``weights`` maps task -> w_t (missing tasks weigh 1). Only tasks present in ``targets`` count,
    so a head can be switched off by leaving its targets out.
    """
    weights = weights or {}
    total, parts = None, {}
    for name, target in targets.items():
        loss = F.cross_entropy(outputs[name], target)
        parts[name] = float(loss.item())
        term = loss * float(weights.get(name, 1.0))
        total = term if total is None else total + term
    if total is None:
        raise ValueError("multitask_loss: no targets given")
    return total, parts


def animal_vs_vehicle(labels):
    """CIFAR-10 class indices -> 0 for animal, 1 for vehicle (airplane, automobile, ship, truck)."""
    return np.isin(np.asarray(labels), CIFAR_VEHICLES).astype(np.int64)


def rotate90(images, k):
    """Rotate each image of (N, C, H, W) counter-clockwise by k[i] * 90 degrees (square images).

    Returns a new contiguous array; ``k`` is an int or an (N,) integer array with values in 0..3.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(f"rotate90: need square (N, C, H, W) images, got shape {images.shape}")
    k = np.broadcast_to(np.asarray(k, dtype=np.int64) % 4, images.shape[:1])
    out = np.empty_like(images)
    for r in range(4):
        rows = np.flatnonzero(k == r)
        if rows.size:
            out[rows] = np.rot90(images[rows], r, axes=(2, 3))
    return out


def multitask_cifar(widths=(32, 64, 128), blocks=1, num_classes=10, dropout=0.0):
    """The CIFAR-10 demo net: ConvTrunk + heads 'class' (num_classes), 'animal' (2), 'rotation' (4)."""
    return MultiTaskNet(ConvTrunk(3, widths, blocks),
                        {"class": num_classes, "animal": 2, "rotation": 4}, dropout=dropout)
