"""Pooling layers over (N, C, H, W): max, average, global average and adaptive average (to 1x1)."""
import tinyconv.functional as F
from tinyconv.nn.module import Module


class _Pool2d(Module):
    """Window settings shared by max and average pooling; ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, bool(ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class MaxPool2d(_Pool2d):
    """y = max of x over each kernel_size window (padding counts as -inf)."""

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)


class AvgPool2d(_Pool2d):
    """y = mean of x over each window; with ``count_include_pad`` the zero padding is counted."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self):
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"


class GlobalAvgPool2d(Module):
    """(N, C, H, W) -> (N, C): the mean over each channel's whole feature map."""

    def forward(self, x):
        return F.global_avg_pool2d(x)


class AdaptiveAvgPool2d(Module):
    """PyTorch's adaptive average pooling, for output size 1 only: (N, C, H, W) -> (N, C, 1, 1).

    That is the case classic CNNs use (the global pooling before the classifier); other output
    sizes are rejected at construction.
    """

    def __init__(self, output_size):
        super().__init__()
        if output_size not in (1, (1, 1), [1, 1]):
            raise NotImplementedError(f"AdaptiveAvgPool2d: only output_size=1 (or (1, 1)) is supported, "
                                      f"got {output_size!r}; use GlobalAvgPool2d or AvgPool2d")
        self.output_size = output_size

    def forward(self, x):
        return F.global_avg_pool2d(x).reshape(x.shape[0], x.shape[1], 1, 1)

    def extra_repr(self):
        return f"output_size={self.output_size}"
