"""tinyconv: a from-scratch deep-learning engine for classic CNNs.

Autograd over NumPy arrays, convolution/pooling kernels written in Numba, GEMMs on BLAS.
"""
from tinyconv.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from tinyconv.tensor import Tensor, as_tensor, tensor
from tinyconv import nn, optim  # after Tensor: both build on it
from tinyconv.serialization import load, save
from tinyconv.summary import summary

__version__ = "0.1.0"
