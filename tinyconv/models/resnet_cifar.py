"""The CIFAR-10 networks of He et al. 2015, "Deep Residual Learning", Sec. 4.2.

A 3x3 conv with 16 filters, then three stages of n blocks on 32x32, 16x16 and 8x8 maps with
16, 32 and 64 filters (the first block of stages 2 and 3 has stride 2), global average pooling
and a 10-way fully connected layer: 6n + 2 weighted layers. Each block is two 3x3 conv-BN layers;
the residual nets add an identity shortcut ("option A": when the shape changes, the input is
subsampled by 2 and zero channels are appended, so shortcuts add no parameters).

Parameter counts (Table 6): resnet20 0.27 M, resnet32 0.46 M, resnet44 0.66 M, resnet56 0.85 M,
resnet110 1.7 M; the plain nets have exactly the same counts.
"""
import tinyconv.functional as F
from tinyconv import nn


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the option-A shortcut when ``residual``, then ReLU."""

    def __init__(self, in_planes, planes, stride, residual=True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.residual = residual
        self.stride, self.extra_channels = stride, planes - in_planes

    def shortcut(self, x):
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra_channels:
            half = self.extra_channels // 2
            x = F.pad(x, ((0, 0), (half, self.extra_channels - half), (0, 0), (0, 0)))
        return x

    def forward(self, x):
        out = nn.conv_bn(self.conv1, self.bn1, x, relu=True)
        if self.residual:
            return nn.conv_bn(self.conv2, self.bn2, out, relu=True, residual=self.shortcut(x))
        return nn.conv_bn(self.conv2, self.bn2, out, relu=True)

    def extra_repr(self):
        return "residual (option A)" if self.residual else "plain"


class CifarResNet(nn.Module):
    """6n + 2 layers; ``residual=False`` gives the paper's plain counterpart."""

    def __init__(self, n, num_classes=10, residual=True):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, in_planes = [], 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride, residual))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = nn.conv_bn(self.conv1, self.bn1, x, relu=True)
        x = self.blocks(x)
        return self.fc(F.global_avg_pool2d(x))


def _depth_to_n(depth):
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
    return (depth - 2) // 6


def resnet_cifar(depth, num_classes=10):
    return CifarResNet(_depth_to_n(depth), num_classes, residual=True)


def plain_cifar(depth, num_classes=10):
    return CifarResNet(_depth_to_n(depth), num_classes, residual=False)


def resnet20(num_classes=10):
    return resnet_cifar(20, num_classes)


def resnet32(num_classes=10):
    return resnet_cifar(32, num_classes)


def resnet44(num_classes=10):
    return resnet_cifar(44, num_classes)


def resnet56(num_classes=10):
    return resnet_cifar(56, num_classes)


def resnet110(num_classes=10):
    return resnet_cifar(110, num_classes)


def plain20(num_classes=10):
    return plain_cifar(20, num_classes)


def plain32(num_classes=10):
    return plain_cifar(32, num_classes)


def plain44(num_classes=10):
    return plain_cifar(44, num_classes)


def plain56(num_classes=10):
    return plain_cifar(56, num_classes)
