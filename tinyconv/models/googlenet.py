"""GoogLeNet (Inception v1): Szegedy et al. 2015, "Going Deeper with Convolutions", Table 1.

The stem (7x7/2 conv, max pool, LRN, 1x1 reduce + 3x3 conv, LRN, max pool: Fig. 3) takes a
224x224 image to 28x28x192; nine Inception modules follow, in three groups (3a-b on 28x28, 4a-e
on 14x14, 5a-b on 7x7) with 3x3/2 max pools between; then a global 7x7 average pool, dropout 40%
and the classifier. 22 layers with parameters (27 with the pools). Every conv is followed by a
ReLU and, as in 2014, has a bias and no batch norm.

The Inception module (Fig. 2b): four branches on the same input, concatenated on channels:
1x1 conv | 1x1 reduce -> 3x3 conv | 1x1 reduce -> 5x5 conv | 3x3/1 max pool -> 1x1 "pool proj".

Auxiliary classifiers (Sec. 5), on the outputs of 4a and 4d, used only in training (their losses
are added with weight 0.3): 5x5/3 average pool, 1x1 conv with 128 filters + ReLU, FC 1024 + ReLU,
dropout 70%, linear classifier.

Parameters at 1000 classes without the auxiliary heads: 6,998,552 with biases (6,990,272 weights);
the paper says "~6.8M". Its Table 1 "params" column counts weights only, in K = 1024, and sums to
6,798K against 6,826K here (6,990,272 / 1024): a few of its rows disagree with the widths in the
same table (conv1 2.7K vs 9.2K, 4c 463K vs 497.5K, 5a 1072K vs 1018K); this follows the widths.
torchvision's GoogLeNet (6,624,904) differs by design: it puts BN after every conv
(``batch_norm=True`` here: no conv biases, BN's gamma and beta instead: 7,005,832), and its "5x5"
branch is a 3x3 conv, which removes 380,928 weights (7,005,832 - 380,928 = 6,624,904).
Multiply-adds at 224x224: 1.58 G, as Table 1's "ops" column (which sums to 1,586 M); Sec. 5
rounds it to "1.5 billion multiply-adds".

Pooling sizes: the paper gives no paddings; the 3x3/2 max pools round sizes up (ceil mode, as
Caffe does), so that 112 -> 56 -> 28 -> 14 -> 7 as in Table 1.

The CIFAR form (``googlenet_cifar``) shrinks the stem's /8 to /2: the first conv becomes 3x3/1 and
the pool after the 3x3 conv is dropped, so a 32x32 image reaches the Inception groups at 16, 8 and
4 pixels (the ImageNet net: 28, 14, 7). It uses batch norm by default (and then, like
BN-Inception, no LRN), which lets this 22-layer net train in a few epochs.
"""
from collections import namedtuple

import tinyconv.functional as F
from tinyconv import nn
from tinyconv.models._layers import ConvBNReLU, init_weights

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux1", "aux2"])
GoogLeNetOutputs.__doc__ = "Training-mode output with aux_logits=True: the main and auxiliary logits."

# Table 1: "#1x1", "#3x3 reduce", "#3x3", "#5x5 reduce", "#5x5", "pool proj" of each module, with
# "maxpool" (3x3/2) where the table has one between modules.
INCEPTION = (
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    "maxpool",
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    "maxpool",
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
)
AUX_AFTER = ("inception4a", "inception4d")


