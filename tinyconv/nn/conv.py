"""Conv2d: 2-D cross-correlation over (N, C, H, W) with stride, padding, dilation and groups."""

import tinyconv.functional as F
from tinyconv.nn import init
from tinyconv.nn._checks import check_positive_int
from tinyconv.nn.module import Module
from tinyconv.ops.params import pair


class Conv2d(Module):
    """y[n, o] = b[o] + sum over the input channels of o's group of W[o, c] * x[n, c] (cross-correlation).

    weight: (out_channels, in_channels / groups, kh, kw), bias: (out_channels,). Input (N, C_in, H, W),
    output (N, C_out, H_out, W_out) with H_out = floor((H + 2 p - d (kh - 1) - 1) / s) + 1 (same for W).
    ``groups`` splits the channels into independent convolutions (groups == in_channels is a
    depthwise convolution), so both channel counts must be divisible by it.

    Initialised like PyTorch: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups * kh * kw.
    Models that want He initialisation (ResNet, VGG) re-initialise with ``nn.init.kaiming_normal_``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        check_positive_int("Conv2d", in_channels=in_channels, out_channels=out_channels, groups=groups)
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % groups:
                raise ValueError(f"Conv2d: {name} ({channels}) must be divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = pair(stride, "stride", "Conv2d", 1)
        self.padding = pair(padding, "padding", "Conv2d", 0)
        self.dilation = pair(dilation, "dilation", "Conv2d", 1)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        init.add_weight_and_bias(self, shape, bias)

    def reset_parameters(self):
        init.fan_in_uniform_(self.weight, self.bias)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
