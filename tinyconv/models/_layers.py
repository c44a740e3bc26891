"""Pieces shared by the model families: the conv(-BN)-ReLU unit, weight initialisation, skip_init."""
from contextlib import contextmanager

import numpy as np

import tinyconv.functional as F
from tinyconv import nn
from tinyconv.nn import init as _init


class ConvBNReLU(nn.Module):
    """conv -> (BatchNorm) -> ReLU, the unit GoogLeNet and MobileNet are made of.

    With ``batch_norm`` the conv has no bias (BN's beta takes its place, so a bias would be a
    redundant parameter); without it the conv keeps its bias, as in the 2014-15 papers.
    ``padding`` defaults to "same" for odd kernels at stride 1 (kernel_size // 2).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None, groups=1,
                 batch_norm=True):
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              groups=groups, bias=not batch_norm)
        if batch_norm:
            self.bn = nn.BatchNorm2d(out_channels)
        else:
            self.add_module("bn", None)

    def forward(self, x):
        return F.relu(self.conv(x)) if self.bn is None else nn.conv_bn(self.conv, self.bn, x, relu=True)


def init_weights(model, linear_std=0.01):
    """He-normal convs (fan_out, ReLU gain), N(0, linear_std) fully connected layers, zero biases,
    BN gamma = 1 and beta = 0.

    He et al. 2015 ("Delving deep into rectifiers") derived the ReLU-preserving std for the deep
    plain nets VGG had to train in stages; with it every family here trains from scratch in one go.
    The classifiers keep the small Gaussian the 2014 papers used (VGG Sec. 3.1: N(0, 10^-2)).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            _init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                _init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            _init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                _init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.weight is not None:
            _init.ones_(m.weight)
            _init.zeros_(m.bias)
    return model


def _zero_fill(tensor, *args, **kwargs):
    # np.zeros gets pages the OS zero-fills lazily: nothing is written, so even VGG's 400 MB
    # fully connected weight costs nothing until it is used.
    tensor.data = np.zeros(tensor.shape, dtype=tensor.dtype)
    return tensor


@contextmanager
def skip_init():
    """Build models without drawing random initial weights: every parameter starts at zero.

    Drawing VGG-16's 138 M initial values takes several seconds here (float64 draws, page faults,
    a cast, then the model's own re-initialisation); counting parameters or multiply-adds needs
    only the shapes. Inside this block ``tinyconv.nn.init.uniform_`` and ``normal_`` (which every
    random initialiser goes through) fill with zeros instead. They are swapped on the module for
    the duration of the block, so do not build models that need real weights in other threads
    meanwhile.

        with skip_init():
            n = vgg16().num_parameters()
    """
    saved = _init.uniform_, _init.normal_
    _init.uniform_, _init.normal_ = _zero_fill, _zero_fill
    try:
        yield
    finally:
        _init.uniform_, _init.normal_ = saved
