"""ResNets for ImageNet: He et al. 2015, "Deep Residual Learning for Image Recognition", Table 1.

A 7x7/2 conv with 64 filters, BN, ReLU, a 3x3/2 max pool, then four stages (conv2_x..conv5_x) on
56, 28, 14 and 7 pixel maps, global average pooling and a num_classes-way fully connected layer.
Each stage is a run of blocks; the first block of stages 3-5 halves the size with stride 2.

- basic block (ResNet-18/34): 3x3 conv, 3x3 conv, each with BN; widths 64, 128, 256, 512.
- bottleneck (ResNet-50/101/152): 1x1 reduce, 3x3, 1x1 expand to 4x the width (Fig. 5 right).

Blocks per stage (Table 1): 18: 2-2-2-2, 34: 3-4-6-3, 50: 3-4-6-3, 101: 3-4-23-3, 152: 3-8-36-3.
Shortcuts are identities, and projections (1x1 conv + BN) where the shape changes: option B of
Sec. 3.3, the one the paper's ImageNet table uses.

Parameter counts at 1000 classes (the published torchvision values, which these match exactly):
11,689,512; 21,797,672; 25,557,032; 44,549,160; 60,192,808. Multiply-adds at 224x224, counted by
``tinyconv.summary``: 1.81, 3.66, 3.86, 7.57, 11.28 G; Table 1's "FLOPs" (which count multiply-adds)
print 1.8, 3.6, 3.8, 7.6, 11.3 x 10^9, rounding some down.

Downsampling in a bottleneck: the paper's released models stride the first 1x1 conv; the variant
popularised later (torchvision's "ResNet v1.5") strides the 3x3 conv instead, which costs more
multiply-adds (4.09 G for ResNet-50) and is reported to be slightly more accurate.
``stride_in_3x3`` picks it; parameter counts are the same either way.
"""
from tinyconv import nn
from tinyconv.models.resnet_cifar import BasicBlock as _CifarBasicBlock
from tinyconv.models._layers import init_weights


def _projection(in_planes, out_planes, stride):
    """Option B shortcut: 1x1 conv (strided) + BN, only where the shape changes."""
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_planes))


class _OptionB:
    """Shortcut of both block types: the identity, or the ``downsample`` projection where the shape
    changes (mixed in ahead of the block class so it overrides the CIFAR block's option A)."""

    def shortcut(self, x):
        return x if self.downsample is None else self.downsample(x)

    def extra_repr(self):
        return "residual (option B)"


class BasicBlock(_OptionB, _CifarBasicBlock):
    """Two 3x3 conv-BN layers (the CIFAR block's, reused) with an option-B shortcut (Fig. 5 left)."""

    expansion = 1

    def __init__(self, in_planes, planes, stride, stride_in_3x3=True):
        # stride_in_3x3 is accepted for a signature shared with Bottleneck: both convs here are 3x3.
        super().__init__(in_planes, planes, stride, residual=True)
        self.downsample = _projection(in_planes, planes, stride)


class Bottleneck(_OptionB, nn.Module):
    """1x1 (planes) -> 3x3 (planes) -> 1x1 (4 planes), BN after each, ReLU after the sum (Fig. 5 right)."""

    expansion = 4

    def __init__(self, in_planes, planes, stride, stride_in_3x3=False):
        super().__init__()
        out_planes = planes * self.expansion
        s1, s3 = (1, stride) if stride_in_3x3 else (stride, 1)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=s3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.downsample = _projection(in_planes, out_planes, stride)

    def forward(self, x):
        out = nn.conv_bn(self.conv1, self.bn1, x, relu=True)
        out = nn.conv_bn(self.conv2, self.bn2, out, relu=True)
        return nn.conv_bn(self.conv3, self.bn3, out, relu=True, residual=self.shortcut(x))


class ResNet(nn.Module):
    """The ImageNet ResNet of Table 1; names match torchvision's (conv1, bn1, layer1..4, fc)."""

    def __init__(self, block, blocks_per_stage, num_classes=1000, stride_in_3x3=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_planes = 64
        for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks_per_stage)):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(block(in_planes, planes, stride, stride_in_3x3=stride_in_3x3))
                in_planes = planes * block.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)
        # The fc keeps PyTorch's default U(+-1/sqrt(fan_in)) rather than init_weights' N(0, 0.01):
        # the ResNet paper gives no special classifier initialisation.
        self.fc.reset_parameters()

    def forward(self, x):
        x = self.maxpool(nn.conv_bn(self.conv1, self.bn1, x, relu=True))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x))


BLOCKS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
          101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))}
"""Table 1: depth -> (block type, blocks in conv2_x..conv5_x)."""


def resnet(depth, num_classes=1000, stride_in_3x3=False):
    """The ImageNet ResNet of ``depth`` layers (18, 34, 50, 101 or 152), Table 1."""
    if depth not in BLOCKS:
        raise ValueError(f"ImageNet ResNet depth must be one of {sorted(BLOCKS)}, got {depth}")
    block, blocks_per_stage = BLOCKS[depth]
    return ResNet(block, blocks_per_stage, num_classes, stride_in_3x3)


def resnet18(num_classes=1000):
    return resnet(18, num_classes)


def resnet34(num_classes=1000):
    return resnet(34, num_classes)


def resnet50(num_classes=1000, stride_in_3x3=False):
    return resnet(50, num_classes, stride_in_3x3)


def resnet101(num_classes=1000, stride_in_3x3=False):
    return resnet(101, num_classes, stride_in_3x3)


def resnet152(num_classes=1000, stride_in_3x3=False):
    return resnet(152, num_classes, stride_in_3x3)
