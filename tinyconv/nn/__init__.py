"""Neural-network building blocks with PyTorch's user API: Module, Parameter, layers, init.

``tinyconv.nn.functional`` is the same module as ``tinyconv.functional``.
"""
import sys

from tinyconv import functional
from tinyconv.nn import init
from tinyconv.nn.activation import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from tinyconv.nn.containers import ModuleList, Sequential
from tinyconv.nn.conv import Conv2d
from tinyconv.nn.dropout import Dropout
from tinyconv.nn.fusion import conv_bn
from tinyconv.nn.linear import Linear
from tinyconv.nn.loss import CrossEntropyLoss, MSELoss
from tinyconv.nn.module import LoadResult, Module, StateDictError
from tinyconv.nn.normalization import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from tinyconv.nn.parameter import Parameter
from tinyconv.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d
from tinyconv.nn.shape import Flatten, Identity

# Lets `import tinyconv.nn.functional as F` work as it does in PyTorch.
sys.modules[__name__ + ".functional"] = functional

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss",
    "Dropout", "Flatten", "GlobalAvgPool2d", "Identity", "LeakyReLU", "Linear", "LoadResult",
    "LocalResponseNorm", "MSELoss", "MaxPool2d", "Module", "ModuleList", "Parameter", "ReLU",
    "Sequential", "Sigmoid", "Softmax", "StateDictError", "Tanh", "conv_bn", "functional", "init",
]
