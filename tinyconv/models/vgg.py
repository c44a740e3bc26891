"""VGG: Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image Recognition".

The configurations are the columns of the paper's Table 1, written in the table's own notation:
"conv<receptive field>-<channels>" (stride 1, padding 1 for 3x3 so the size is kept), "LRN" and
"maxpool" (2x2, stride 2). Every conv is followed by a ReLU. The ImageNet form ends with Table 1's
FC-4096, FC-4096, FC-1000 (dropout 0.5 after the first two, Sec. 3.1) on the 7x7x512 map left of a
224x224 input.

Parameter counts (Table 2: 133, 133, 134, 138, 144 millions), exact values at 1000 classes:
A 132,863,336; A-LRN 132,863,336 (LRN has no parameters); B 133,047,848; C 133,638,952;
D 138,357,544; E 143,667,240.

The CIFAR form (``cifar=True``) keeps the conv stacks and five pools, so a 32x32 image leaves them as
1x1x512, and replaces the 120 M-parameter classifier with 512-512-num_classes (dropout 0.5).
``batch_norm=True`` puts BN after every conv (not in the paper, which predates BN; it lets the
deeper configurations train from scratch without the paper's staged initialisation).
"""
import tinyconv.functional as F
from tinyconv import nn
from tinyconv.models._layers import init_weights

_STACK = {  # the five conv stacks of each column of Table 1, each followed by "maxpool"
    "A": (["conv3-64"], ["conv3-128"], ["conv3-256"] * 2, ["conv3-512"] * 2, ["conv3-512"] * 2),
    "A-LRN": (["conv3-64", "LRN"], ["conv3-128"], ["conv3-256"] * 2, ["conv3-512"] * 2, ["conv3-512"] * 2),
    "B": (["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 2, ["conv3-512"] * 2, ["conv3-512"] * 2),
    "C": (["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 2 + ["conv1-256"],
          ["conv3-512"] * 2 + ["conv1-512"], ["conv3-512"] * 2 + ["conv1-512"]),
    "D": (["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 3, ["conv3-512"] * 3, ["conv3-512"] * 3),
    "E": (["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 4, ["conv3-512"] * 4, ["conv3-512"] * 4),
}
CONFIGS = {name: [layer for stack in stacks for layer in stack + ["maxpool"]]
           for name, stacks in _STACK.items()}
"""Table 1, column by column, as flat lists of layer names."""

WEIGHT_LAYERS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}


def make_features(config, batch_norm=False, in_channels=3):
    """The conv part of a Table 1 column as one Sequential (names 0, 1, ... as in torchvision)."""
    layers = []
    for layer in config:
        if layer == "maxpool":
            layers.append(nn.MaxPool2d(2, 2))
        elif layer == "LRN":
            # Krizhevsky et al.'s settings (VGG Sec. 2.1 / 4.1: "as in AlexNet"): n = 5, k = 2,
            # alpha = 1e-4 on the plain sum of squares; this LRN divides alpha by n (Caffe's and
            # PyTorch's convention), so alpha = 5 * 1e-4 here gives the same normalisation.
            layers.append(nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
        else:
            kernel, channels = (int(v) for v in layer[len("conv"):].split("-"))
            layers.append(nn.Conv2d(in_channels, channels, kernel, padding=kernel // 2, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.ReLU())
            in_channels = channels
    return nn.Sequential(*layers)


def make_classifier(widths, dropout=0.5):
    """Linear-ReLU-Dropout for every hidden width, then the output Linear: widths (in, hidden..., out)."""
    layers = []
    for fan_in, fan_out in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` (conv stacks and pools), flattened, then ``classifier``.

    The ImageNet classifier takes exactly the 7x7x512 map of a 224x224 input (the paper's training
    crop); the paper's dense test-time evaluation on other sizes is not implemented.
    """

    def __init__(self, features, classifier, feature_shape):
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.feature_shape = tuple(feature_shape)

    def forward(self, x):
        x = self.features(x)
        if tuple(x.shape[1:]) != self.feature_shape:
            side = 32 * self.feature_shape[-1]
            raise ValueError(f"VGG: the classifier expects features of shape {self.feature_shape} "
                             f"(a {side}x{side} input); got {tuple(x.shape[1:])}")
        return self.classifier(F.flatten(x, 1))


def vgg(config, num_classes=1000, batch_norm=False, cifar=False):
    """VGG column ``config`` ("A", "A-LRN", "B", "C", "D" or "E") of Table 1.

    ImageNet form: 224x224 input, FC 4096-4096-num_classes. ``cifar=True``: 32x32 input, FC
    512-512-num_classes. ``batch_norm``: BN after every conv.
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown VGG configuration {config!r}; Table 1 has {', '.join(CONFIGS)}")
    features = make_features(CONFIGS[config], batch_norm)
    side = 1 if cifar else 7  # five 2x2 pools: 32 -> 1, 224 -> 7
    hidden = (512,) if cifar else (4096, 4096)
    model = VGG(features, make_classifier((512 * side * side, *hidden, num_classes)), (512, side, side))
    return init_weights(model)


def vgg11(num_classes=1000, batch_norm=False):
    """Configuration A (11 weight layers), Table 1."""
    return vgg("A", num_classes, batch_norm)


def vgg11_lrn(num_classes=1000, batch_norm=False):
    """Configuration A-LRN: A with local response normalisation after the first conv, Table 1."""
    return vgg("A-LRN", num_classes, batch_norm)


def vgg13(num_classes=1000, batch_norm=False):
    """Configuration B (13 weight layers), Table 1."""
    return vgg("B", num_classes, batch_norm)


def vgg16_c(num_classes=1000, batch_norm=False):
    """Configuration C (16 weight layers, a 1x1 conv closing stacks 3-5), Table 1."""
    return vgg("C", num_classes, batch_norm)


def vgg16(num_classes=1000, batch_norm=False):
    """Configuration D (16 weight layers, all 3x3), Table 1."""
    return vgg("D", num_classes, batch_norm)


def vgg19(num_classes=1000, batch_norm=False):
    """Configuration E (19 weight layers), Table 1."""
    return vgg("E", num_classes, batch_norm)


def vgg11_cifar(num_classes=10, batch_norm=True):
    """Configuration A on 32x32 images (classifier 512-512-num_classes)."""
    return vgg("A", num_classes, batch_norm, cifar=True)


def vgg13_cifar(num_classes=10, batch_norm=True):
    """Configuration B on 32x32 images."""
    return vgg("B", num_classes, batch_norm, cifar=True)


def vgg16_cifar(num_classes=10, batch_norm=True):
    """Configuration D on 32x32 images."""
    return vgg("D", num_classes, batch_norm, cifar=True)


def vgg19_cifar(num_classes=10, batch_norm=True):
    """Configuration E on 32x32 images."""
    return vgg("E", num_classes, batch_norm, cifar=True)
