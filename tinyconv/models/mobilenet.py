"""MobileNet v1: Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications", Table 1.

A full 3x3/2 conv with 32 filters, then 13 depthwise separable convs (Fig. 3 right): a 3x3
depthwise conv (one filter per channel, ``groups=channels``) + BN + ReLU, then a 1x1 pointwise
conv + BN + ReLU that mixes the channels. Then global average pooling and a fully connected layer.
Convs have no bias (BN follows each one).

Two hyper-parameters (Sec. 3.3, 3.4):
- width multiplier alpha (``width_mult``): every layer's channel count is scaled by alpha.
- resolution multiplier rho: the input size, 224 * rho (224, 192, 160, 128); the average pool is
  global, so any input of at least 32x32 works.

At 224x224 and 1000 classes (Table 6), alpha = 1, 0.75, 0.5, 0.25 gives 4.2, 2.6, 1.3, 0.5 M
parameters and 569, 325, 149, 41 M multiply-adds (convs and the fully connected layer).

The CIFAR form (``cifar=True``) makes the first conv stride 1, so 32x32 images keep the table's
four stride-2 depthwise layers and reach the pool at 2x2 (the ImageNet net reaches it at 7x7).
"""
from tinyconv import nn
from tinyconv.models._layers import ConvBNReLU, init_weights

# Table 1 below the first conv: (output channels of the pointwise conv, stride of the depthwise
# conv). The table's second-to-last row reads "Conv dw / s2" on a 7x7 input whose output is still
# 7x7: a typo for s1 (the released models use stride 1 there).
SEPARABLE = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
STEM_CHANNELS = 32


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv-BN-ReLU, then 1x1 pointwise conv-BN-ReLU (Fig. 3 right)."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.depthwise = ConvBNReLU(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels)
        self.pointwise = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def _scaled(channels, width_mult):
    # Sec. 4.2 scales each count by alpha; every count in Table 1 is a multiple of 32, so the
    # paper's alphas (0.25 .. 1) give whole numbers and rounding only matters for other alphas.
    return max(1, int(round(channels * width_mult)))


class MobileNetV1(nn.Module):
    """Table 1 with width multiplier ``width_mult``; ``cifar=True`` makes the first conv stride 1."""

    def __init__(self, num_classes=1000, width_mult=1.0, cifar=False):
        super().__init__()
        if not width_mult > 0:
            raise ValueError(f"MobileNetV1: width_mult must be > 0, got {width_mult}")
        self.width_mult = width_mult
        channels = _scaled(STEM_CHANNELS, width_mult)
        layers = [ConvBNReLU(3, channels, 3, stride=1 if cifar else 2, padding=1)]
        for out_channels, stride in SEPARABLE:
            out_channels = _scaled(out_channels, width_mult)
            layers.append(DepthwiseSeparable(channels, out_channels, stride))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x):
        return self.fc(self.avgpool(self.features(x)))

    def extra_repr(self):
        return f"width_mult={self.width_mult}"


def mobilenet_v1(num_classes=1000, width_mult=1.0):
    """MobileNet v1 (Table 1) for 224x224 (or 224 rho) inputs, width multiplier alpha = ``width_mult``."""
    return MobileNetV1(num_classes, width_mult)


def mobilenet_v1_cifar(num_classes=10, width_mult=1.0):
    """MobileNet v1 for 32x32 images: the first conv at stride 1."""
    return MobileNetV1(num_classes, width_mult, cifar=True)
