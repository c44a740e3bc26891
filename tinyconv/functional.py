"""Differentiable functions, named and laid out like torch.nn.functional where one exists.

Each lives with its forward and backward in ``tinyconv/ops/<concept>.py``; this module only
gathers them under one name (``import tinyconv.functional as F``).
"""
from tinyconv.ops.activation import leaky_relu, relu, sigmoid, tanh
from tinyconv.ops.conv import conv2d
from tinyconv.ops.dropout import dropout
from tinyconv.ops.elementwise import abs, add, div, exp, log, maximum, minimum, mul, neg, pow, sqrt, sub
from tinyconv.ops.linear import linear, matmul
from tinyconv.ops.loss import cross_entropy, mse_loss
from tinyconv.ops.lrn import local_response_norm
from tinyconv.ops.normalization import batch_norm
from tinyconv.ops.pool import avg_pool2d, global_avg_pool2d, max_pool2d
from tinyconv.ops.reduction import max, mean, min, sum, var
from tinyconv.ops.residual import add_relu
from tinyconv.ops.shape import cast, cat, concat, flatten, getitem, pad, reshape, split, stack, transpose
from tinyconv.ops.softmax import log_softmax, softmax
from tinyconv.ops.upsample import upsample_nearest
