"""conv -> BatchNorm2d (-> ReLU) as one convolution at inference."""
import tinyconv.functional as F
from tinyconv import autograd
from tinyconv.backend import array_module
from tinyconv.tensor import Tensor


def conv_bn(conv, bn, x, relu=False, residual=None):
    """``bn(conv(x), relu=relu)`` for an ``nn.Conv2d`` and the ``nn.BatchNorm2d`` after it; with a
    ``residual`` (a ResNet block's shortcut), ``bn(conv(x)) + residual``, then the ReLU.

    At inference (``bn`` in eval mode with running statistics, no graph being recorded) BN is the
    per-channel affine ``scale * z + shift``, with scale = gamma / sqrt(running_var + eps) and
    shift = beta - running_mean * scale, and it folds into the conv: weights scale * W, bias
    scale * b + shift. The conv adds that bias and the residual (and clamps) in each batch chunk
    while the chunk is in the cache, so the passes of BN and of the residual join over the
    activations are gone. In training, or whenever a graph is recorded, this is the layers as they
    are; so it is when either layer's ``forward`` is wrapped on the instance (as
    ``tinyconv.summary`` does to record every layer).
    """
    wrapped = "forward" in conv.__dict__ or "forward" in bn.__dict__
    if bn.training or not bn.track_running_stats or autograd.is_grad_enabled() or wrapped:
        if residual is None:
            return bn(conv(x), relu=relu)
        y = bn(conv(x))
        return F.add_relu(y, residual) if relu else y + residual
    if bn.num_features != conv.out_channels:
        raise ValueError(f"conv_bn: the conv makes {conv.out_channels} channels, the batch norm "
                         f"normalises {bn.num_features}")
    w = conv.weight.data
    xp = array_module(w)
    scale = 1 / xp.sqrt(bn.running_var.data.astype(xp.float64) + bn.eps)
    shift = -bn.running_mean.data * scale
    if bn.weight is not None:
        scale = scale * bn.weight.data
        shift = shift * bn.weight.data + bn.bias.data
    if conv.bias is not None:
        shift = shift + scale * conv.bias.data
    weight = Tensor((w * scale.reshape(-1, 1, 1, 1)).astype(w.dtype))
    return F.conv2d(x, weight, Tensor(shift.astype(w.dtype)), conv.stride, conv.padding, conv.dilation,
                    conv.groups, relu=relu, residual=residual)
