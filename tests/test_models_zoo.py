"""The model zoo: VGG, GoogLeNet, ImageNet ResNets, MobileNet v1, and ``tinyconv.summary``.

Parameter counts and multiply-adds are checked against the papers' tables (and torchvision's
published exact counts where the architecture is the same). Counting builds the models under
``skip_init()`` (zero weights: drawing VGG's 138 M random values takes seconds); forward/backward
checks use real initialisation at small inputs. Full 224x224 training passes of the big nets are
``slow``.
"""
import os

import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv import nn, optim
from tinyconv import random as tc_random
from tinyconv.models import (CIFAR_MODELS, CIFAR_ZOO, IMAGENET_MODELS, MODELS, googlenet, googlenet_cifar,
                             mobilenet_v1, mobilenet_v1_cifar, resnet, resnet18, skip_init, vgg,
                             vgg11, vgg11_cifar, vgg11_lrn, vgg13, vgg16, vgg16_c, vgg16_cifar, vgg19)
from tinyconv.models.vgg import CONFIGS, WEIGHT_LAYERS
from tinyconv.summary import summary


def _count(fn, *args, **kwargs):
    with skip_init():
        return fn(*args, **kwargs).num_parameters()


def _macs(model, side):
    return summary(model, (3, side, side), print_table=False).total_mult_adds


def _train_step_grads(model, x, labels, aux_weight=0.3):
    """One forward/backward in training mode; checks every parameter got a finite gradient."""
    model.train()
    model.zero_grad()
    out = model(tinyconv.Tensor(x))
    if isinstance(out, tuple):  # GoogLeNet with auxiliary heads
        loss = F.cross_entropy(out[0], labels)
        for aux in out[1:]:
            loss = loss + aux_weight * F.cross_entropy(aux, labels)
        out = out[0]
    else:
        loss = F.cross_entropy(out, labels)
    loss.backward()
    assert np.isfinite(loss.item())
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]} ({len(missing)} in all)"
    bad = [n for n, p in model.named_parameters() if not np.all(np.isfinite(p.grad))]
    assert not bad, f"non-finite gradients in {bad[:5]}"
    return out


def _images(rng, n, side):
    return rng.standard_normal((n, 3, side, side)).astype(np.float32)


# ---- registry -----------------------------------------------------------------------------------------

def test_registry_names_and_num_classes():
    assert set(CIFAR_MODELS) <= set(MODELS) and set(CIFAR_ZOO) <= set(MODELS)
    assert set(IMAGENET_MODELS) <= set(MODELS)
    for name in ("vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19", "googlenet", "resnet18",
                 "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v1", "vgg16_cifar",
                 "googlenet_cifar", "mobilenet_v1_cifar", "resnet20"):
        assert name in MODELS
    with skip_init():
        for name, fn in MODELS.items():
            last_linear = [m for m in fn(num_classes=7).modules() if isinstance(m, nn.Linear)][-1]
            assert last_linear.out_features == 7, name


def test_skip_init_restores_random_initialisation():
    with skip_init():
        m = nn.Linear(20, 30)
    assert not m.weight.numpy().any()
    m = nn.Linear(20, 30)
    assert m.weight.numpy().any()


# ---- VGG (Simonyan & Zisserman 2015, Tables 1-2) ------------------------------------------------------

# Exact counts at 1000 classes. A, D, E: torchvision's published vgg11/vgg16/vgg19 (the same nets).
# B (= torchvision vgg13) and C follow from the table; A-LRN has A's (LRN has no parameters).
VGG_PARAMS = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952,
              "D": 138_357_544, "E": 143_667_240}
VGG_TABLE2_M = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}


@pytest.mark.parametrize("config", list(VGG_PARAMS))
def test_vgg_parameter_counts_match_table2(config):
    n = _count(vgg, config)
    assert n == VGG_PARAMS[config]
    assert round(n / 1e6) == VGG_TABLE2_M[config]


def test_vgg_aliases_and_table1_layout():
    for fn, config in ((vgg11, "A"), (vgg11_lrn, "A-LRN"), (vgg13, "B"), (vgg16_c, "C"), (vgg16, "D"),
                       (vgg19, "E")):
        assert _count(fn) == VGG_PARAMS[config]
    for config, layers in CONFIGS.items():
        weight_layers = sum(c.startswith("conv") for c in layers) + 3  # + the three FC layers
        assert weight_layers == WEIGHT_LAYERS[config]
        assert layers.count("maxpool") == 5
    # C's extra layers are 1x1 convs closing stacks 3-5; D has 3x3 there instead.
    with skip_init():
        c, d = vgg16_c(), vgg16()
    kernels = [m.kernel_size for m in c.features if isinstance(m, nn.Conv2d)]
    assert [i for i, k in enumerate(kernels) if k == (1, 1)] == [6, 9, 12]
    assert all(m.kernel_size == (3, 3) for m in d.features if isinstance(m, nn.Conv2d))
    with skip_init():
        kinds = [type(m).__name__ for m in vgg11_lrn().features]
    assert kinds[:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]


