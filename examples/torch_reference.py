"""The benchmark's workloads written in PyTorch, layer for layer the same networks as tinyconv's
(``bench.py`` checks that the parameter counts agree before timing anything)."""
from tinyconv.models.mobilenet import SEPARABLE, STEM_CHANNELS
from tinyconv.models.vgg import CONFIGS


def conv_bn_relu(nn, cin, cout, kernel, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def resnet20(torch):
    """He et al. 2015's CIFAR ResNet-20: option-A shortcuts (subsample, zero-pad channels)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            out = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
            short = x[:, :, ::self.stride, ::self.stride]
            if self.extra:
                short = nn.functional.pad(short, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
            return torch.relu(out + short)

    layers, cin = conv_bn_relu(nn, 3, 16, 3), 16
    for stage, cout in enumerate((16, 32, 64)):
        for i in range(3):
            layers.append(Block(cin, cout, 2 if stage and not i else 1))
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def mobilenet_v1_cifar(torch):
    """MobileNet v1 (Table 1) with a stride-1 first conv for 32x32 inputs."""
    nn = torch.nn
    layers, cin = conv_bn_relu(nn, 3, STEM_CHANNELS, 3), STEM_CHANNELS
    for cout, stride in SEPARABLE:
        layers += conv_bn_relu(nn, cin, cin, 3, stride, groups=cin) + conv_bn_relu(nn, cin, cout, 1)
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


def vgg16_bn_cifar(torch):
    """VGG configuration D with batch norm and a 512-512-10 classifier for 32x32 inputs."""
    nn = torch.nn
    layers, cin = [], 3
    for layer in CONFIGS["D"]:  # "conv3-64" ..., "maxpool"
        if layer == "maxpool":
            layers.append(nn.MaxPool2d(2))
        else:
            kernel, cout = (int(v) for v in layer[len("conv"):].split("-"))
            layers += conv_bn_relu(nn, cin, cout, kernel)
            cin = cout
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(512, 10))
