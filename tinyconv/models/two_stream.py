"""Two-stream ConvNets for action recognition (Simonyan & Zisserman 2014, "Two-Stream Convolutional
Networks for Action Recognition in Videos", NIPS), Figure 1.

A spatial stream classifies one video frame (appearance); a temporal stream classifies a stack of
motion inputs computed from L consecutive frames; the two are trained separately and fused late by
averaging their class scores (softmax outputs). Each stream is the paper's table:

    layer   spatial stream                       temporal stream
    conv1   7x7x96,  stride 2, norm, pool 2x2    7x7x96,  stride 2, norm, pool 2x2
    conv2   5x5x256, stride 2, norm, pool 2x2    5x5x256, stride 2,       pool 2x2
    conv3   3x3x512, stride 1                    3x3x512, stride 1
    conv4   3x3x512, stride 1                    3x3x512, stride 1
    conv5   3x3x512, stride 1, pool 2x2          3x3x512, stride 1, pool 2x2
    full6   4096, dropout                        4096, dropout
    full7   2048, dropout                        2048, dropout
    softmax num_classes                          num_classes

ReLU follows every conv and full layer. "norm" is AlexNet's local response normalisation:
``LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2)`` in the per-size scaling of Caffe/PyTorch.
The paper does not list paddings; these are 3, 2, 1, 1, 1 ("same"-style), so a 224x224 input gives
112 -> 56 -> 28 -> 14 -> 14 -> 14 -> 14 -> 7 and full6 reads 7 * 7 * 512 = 25,088 values.

``width`` scales every layer's width (``width=1.0`` is the table exactly; 0.125 gives a CPU-sized
demo net); ``input_size`` sizes full6 for the input resolution (any size >= 32).

Temporal input here: the paper stacks the x and y optical-flow fields of L frames (2L channels,
L = 10 -> 20). ``frame_differences`` gives the cheap stand-in used by the demo: the L - 1 RGB
differences of consecutive frames, stacked, so 3 (L - 1) channels (L = 5 -> 12). The temporal
stream takes any channel count (``temporal_channels``).
"""
import numpy as np

import tinyconv.functional as F
from tinyconv import nn
from tinyconv.models.multitask import init_relu_convs
from tinyconv.ops.params import window_output_size

# (width, kernel, stride, padding) of conv1..conv5, and the widths of full6, full7.
CONV_TABLE = ((96, 7, 2, 3), (256, 5, 2, 2), (512, 3, 1, 1), (512, 3, 1, 1), (512, 3, 1, 1))
FULL_TABLE = (4096, 2048)
POOL_AFTER = (True, True, False, False, True)


def _scaled(channels, width):
    return max(1, int(round(channels * width)))


def stream_feature_size(input_size):
    """The side of conv5's pooled map for a square input: 7 for 224, 1 for 32."""
    s = int(input_size)
    for (_, k, stride, pad), pool in zip(CONV_TABLE, POOL_AFTER):
        s = window_output_size(s, k, stride, pad)
        if pool:
            s //= 2
        if s < 1:
            raise ValueError(f"two-stream net: input size {input_size} is too small (needs >= 32)")
    return s