def test_vgg_batch_norm_drops_conv_bias():
    # torchvision's vgg16_bn keeps a (redundant) conv bias: 138,365,992 = this + the 4,224 conv channels.
    n = _count(vgg, "D", batch_norm=True)
    convs = 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512
    assert n == VGG_PARAMS["D"] + 2 * convs - convs  # + BN's gamma and beta, - the conv biases
    assert n + convs == 138_365_992


def test_vgg_imagenet_output_and_mult_adds_at_224():
    with skip_init():
        model = vgg19()
    s = summary(model, (3, 224, 224), print_table=False)
    assert s.output_shape == (1, 1000)
    assert s.total_params == VGG_PARAMS["E"]
    # He et al. 2015 (ResNet paper, Fig. 3 caption): "VGG-19 model (19.6 billion FLOPs)".
    assert round(s.total_mult_adds / 1e9, 1) == 19.6


def test_vgg_imagenet_classifier_rejects_other_sizes():
    with skip_init():
        model = vgg11()
    with pytest.raises(ValueError, match="224x224"):
        model(tinyconv.Tensor(np.zeros((1, 3, 64, 64), np.float32)))


def test_vgg_classifiers():
    # Sec. 3.1 / Table 1: FC-4096, FC-4096, FC-1000, dropout 0.5 after the first two. The classifier
    # code is shared with the CIFAR form (whose gradients are checked below); a full 224x224
    # training pass is test_vgg16_full_224_training_pass (slow: 120 M classifier weights to draw).
    with skip_init():
        imagenet, cifar = vgg16(), vgg16_cifar()
    for model, widths in ((imagenet, [(25088, 4096), (4096, 4096), (4096, 1000)]),
                          (cifar, [(512, 512), (512, 10)])):
        kinds = [type(m).__name__ for m in model.classifier]
        assert kinds == ["Linear", "ReLU", "Dropout"] * (len(widths) - 1) + ["Linear"]
        linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == widths
        assert all(m.p == 0.5 for m in model.classifier if isinstance(m, nn.Dropout))


@pytest.mark.parametrize("config", list(CONFIGS))
def test_vgg_cifar_forward_backward(config, rng):
    # The CIFAR form shares the conv stacks with the ImageNet form: this checks every Table 1 column.
    model = vgg(config, num_classes=10, batch_norm=config != "A-LRN", cifar=True)
    out = _train_step_grads(model, _images(rng, 2, 32), np.array([3, 7]))
    assert out.shape == (2, 10)


@pytest.mark.slow
def test_vgg16_full_224_training_pass(rng):
    model = vgg16()
    out = _train_step_grads(model, _images(rng, 1, 224), np.array([5]))
    assert out.shape == (1, 1000)


# ---- GoogLeNet (Szegedy et al. 2015, Table 1) ---------------------------------------------------------

def test_googlenet_parameter_count():
    n = _count(googlenet)
    assert n == 6_998_552  # with conv biases; the paper: "~6.8M" (its table counts weights only)
    with skip_init():
        model = googlenet()
    weights = sum(int(p.size) for name, p in model.named_parameters() if name.endswith("weight"))
    assert weights == 6_990_272
    # torchvision (6,624,904) = BN instead of biases, and a 3x3 conv in the "5x5" branch.
    bn = _count(googlenet, batch_norm=True)
    five_by_five = sum(m.branch3[1].conv.weight.size for m in model.modules()
                       if type(m).__name__ == "Inception")
    assert bn - five_by_five * 16 // 25 == 6_624_904
    aux = _count(googlenet, aux_logits=True)
    # Each head: 1x1 conv to 128 (+ bias), FC 4*4*128 -> 1024, FC 1024 -> 1000 (Sec. 5).
    head = 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    assert aux - n == (512 * 128 + head) + (528 * 128 + head)


def test_googlenet_table1_shapes_and_mult_adds():
    with skip_init():
        model = googlenet()
    s = summary(model, (3, 224, 224), print_table=False)
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes["conv1.conv"] == (1, 64, 112, 112)
    assert shapes["maxpool1"] == (1, 64, 56, 56)
    assert shapes["maxpool2"] == (1, 192, 28, 28)
    assert shapes["maxpool3"] == (1, 480, 14, 14)
    assert shapes["maxpool4"] == (1, 832, 7, 7)
    assert shapes["avgpool"] == (1, 1024)
    assert s.output_shape == (1, 1000)
    # Table 1's "ops" column sums to 1,586 M (Sec. 5: "1.5 billion multiply-adds").
    assert abs(s.total_mult_adds / 1e6 - 1586) < 0.01 * 1586