class Inception(nn.Module):
    """Fig. 2(b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1, concatenated on channels."""

    def __init__(self, in_channels, ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5, pool_proj,
                 batch_norm=False):
        super().__init__()

        def unit(i, o, k):
            return ConvBNReLU(i, o, k, batch_norm=batch_norm)

        self.branch1 = unit(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(unit(in_channels, ch3x3_reduce, 1), unit(ch3x3_reduce, ch3x3, 3))
        self.branch3 = nn.Sequential(unit(in_channels, ch5x5_reduce, 1), unit(ch5x5_reduce, ch5x5, 5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), unit(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x):
        return F.concat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=1)


class InceptionAux(nn.Module):
    """Sec. 5's side classifier on a ``map_size`` x ``map_size`` feature map (14 in the paper)."""

    def __init__(self, in_channels, num_classes, map_size, batch_norm=False):
        super().__init__()
        self.avgpool = nn.AvgPool2d(5, stride=3)
        pooled = (map_size - 5) // 3 + 1  # 14 -> 4: the paper's 4x4x512 / 4x4x528
        if pooled < 1:
            raise ValueError(f"InceptionAux: a {map_size}x{map_size} map is too small for the 5x5 pool")
        self.conv = ConvBNReLU(in_channels, 128, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(128 * pooled * pooled, 1024)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = F.flatten(self.conv(self.avgpool(x)), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    """Table 1. ``aux_logits=True`` adds the two auxiliary heads; in training mode the model then
    returns ``GoogLeNetOutputs(logits, aux1, aux2)`` (aux1 after 4a, aux2 after 4d), in eval mode
    just the logits. ``aux_logits`` needs the input size the net was built for (224, or 32 with
    ``cifar``), since the heads' fully connected layers are sized for it.
    """

    def __init__(self, num_classes=1000, aux_logits=False, batch_norm=False, cifar=False, dropout=0.4):
        super().__init__()
        self.aux_logits, self.cifar = bool(aux_logits), bool(cifar)
        lrn = not batch_norm  # BN-Inception (Ioffe & Szegedy 2015) dropped LRN along with adding BN

        def norm():
            # As in BVLC's Caffe reproduction of GoogLeNet: size 5, alpha 1e-4 (Caffe divides it by
            # the size, as this LRN does), beta 0.75, k = 1. The paper gives no LRN settings.
            return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if lrn else nn.Identity()

        def maxpool():
            return nn.MaxPool2d(3, stride=2, ceil_mode=True)

        if cifar:
            self.conv1 = ConvBNReLU(3, 64, 3, stride=1, batch_norm=batch_norm)
        else:
            self.conv1 = ConvBNReLU(3, 64, 7, stride=2, padding=3, batch_norm=batch_norm)
        self.maxpool1 = maxpool()
        self.lrn1 = norm()
        self.conv2 = ConvBNReLU(64, 64, 1, batch_norm=batch_norm)
        self.conv3 = ConvBNReLU(64, 192, 3, batch_norm=batch_norm)
        self.lrn2 = norm()
        self.maxpool2 = nn.Identity() if cifar else maxpool()

        self.stages = []  # names of the Inception modules and pools in order (each also an attribute)
        channels, side = 192, 16 if cifar else 28  # the map the first Inception module sees
        for i, entry in enumerate(INCEPTION):
            if entry == "maxpool":
                name, module = f"maxpool{3 + sum(e == 'maxpool' for e in INCEPTION[:i])}", maxpool()
                side = -(-(side - 3) // 2) + 1  # ceil mode
            else:
                name, widths = entry
                module = Inception(channels, *widths, batch_norm=batch_norm)
                channels = module.out_channels
            setattr(self, name, module)
            self.stages.append(name)
            if self.aux_logits and name in AUX_AFTER:
                aux = InceptionAux(channels, num_classes, side, batch_norm)
                setattr(self, f"aux{AUX_AFTER.index(name) + 1}", aux)
        self.avgpool = nn.GlobalAvgPool2d()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x):
        x = self.lrn1(self.maxpool1(self.conv1(x)))
        x = self.maxpool2(self.lrn2(self.conv3(self.conv2(x))))
        aux = []
        for name in self.stages:
            x = getattr(self, name)(x)
            if self.aux_logits and self.training and name in AUX_AFTER:
                aux.append(getattr(self, f"aux{AUX_AFTER.index(name) + 1}")(x))
        logits = self.fc(self.dropout(self.avgpool(x)))
        if aux:
            return GoogLeNetOutputs(logits, *aux)
        return logits


def googlenet(num_classes=1000, aux_logits=False, batch_norm=False):
    """GoogLeNet as in Table 1 for 224x224 images (LRN in the stem, no batch norm)."""
    return GoogLeNet(num_classes, aux_logits, batch_norm)


def googlenet_cifar(num_classes=10, aux_logits=False, batch_norm=True):
    """GoogLeNet for 32x32 images: a 3x3/1 first conv and no pool before 3a (Inception groups at
    16, 8 and 4 pixels); batch norm by default."""
    return GoogLeNet(num_classes, aux_logits, batch_norm, cifar=True)