class StreamConvNet(nn.Module):
    """One stream of the table. ``norm2`` puts LRN after conv2 (spatial stream: yes, temporal: no).

    (N, in_channels, S, S) -> (N, num_classes) class scores (logits; softmax is in the loss).
    """

    def __init__(self, in_channels, num_classes, width=1.0, input_size=224, norm2=True, dropout=0.5):
        super().__init__()
        c = in_channels
        for i, ((out, k, stride, pad), pool) in enumerate(zip(CONV_TABLE, POOL_AFTER), start=1):
            out = _scaled(out, width)
            setattr(self, f"conv{i}", nn.Conv2d(c, out, k, stride=stride, padding=pad))
            if i == 1 or (i == 2 and norm2):
                setattr(self, f"norm{i}", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
            if pool:
                setattr(self, f"pool{i}", nn.MaxPool2d(2))
            c = out
        side = stream_feature_size(input_size)
        f6, f7 = (_scaled(f, width) for f in FULL_TABLE)
        self.full6 = nn.Linear(c * side * side, f6)
        self.drop6 = nn.Dropout(dropout)
        self.full7 = nn.Linear(f6, f7)
        self.drop7 = nn.Dropout(dropout)
        self.classifier = nn.Linear(f7, num_classes)
        self.input_size = int(input_size)
        init_relu_convs(self)

    def features(self, x):
        """conv1..pool5: (N, C, S, S) -> (N, c5, s, s)."""
        for i in range(1, 6):
            x = F.relu(getattr(self, f"conv{i}")(x))
            for part in (f"norm{i}", f"pool{i}"):
                layer = getattr(self, part, None)
                if layer is not None:
                    x = layer(x)
        return x

    def forward(self, x):
        h = self.features(x).flatten(1)
        if h.shape[1] != self.full6.in_features:
            raise ValueError(f"StreamConvNet: built for {self.input_size}x{self.input_size} inputs "
                             f"({self.full6.in_features} features into full6), got input shape {x.shape}")
        h = self.drop6(F.relu(self.full6(h)))
        h = self.drop7(F.relu(self.full7(h)))
        return self.classifier(h)


class TwoStreamNet(nn.Module):
    """Spatial and temporal streams (no shared weights); ``forward(frame, motion)`` returns both
    streams' logits, ``late_fusion`` their averaged softmax scores.

    frame: (N, 3, S, S), one RGB frame; motion: (N, temporal_channels, S, S).
    """

    def __init__(self, num_classes, temporal_channels=20, width=1.0, input_size=224, dropout=0.5):
        super().__init__()
        self.spatial = StreamConvNet(3, num_classes, width, input_size, norm2=True, dropout=dropout)
        self.temporal = StreamConvNet(temporal_channels, num_classes, width, input_size, norm2=False,
                                      dropout=dropout)

    def forward(self, frame, motion):
        return self.spatial(frame), self.temporal(motion)

    def scores(self, frame, motion):
        """Late fusion: (softmax(spatial) + softmax(temporal)) / 2, shape (N, K)."""
        return late_fusion(*self(frame, motion))


def late_fusion(*logits):
    """The mean of the streams' softmax class scores (the paper's fusion by averaging)."""
    probs = [F.softmax(z, axis=1) for z in logits]
    total = probs[0]
    for p in probs[1:]:
        total = total + p
    return total / float(len(probs))


def two_stream(num_classes=101, temporal_channels=20, width=1.0, input_size=224, dropout=0.5):
    """The paper's configuration by default (UCF-101 classes, L = 10 flow frames, 224x224)."""
    return TwoStreamNet(num_classes, temporal_channels, width, input_size, dropout)


# ---- clips of moving CIFAR images (the demo's "actions") -----------------------------------------

# Unit steps (dy, dx) per class, counter-clockwise from east; image y grows downwards, so north is -y.
DIRECTIONS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))
DIRECTION_NAMES = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")


def moving_clips(images, directions, frames=5, speed=2):
    """Clips (N, L, C, H, W) in which each image's content slides ``speed`` pixels per frame.

    images: (N, C, H, W); directions: (N,) indices into ``DIRECTIONS`` (use 0, 2, 4, 6 for four
    classes). The image is reflect-padded by P = speed (L - 1) and an HxW window is cropped whose
    origin moves against the direction (so the content moves along it); the clip is centred, so
    the window stays inside the padded image for every direction.
    """
    images = np.asarray(images)
    n, c, h, w = images.shape
    pad = speed * (frames - 1)
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    steps = np.asarray(DIRECTIONS)[np.asarray(directions)]        # (N, 2)
    clips = np.empty((n, frames, c, h, w), dtype=images.dtype)
    half = (frames - 1) / 2
    for t in range(frames):
        # Content at time t is shifted by (t - half) * speed * step from the centre.
        offsets = np.rint(pad - (t - half) * speed * steps).astype(np.int64)
        for (oy, ox) in np.unique(offsets, axis=0):
            rows = np.flatnonzero((offsets[:, 0] == oy) & (offsets[:, 1] == ox))
            clips[rows, t] = padded[rows, :, oy:oy + h, ox:ox + w]
    return clips


def frame_differences(clips):
    """(N, L, C, H, W) -> (N, (L - 1) C, H, W): x_{t+1} - x_t for t = 0..L-2, stacked on channels."""
    clips = np.asarray(clips, dtype=np.float32)
    diffs = clips[:, 1:] - clips[:, :-1]
    n, l1, c, h, w = diffs.shape
    return diffs.reshape(n, l1 * c, h, w)