def test_inception_module_concatenates_branches(rng):
    from tinyconv.models import Inception
    module = Inception(192, 64, 96, 128, 16, 32, 32)  # 3a
    y = module(tinyconv.Tensor(_images(rng, 1, 8).repeat(64, axis=1)))
    assert y.shape == (1, 256, 8, 8) and module.out_channels == 256


def test_googlenet_imagenet_reduced_resolution(rng):
    # Global average pooling lets the main path run below 224 (96 -> 3x3 before the pool).
    out = _train_step_grads(googlenet(num_classes=10), _images(rng, 2, 96), np.array([0, 9]))
    assert out.shape == (2, 10)


def test_googlenet_aux_logits_in_training_only(rng):
    model = googlenet_cifar(aux_logits=True)
    x = _images(rng, 2, 32)
    out = _train_step_grads(model, x, np.array([1, 4]))  # main + 0.3 (aux1 + aux2) reaches all
    assert out.shape == (2, 10)
    outs = model(tinyconv.Tensor(x))
    assert isinstance(outs, tuple) and [o.shape for o in outs] == [(2, 10)] * 3
    model.eval()
    with tinyconv.no_grad():
        assert model(tinyconv.Tensor(x)).shape == (2, 10)


def test_googlenet_imagenet_aux_heads_at_224(rng):
    model = googlenet(aux_logits=True)
    with tinyconv.no_grad():
        outs = model(tinyconv.Tensor(_images(rng, 1, 224)))
    assert outs._fields == ("logits", "aux1", "aux2")
    assert [o.shape for o in outs] == [(1, 1000)] * 3


def test_googlenet_cifar_forward_backward(rng):
    out = _train_step_grads(googlenet_cifar(), _images(rng, 2, 32), np.array([2, 5]))
    assert out.shape == (2, 10)


# ---- ResNet for ImageNet (He et al. 2015, Table 1) ----------------------------------------------------

RESNET_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
RESNET_GFLOPS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}  # Table 1, multiply-adds


@pytest.mark.parametrize("depth", list(RESNET_PARAMS))
def test_resnet_parameter_counts_and_mult_adds(depth):
    with skip_init():
        model = resnet(depth)
    s = summary(model, (3, 224, 224), print_table=False)
    assert s.total_params == RESNET_PARAMS[depth]
    assert s.output_shape == (1, 1000)
    # Table 1 rounds loosely (34: 3.66 G printed as 3.6, 50: 3.86 G as 3.8): within 0.07 G.
    assert abs(s.total_mult_adds / 1e9 - RESNET_GFLOPS[depth]) < 0.07


def test_resnet50_stride_placement():
    with skip_init():
        v1, v15 = resnet(50), resnet(50, stride_in_3x3=True)
    assert v1.num_parameters() == v15.num_parameters()
    assert v1.layer2[0].conv1.stride == (2, 2) and v15.layer2[0].conv2.stride == (2, 2)
    assert round(_macs(v15, 224) / 1e9, 1) == 4.1
    assert v1.layer1[0].downsample is not None and v1.layer1[1].downsample is None  # 64 -> 256


@pytest.mark.parametrize("depth,side", [(18, 64), (34, 32), (50, 64), (101, 32), (152, 32)])
def test_resnet_forward_backward(depth, side, rng):
    out = _train_step_grads(resnet(depth, num_classes=10), _images(rng, 2, side), np.array([0, 1]))
    assert out.shape == (2, 10)


def test_resnet18_basic_block_projection_only_where_shape_changes():
    model = resnet18()
    assert model.layer1[0].downsample is None
    for stage in (model.layer2, model.layer3, model.layer4):
        assert isinstance(stage[0].downsample, nn.Sequential) and stage[1].downsample is None


# ---- MobileNet v1 (Howard et al. 2017, Tables 1, 6, 7) ------------------------------------------------

# Table 6: width multiplier -> (million parameters, million mult-adds) at 224x224.
MOBILENET_TABLE6 = {1.0: (4.2, 569), 0.75: (2.6, 325), 0.5: (1.3, 149), 0.25: (0.5, 41)}
MOBILENET_TABLE7 = {224: 569, 192: 418, 160: 290, 128: 186}  # alpha = 1, resolution -> M mult-adds


@pytest.mark.parametrize("alpha", list(MOBILENET_TABLE6))
def test_mobilenet_table6(alpha):
    with skip_init():
        model = mobilenet_v1(width_mult=alpha)
    s = summary(model, (3, 224, 224), print_table=False)
    params_m, macs_m = MOBILENET_TABLE6[alpha]
    assert round(s.total_params / 1e6, 1) == params_m
    assert round(s.total_mult_adds / 1e6) == macs_m
    assert s.output_shape == (1, 1000)


