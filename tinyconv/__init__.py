"""tinyconv: a from-scratch deep-learning engine for classic CNNs.

Autograd over NumPy arrays (CuPy arrays on a GPU), convolution/pooling kernels written in Numba
(and CUDA C), GEMMs on BLAS (cuBLAS).
"""
from tinyconv.backend import Device, cuda_is_available, device
from tinyconv.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from tinyconv.tensor import Tensor, as_tensor, tensor
from tinyconv import nn, optim  # after Tensor: both build on it
from tinyconv.profiler import profile
from tinyconv.serialization import load, save
from tinyconv.summary import summary

__version__ = "0.1.0"
