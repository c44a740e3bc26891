"""tinyconv.nn: Module machinery, containers, layers, init, and parity with torch.nn."""
import copy
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyconv
import tinyconv.functional as F
from tinyconv import nn
from tinyconv.nn import init
from tinyconv.testing import check_grad


class Block(nn.Module):
    """A module with a parameter, a buffer, a sub-module and a plain attribute."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(3, dtype=np.float32))
        self.register_buffer("count", tinyconv.Tensor(np.zeros((), dtype=np.int64)))
        self.fc = nn.Linear(3, 2)
        self.note = "not registered"

    def forward(self, x):
        return self.fc(x * self.scale)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(2, 1, bias=False)

    def forward(self, x):
        return self.head(self.block(x))


def conv_bn_linear(nn_module):
    """The same small network in tinyconv.nn or torch.nn (they share the layer names)."""
    return nn_module.Sequential(OrderedDict([
        ("conv", nn_module.Conv2d(3, 4, 3, padding=1, bias=False)),
        ("bn", nn_module.BatchNorm2d(4)),
        ("relu", nn_module.ReLU()),
        ("pool", nn_module.MaxPool2d(2)),
        ("flatten", nn_module.Flatten()),
        ("fc", nn_module.Linear(4 * 3 * 3, 5)),
    ]))


# ---- Module machinery ----

def test_parameter_is_a_leaf_tensor_that_requires_grad():
    p = nn.Parameter(np.zeros(2, dtype=np.float32))
    assert isinstance(p, tinyconv.Tensor) and p.requires_grad and p.is_leaf
    assert not nn.Parameter(np.zeros(2), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:")


def test_registration_and_dotted_names():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["block.scale", "block.fc.weight", "block.fc.bias", "head.weight"]
    assert [n for n, _ in net.named_buffers()] == ["block.count"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "head"]
    assert [type(m).__name__ for m in net.children()] == ["Block", "Linear"]
    assert list(net.block.parameters(recurse=False)) == [net.block.scale]
    assert "note" not in net.block._parameters and net.block.note == "not registered"
    assert net.head.bias is None and "head.bias" not in net.state_dict()
    assert net.num_parameters() == 3 + 6 + 2 + 2


def test_shared_parameter_listed_once_but_saved_under_each_name():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.weight = a.weight
    model = nn.Sequential(a, b)
    assert len(list(model.parameters())) == 3
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_shared_submodule_saved_under_each_name_like_torch():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.modules())) == 3 and len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    model.load_state_dict(model.state_dict())


def test_deepcopy_gives_an_independent_module():
    net = Net()
    clone = copy.deepcopy(net)
    clone.block.fc.weight.data[...] = 0
    assert np.any(net.block.fc.weight.data != 0)
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in net.named_parameters()]


def test_reassignment_moves_between_tables_and_checks_types():
    m = Block()
    with pytest.raises(TypeError, match="parameter 'scale'"):
        m.scale = tinyconv.Tensor(np.ones(3))
    with pytest.raises(TypeError, match="buffer 'count'"):
        m.count = np.zeros(())
    with pytest.raises(TypeError, match="sub-module 'fc'"):
        m.fc = "linear"
    m.scale = None
    assert "scale" in m._parameters and m.scale is None
    m.fc = nn.Parameter(np.ones(1))  # a name can change kind
    assert "fc" not in m._modules and m.fc is m._parameters["fc"]
    del m.fc
    with pytest.raises(AttributeError, match="fc"):
        m.fc


def test_registration_needs_super_init_and_good_names():
    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(1))

    with pytest.raises(AttributeError, match=r"super\(\)\.__init__\(\)"):
        Forgot()
    m = nn.Module()
    for bad in ("", "a.b"):
        with pytest.raises(KeyError):
            m.register_buffer(bad, tinyconv.Tensor(np.ones(1)))
    with pytest.raises(KeyError, match="already exists"):
        m.register_parameter("training", None)
    with pytest.raises(TypeError):
        m.register_parameter("w", tinyconv.Tensor(np.ones(1)))
    with pytest.raises(NotImplementedError, match="forward"):
        m(1)


def test_train_eval_zero_grad_apply():
    net = Net()
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    out = net(tinyconv.Tensor(np.ones((4, 3), dtype=np.float32)))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    visited = []
    assert net.apply(lambda m: visited.append(type(m).__name__)) is net
    assert visited == ["Linear", "Block", "Linear", "Net"]  # children before parents


def test_repr_is_nested_like_torch():
    net = Net()
    assert repr(net) == (
        "Net(\n"
        "  (block): Block(\n"
        "    (fc): Linear(in_features=3, out_features=2, bias=True)\n"
        "  )\n"
        "  (head): Linear(in_features=2, out_features=1, bias=False)\n"
        ")")


# ---- state_dict / load_state_dict ----

def test_state_dict_is_a_copy_in_torch_order():
    net = Net()
    state = net.state_dict()
    assert list(state) == ["block.scale", "block.count", "block.fc.weight", "block.fc.bias", "head.weight"]
    state["block.scale"][:] = 7
    assert np.all(net.block.scale.data == 1)
    assert state["block.count"].shape == () and state["block.count"].dtype == np.int64


def test_load_state_dict_round_trip_in_place_with_dtype_cast():
    src, dst = Net(), Net()
    weight_array = dst.block.fc.weight.data
    state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in src.state_dict().items()}
    state["block.count"] = np.array(5)
    result = dst.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert dst.block.fc.weight.data is weight_array  # written in place: optimizers keep their reference
    assert dst.block.fc.weight.dtype == np.float32 and int(dst.block.count.data) == 5
    for key, value in src.state_dict().items():
        if key != "block.count":
            np.testing.assert_array_equal(dst.state_dict()[key], value)


def test_load_state_dict_errors_name_every_problem_and_change_nothing():
    net = Net()
    before = net.state_dict()
    state = net.state_dict()
    del state["head.weight"]
    state["head.bias"] = np.zeros(1)
    state["block.fc.weight"] = np.zeros((3, 3))
    state["block.scale"] = np.array(["a", "b", "c"])
    with pytest.raises(nn.StateDictError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "missing keys: 'head.weight'" in message
    assert "unexpected keys: 'head.bias'" in message
    assert "'block.fc.weight': shape mismatch: expected (2, 3), got (3, 3)" in message
    assert "'block.scale'" in message and "numeric" in message
    assert info.value.missing_keys == ["head.weight"] and info.value.unexpected_keys == ["head.bias"]
    for key, value in before.items():
        np.testing.assert_array_equal(net.state_dict()[key], value)


def test_load_state_dict_non_strict_reports_but_still_rejects_shapes():
    net = Net()
    state = net.state_dict()
    del state["head.weight"]
    state["extra"] = np.zeros(1)
    assert net.load_state_dict(state, strict=False) == (["head.weight"], ["extra"])
    state["block.fc.bias"] = np.zeros(5)
    with pytest.raises(nn.StateDictError, match="block.fc.bias"):
        net.load_state_dict(state, strict=False)


# ---- containers ----

def test_sequential_indexing_iteration_and_names():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers and seq[-1] is layers[2]
    assert isinstance(seq[1:], nn.Sequential) and list(seq[1:]) == layers[1:]
    assert list(seq[1:].state_dict()) == ["2.weight", "2.bias"]  # a slice keeps the names
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named[1] is named.act
    x = tinyconv.Tensor(np.ones((2, 2), dtype=np.float32))
    np.testing.assert_allclose(seq(x).data, layers[2](layers[1](layers[0](x))).data)
    assert seq.append(nn.Sigmoid()) is seq and len(seq) == 4
    with pytest.raises(TypeError):
        nn.Sequential(lambda x: x)


def test_module_list():
    blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(blocks) == 3 and [n for n, _ in blocks.named_children()] == ["0", "1", "2"]
    replacement = nn.Linear(2, 2)
    blocks[-1] = replacement
    assert blocks[2] is replacement and list(blocks.state_dict())[-1] == "2.bias"
    blocks.extend([nn.ReLU()]).append(nn.Tanh())
    assert len(blocks) == 5 and isinstance(blocks[:2], nn.ModuleList)
    with pytest.raises(NotImplementedError):
        blocks(1)


# ---- layers ----

def test_linear_matches_numpy_and_flattens_leading_axes(rng):
    layer = nn.Linear(4, 3)
    bound = 1 / np.sqrt(4)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    y = layer(tinyconv.Tensor(x))
    assert y.shape == (2, 5, 3)
    np.testing.assert_allclose(y.data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(\*, 4\)"):
        layer(tinyconv.Tensor(np.ones((2, 5, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)


def test_module_gradient_in_float64(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Sigmoid()).double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    check_grad(lambda x: model(x), rng.standard_normal((2, 3)))
    layer = model[0]
    check_grad(lambda w, b: F.tanh(F.linear(tinyconv.Tensor(np.ones((2, 3))), w, b)), layer.weight, layer.bias)


def test_conv2d_shapes_and_validation():
    conv = nn.Conv2d(4, 6, (3, 1), stride=2, padding=(1, 0), groups=2, bias=False)
    assert conv.weight.shape == (6, 2, 3, 1) and conv.bias is None
    assert repr(conv) == "Conv2d(4, 6, kernel_size=(3, 1), stride=(2, 2), padding=(1, 0), groups=2, bias=False)"
    assert np.abs(conv.weight.data).max() <= 1 / np.sqrt(2 * 3 * 1)
    with pytest.raises(ValueError, match=r"in_channels \(3\) must be divisible by groups \(2\)"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"out_channels \(5\) must be divisible by groups \(2\)"):
        nn.Conv2d(4, 5, 3, groups=2)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(4, 4, 0)


def test_batchnorm_buffers_modes_and_validation(rng):
    bn = nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    x = tinyconv.Tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32) * 2 + 1)
    y = bn(x)
    np.testing.assert_allclose(y.data.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert int(bn.num_batches_tracked.data) == 1 and np.all(bn.running_mean.data != 0)
    bn.eval()
    frozen = bn.state_dict()
    bn(x)
    for key, value in frozen.items():
        np.testing.assert_array_equal(bn.state_dict()[key], value)
    untracked = nn.BatchNorm1d(3, affine=False, track_running_stats=False).eval()
    assert list(untracked.state_dict()) == [] and untracked.running_mean is None
    z = untracked(tinyconv.Tensor(rng.standard_normal((5, 3))))
    np.testing.assert_allclose(z.data.mean(axis=0), 0, atol=1e-12)  # batch statistics even in eval
    with pytest.raises(ValueError, match="4-D"):
        bn(tinyconv.Tensor(np.ones((2, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="expected 3 channels"):
        bn(tinyconv.Tensor(np.ones((2, 4, 1, 1), dtype=np.float32)))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm2d(3, momentum=1.5)
    bn.reset_running_stats()
    assert int(bn.num_batches_tracked.data) == 0 and np.all(bn.running_var.data == 1)


def test_small_layers(rng):
    x = tinyconv.Tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    assert nn.Identity()(x) is x
    assert nn.Flatten()(x).shape == (2, 48) and nn.Flatten(2)(x).shape == (2, 3, 16)
    assert nn.GlobalAvgPool2d()(x).shape == (2, 3)
    pooled = nn.AdaptiveAvgPool2d((1, 1))(x)
    assert pooled.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(pooled.data[:, :, 0, 0], x.data.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError, match="output_size=1"):
        nn.AdaptiveAvgPool2d(2)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 2, 2) and nn.AvgPool2d(3, 1, 1)(x).shape == (2, 3, 4, 4)
    drop = nn.Dropout(0.5)
    assert drop.eval()(x) is x
    tinyconv.random.manual_seed(0)
    dropped = drop.train()(x).data
    assert np.all((dropped == 0) | np.isclose(dropped, 2 * x.data))
    with pytest.raises(ValueError, match="Dropout"):
        nn.Dropout(1.0)
    probs = nn.Softmax(dim=1)(x)
    np.testing.assert_allclose(probs.data.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(nn.LeakyReLU(0.2)(x).data, np.where(x.data > 0, x.data, 0.2 * x.data), rtol=1e-6)
    assert nn.LocalResponseNorm(3)(x).shape == x.shape
    logits = tinyconv.Tensor(rng.standard_normal((4, 3)))
    target = np.array([0, 2, 1, 2])
    assert nn.CrossEntropyLoss()(logits, target).item() == F.cross_entropy(logits, target).item()
    assert nn.MSELoss(reduction="sum")(logits, np.zeros((4, 3))).item() == pytest.approx((logits.data ** 2).sum())


# ---- init ----

@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_normal_std(mode):
    tinyconv.random.manual_seed(0)
    w = tinyconv.Tensor(np.empty((128, 64, 3, 3), dtype=np.float32))
    init.kaiming_normal_(w, mode=mode, nonlinearity="relu")
    fan = 64 * 9 if mode == "fan_in" else 128 * 9
    # 73,728 draws: the sample std's relative standard error is 1/sqrt(2n) ~ 0.26%, so 1.5% is ~6 sigma.
    assert w.data.std() == pytest.approx(np.sqrt(2 / fan), rel=0.015)
    assert abs(w.data.mean()) < 4 * np.sqrt(2 / fan) / np.sqrt(w.size)


def test_uniform_and_xavier_bounds_and_seeding():
    w = tinyconv.Tensor(np.empty((200, 100), dtype=np.float64))
    init.kaiming_uniform_(w, a=0.1, nonlinearity="leaky_relu")
    bound = np.sqrt(2 / (1 + 0.01)) * np.sqrt(3 / 100)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.95 * bound
    init.xavier_uniform_(w, gain=2.0)
    assert np.abs(w.data).max() <= 2 * np.sqrt(6 / 300)
    init.xavier_normal_(w)
    assert w.data.std() == pytest.approx(np.sqrt(2 / 300), rel=0.03)
    tinyconv.random.manual_seed(3)
    first = init.normal_(tinyconv.Tensor(np.empty(5)), 1.0, 2.0).data.copy()
    tinyconv.random.manual_seed(3)
    np.testing.assert_array_equal(init.normal_(tinyconv.Tensor(np.empty(5)), 1.0, 2.0).data, first)
    t = tinyconv.Tensor(np.empty(3, dtype=np.float32))
    assert np.all(init.constant_(t, 0.5).data == 0.5) and np.all(init.zeros_(t).data == 0)
    assert np.all(init.ones_(t).data == 1) and t.dtype == np.float32
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_normal_(t)
    with pytest.raises(ValueError, match="leaky_relu slope"):
        init.kaiming_normal_(w, a=0.2, nonlinearity="relu")
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_normal_(w, mode="fan_avg")


@given(st.lists(st.integers(1, 5), min_size=2, max_size=5))
def test_fans_match_definition(shape):
    fan_in, fan_out = init.calculate_fan_in_and_fan_out(tinyconv.Tensor(np.empty(shape)))
    receptive = int(np.prod(shape[2:]))
    assert (fan_in, fan_out) == (shape[1] * receptive, shape[0] * receptive)


# ---- parity with PyTorch ----

@pytest.mark.torch
def test_fans_and_gains_match_torch(torch):
    for shape in [(4, 3), (8, 4, 3, 3), (2, 5, 1, 7)]:
        assert init.calculate_fan_in_and_fan_out(tinyconv.Tensor(np.empty(shape))) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    for nonlinearity, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                                ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
        assert init.calculate_gain(nonlinearity, param) == pytest.approx(
            torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-12)


@pytest.mark.torch
def test_state_dict_keys_and_reprs_match_torch(torch):
    ours, theirs = conv_bn_linear(nn), conv_bn_linear(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert ours.state_dict()[key].shape == tuple(value.shape)
    # (BatchNorm2d is left out: recent torch versions add options to its repr.)
    for name in ("conv", "relu", "flatten", "fc"):
        assert repr(getattr(ours, name)) == repr(getattr(theirs, name))


@pytest.mark.torch
def test_loaded_torch_weights_give_torch_outputs(torch, rng):
    torch.manual_seed(0)
    theirs = conv_bn_linear(torch.nn).double()
    ours = conv_bn_linear(nn).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((4, 3, 6, 6))
    for _ in range(2):  # training mode: batch statistics, and the running buffers move identically
        np.testing.assert_allclose(ours(tinyconv.Tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-10, atol=1e-12)
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(tinyconv.Tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.torch
def test_batchnorm_cumulative_average_matches_torch(torch, rng):
    ours, theirs = nn.BatchNorm1d(3, momentum=None).double(), torch.nn.BatchNorm1d(3, momentum=None).double()
    for _ in range(3):
        x = rng.standard_normal((6, 3)) * 3
        ours(tinyconv.Tensor(x)), theirs(torch.from_numpy(x))
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-12)