def test_mobilenet_exact_count_and_resolution_multiplier():
    assert _count(mobilenet_v1) == 4_231_976
    with skip_init():
        model = mobilenet_v1()
    for side, macs_m in MOBILENET_TABLE7.items():
        # Table 7 rounds 290.7 M at 160 down; all within 1 M.
        assert abs(_macs(model, side) / 1e6 - macs_m) < 1, side


def test_mobilenet_depthwise_layers():
    model = mobilenet_v1()
    dw = [m.depthwise.conv for m in model.features[1:]]
    assert len(dw) == 13 and all(c.groups == c.in_channels == c.out_channels for c in dw)
    assert [c.stride[0] for c in dw] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert all(m.pointwise.conv.kernel_size == (1, 1) for m in model.features[1:])


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_mobilenet_imagenet_reduced_resolution(alpha, rng):
    out = _train_step_grads(mobilenet_v1(num_classes=10, width_mult=alpha), _images(rng, 2, 64),
                            np.array([3, 4]))
    assert out.shape == (2, 10)


def test_mobilenet_cifar_forward_backward(rng):
    model = mobilenet_v1_cifar()
    s = summary(model, (3, 32, 32), print_table=False)
    assert [r.output_shape for r in s.rows if r.name == "features.13.pointwise.conv"] == [(1, 1024, 2, 2)]
    out = _train_step_grads(model, _images(rng, 2, 32), np.array([6, 8]))
    assert out.shape == (2, 10)


# ---- summary --------------------------------------------------------------------------------------------

def test_summary_rows_totals_and_restoration(capsys):
    model = vgg11_cifar()
    model.train()
    model.features[1].training = False  # a mixed state must come back as it was
    s = summary(model, (3, 32, 32))
    printed = capsys.readouterr().out
    assert "Total params: 9,491,018" in printed and "features.0" in printed
    assert s.total_params == model.num_parameters() == sum(r.params for r in s.rows)
    assert s.params_not_run == 0
    convs = [r for r in s.rows if r.kind == "Conv2d"]
    assert convs[0].output_shape == (1, 64, 32, 32) and convs[0].mult_adds == 64 * 32 * 32 * 3 * 9
    others = [r.mult_adds for r in s.rows if r.kind not in ("Conv2d", "Linear")]
    assert len(others) > 20 and not any(others)  # BN, ReLU, pools, dropout count 0
    assert model.training and not model.features[1].training and model.features[0].training
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_summary_batch_and_linear_count():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    s = summary(model, (4, 3, 2, 2), print_table=False)
    assert s.input_shape == (4, 3, 2, 2) and s.output_shape == (4, 5)
    assert s.total_mult_adds == 4 * 12 * 5
    assert s.rows[1].params == 65


def test_summary_restores_forward_on_error():
    model = vgg11_cifar()
    with pytest.raises(ValueError):
        summary(model, (3, 64, 64), print_table=False)  # 2x2x512 features: the classifier refuses
    assert all("forward" not in m.__dict__ for m in model.modules())
    assert model.training


def test_summary_counts_aux_params_not_run():
    with skip_init():
        model = googlenet(aux_logits=True)
    s = summary(model, (3, 224, 224), print_table=False)
    assert s.total_params == _count(googlenet, aux_logits=True)
    assert s.params_not_run == s.total_params - 6_998_552  # the aux heads run only in training


def test_summary_is_exported():
    assert tinyconv.summary is summary


# ---- a few SGD steps on real CIFAR-10 -------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar_batch():
    if not os.environ.get("TINYCONV_DATA"):
        pytest.skip("TINYCONV_DATA is not set (folder containing cifar-10-batches-py/)")
    from tinyconv.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD
    data = CIFAR10(train=True)
    images = data.data[:8].astype(np.float32) / 255.0
    mean, std = (np.asarray(v, np.float32).reshape(1, 3, 1, 1) for v in (CIFAR10_MEAN, CIFAR10_STD))
    return (images - mean) / std, np.asarray(data.targets[:8])


# (model, learning rate, images): GoogLeNet's CIFAR form is the costliest step here (~0.4 G
# mult-adds per image), so it overfits 4 images rather than 8 to stay a few seconds.
@pytest.mark.parametrize("name,lr,n", [("vgg11_cifar", 0.02, 8), ("vgg16_cifar", 0.02, 8),
                                       ("googlenet_cifar", 0.02, 4), ("mobilenet_v1_cifar", 0.05, 8)])
def test_sgd_steps_lower_the_loss_on_real_cifar(name, lr, n, cifar_batch):
    x, y = cifar_batch[0][:n], cifar_batch[1][:n]
    tc_random.manual_seed(0)
    model = MODELS[name]()
    model.train()
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for _ in range(4):  # on one batch of 8 images: the loss on it must fall
        loss = F.cross_entropy(model(tinyconv.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses
