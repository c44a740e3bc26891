"""Weight initialisation, in place on a Tensor's ``data``, drawing from ``tinyconv.random.generator()``.

Fans follow PyTorch: for a weight of shape (out, in, *kernel), receptive = prod(kernel),
fan_in = in * receptive, fan_out = out * receptive (a Linear weight (out, in) has receptive 1).

    xavier_uniform_:  U(-b, b),  b = gain * sqrt(6 / (fan_in + fan_out))      (Glorot & Bengio 2010)
    xavier_normal_:   N(0, std), std = gain * sqrt(2 / (fan_in + fan_out))
    kaiming_uniform_: U(-b, b),  b = gain * sqrt(3 / fan)                     (He et al. 2015)
    kaiming_normal_:  N(0, std), std = gain / sqrt(fan),  fan = fan_in or fan_out by ``mode``

Values are drawn in float64 and rounded to the tensor's dtype, so one seed gives the same
initialisation in float32 and float64. Every function returns the tensor it filled.
"""
import math

import numpy as np

from tinyconv import random
from tinyconv.backend import array_module

_LINEAR_GAIN = ("linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The factor that keeps activations' variance steady through ``nonlinearity``.

    linear/conv/sigmoid: 1, tanh: 5/3, relu: sqrt(2), leaky_relu with slope a (``param``,
    default 0.01): sqrt(2 / (1 + a^2)), selu: 3/4.
    """
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative slope must be a number, got {slope!r}")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 0.75
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel); needs at least 2 dimensions."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"cannot initialise a tensor with zero {mode} (shape {tensor.shape})")
    return fan


def _fill(tensor, values):
    """Write ``values`` (a numpy array or a scalar) into ``tensor.data`` in place."""
    tensor.data[...] = array_module(tensor.data).asarray(values, dtype=tensor.dtype)
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    return _fill(tensor, random.generator().uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with N(mean, std^2)."""
    if not std >= 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _fill(tensor, random.generator().normal(mean, std, size=tensor.shape))


def constant_(tensor, val):
    return _fill(tensor, val)


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def xavier_uniform_(tensor, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_gain(a, nonlinearity):
    # PyTorch silently ignores ``a`` unless nonlinearity is leaky_relu; a slope passed with another
    # nonlinearity is almost surely a mistake, so say so.
    if a != 0 and nonlinearity != "leaky_relu":
        raise ValueError(f"kaiming init: a={a} is the leaky_relu slope, but nonlinearity is {nonlinearity!r}")
    return calculate_gain(nonlinearity, a)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He-uniform init. The defaults (leaky_relu with slope a = 0) give ReLU's gain sqrt(2)."""
    bound = _kaiming_gain(a, nonlinearity) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He-normal init, std = gain / sqrt(fan); ResNets use mode='fan_out', nonlinearity='relu'."""
    std = _kaiming_gain(a, nonlinearity) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def add_weight_and_bias(module, weight_shape, bias):
    """Register ``module.weight`` (float32, ``weight_shape``) and ``module.bias`` (``weight_shape[0]``,
    or None when ``bias`` is false), initialised with :func:`fan_in_uniform_` as PyTorch's Linear and
    Conv layers are."""
    from tinyconv.nn.parameter import Parameter

    module.weight = Parameter(np.empty(weight_shape, dtype=np.float32))
    if bias:
        module.bias = Parameter(np.empty(weight_shape[0], dtype=np.float32))
    else:
        module.register_parameter("bias", None)
    fan_in_uniform_(module.weight, module.bias)


def fan_in_uniform_(weight, bias=None):
    """PyTorch's default for Linear and Conv layers: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (PyTorch writes the weight part as kaiming_uniform_(a=sqrt(5)), which is the same bound.)
    """
    bound = 1.0 / math.sqrt(_fan(weight, "fan_in"))
    uniform_(weight, -bound, bound)
    if bias is not None:
        uniform_(bias, -bound, bound)
    return weight
