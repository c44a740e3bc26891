"""He et al.'s CIFAR-10 ResNets and plain nets (Sec. 4.2, Table 6)."""
import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv import models
from tinyconv.models.resnet_cifar import BasicBlock


@pytest.mark.parametrize("name,params,paper", [
    ("resnet20", 269_722, 0.27), ("resnet32", 464_154, 0.46), ("resnet44", 658_586, 0.66),
    ("resnet56", 853_018, 0.85), ("resnet110", 1_727_962, 1.7),
])
def test_parameter_counts_match_table_6(name, params, paper):
    """Exact counts, which Table 6 rounds. Option-A shortcuts add no parameters, so the plain twin has the same count."""
    model = getattr(models, name)()
    assert model.num_parameters() == params
    assert round(params / 1e6, 2 if paper < 1 else 1) == paper  # as Table 6 prints it (millions)
    depth = int(name[6:])
    if depth <= 56:
        assert getattr(models, f"plain{depth}")().num_parameters() == params


def test_depth_is_6n_plus_2():
    model = models.resnet20()
    convs = [m for m in model.modules() if isinstance(m, tinyconv.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, tinyconv.nn.Linear)]
    assert len(convs) + len(linears) == 20
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.resnet_cifar(21)


def test_forward_backward_shapes_and_every_parameter_gets_a_gradient():
    model = models.resnet20()
    x = tinyconv.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    F.cross_entropy(logits, np.array([1, 7])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad).all() and np.abs(p.grad).sum() > 0, name


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    block = BasicBlock(16, 32, stride=2)
    x = np.random.default_rng(1).standard_normal((1, 16, 8, 8))
    short = block.shortcut(tinyconv.tensor(x)).data
    assert short.shape == (1, 32, 4, 4)
    np.testing.assert_array_equal(short[:, 8:24], x[:, :, ::2, ::2])
    assert not short[:, :8].any() and not short[:, 24:].any()


def test_plain_block_has_no_shortcut():
    """With the residual branch's weights zeroed, a residual block passes relu(x), a plain one 0."""
    x = tinyconv.tensor(np.abs(np.random.default_rng(2).standard_normal((1, 16, 4, 4))).astype(np.float32))
    for residual, expected in ((True, x.data), (False, np.zeros_like(x.data))):
        block = BasicBlock(16, 16, stride=1, residual=residual)
        block.bn2.weight.data[:] = 0
        block.eval()
        np.testing.assert_allclose(block(x).data, expected, atol=1e-6)
