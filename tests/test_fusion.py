"""nn.conv_bn: conv -> BatchNorm2d (-> ReLU) folded into one conv at inference."""
from unittest import mock

import numpy as np
import pytest

import tinyconv
from tinyconv import nn


def unit(conv_bias, affine, channels=8, seed=0):
    """A conv and a BN in eval mode with running statistics and affine parameters far from their
    initial values."""
    tinyconv.random.manual_seed(seed)
    conv = nn.Conv2d(channels, 6, 3, padding=1, bias=conv_bias)
    bn = nn.BatchNorm2d(6, affine=affine)
    rng = np.random.default_rng(seed)
    bn.running_mean.data[...] = rng.standard_normal(6)
    bn.running_var.data[...] = rng.uniform(0.2, 3.0, 6)
    if affine:
        bn.weight.data[...] = rng.uniform(-2.0, 2.0, 6)
        bn.bias.data[...] = rng.standard_normal(6)
    conv.eval(), bn.eval()
    return conv, bn


def counting_bn_forwards():
    """Counts BatchNorm2d forwards, patched on the class: an instance-level wrapper would itself
    stop the folding."""
    return mock.patch.object(nn.BatchNorm2d, "forward", autospec=True, side_effect=nn.BatchNorm2d.forward)


@pytest.mark.parametrize("conv_bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("with_residual", [True, False])
def test_folded_at_inference_equals_the_two_layers(conv_bias, affine, relu, with_residual):
    conv, bn = unit(conv_bias, affine)
    rng = np.random.default_rng(1)
    x = tinyconv.tensor(rng.standard_normal((3, 8, 9, 10)).astype(np.float32))
    residual = tinyconv.tensor(rng.standard_normal((3, 6, 9, 10)).astype(np.float32)) if with_residual else None
    expected = bn(conv(x)).data + (residual.data if with_residual else 0)
    expected = np.maximum(expected, 0) if relu else expected
    with tinyconv.no_grad(), counting_bn_forwards() as bn_forward:
        got = nn.conv_bn(conv, bn, x, relu=relu, residual=residual)
    assert bn_forward.call_count == 0  # folded: the BN layer never ran
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.data, expected, rtol=1e-5, atol=1e-5)
    if relu:
        assert (got.data == 0).any() and (got.data > 0).any()


@pytest.mark.parametrize("training, grad", [(True, False), (True, True), (False, True)])
def test_two_layers_when_training_or_recording(training, grad):
    """Training needs the batch statistics, and a recorded graph the BN parameters' gradients."""
    conv, bn = unit(True, True)
    conv.train(training), bn.train(training)
    x = tinyconv.tensor(np.random.default_rng(2).standard_normal((4, 8, 5, 5)).astype(np.float32))
    residual = tinyconv.tensor(np.ones((4, 6, 5, 5), np.float32), requires_grad=True)
    with tinyconv.set_grad_enabled(grad), counting_bn_forwards() as bn_forward:
        y = nn.conv_bn(conv, bn, x, relu=True, residual=residual)
    assert bn_forward.call_count == 1
    if grad:
        y.sum().backward()
        assert bn.weight.grad is not None and conv.weight.grad is not None
        np.testing.assert_array_equal(residual.grad, (y.data > 0).astype(np.float32))


def test_layers_with_wrapped_forwards_run_as_themselves():
    """tinyconv.summary wraps every leaf's forward to record it: such layers are not folded away."""
    conv, bn = unit(False, True)
    x = tinyconv.tensor(np.ones((1, 8, 5, 5), np.float32))
    with tinyconv.no_grad(), mock.patch.object(conv, "forward", wraps=conv.forward, create=True) as conv_forward:
        nn.conv_bn(conv, bn, x)
    assert conv_forward.call_count == 1


def test_channel_mismatch_is_an_error():
    conv = nn.Conv2d(3, 4, 3)
    bn = nn.BatchNorm2d(5).eval()
    with tinyconv.no_grad(), pytest.raises(ValueError, match="conv_bn: the conv makes 4 channels, the batch norm normalises 5"):
        nn.conv_bn(conv, bn, tinyconv.tensor(np.zeros((1, 3, 5, 5), np.float32)))
