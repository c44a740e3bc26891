"""The lecture's fancier architectures (tinyconv/models/{multitask,dag,rcnn,two_stream,siamese,multiscale,
devise}.py): output shapes, gradients that reach every parameter, shared weights that really are
shared (one Parameter object; its gradient is the sum over its uses, checked against untied copies
and against finite differences in float64), and a few optimiser steps on real CIFAR-10 images
lowering the loss (skipped when TINYCONV_DATA is unset).
"""
import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv import Tensor, nn, optim
from tinyconv.models import LECTURE_MODELS, skip_init
from tinyconv.models.dag import DAG, Add, Concat, dag_cifar
from tinyconv.models.devise import DeViSE, devise_cifar, hinge_rank_loss, normalize_rows
from tinyconv.models.multiscale import MultiScaleNet, gaussian_pyramid, laplacian_pyramid, multiscale
from tinyconv.models.multitask import (ConvTrunk, animal_vs_vehicle, multitask_cifar, multitask_loss,
                                       rotate90)
from tinyconv.models.rcnn import (RecurrentCNN, border_contrast_labels, pixel_accuracy, pixel_cross_entropy,
                                  rcnn, rcnn_loss)
from tinyconv.models.siamese import contrastive_loss, make_pairs, pair_distance, siamese_cifar
from tinyconv.models.two_stream import (DIRECTIONS, frame_differences, moving_clips,
                                        stream_feature_size, two_stream)
from tinyconv.testing import check_grad


# ---- helpers ------------------------------------------------------------------------------------

def randn(rng, *shape, dtype=np.float32):
    return Tensor(rng.standard_normal(shape).astype(dtype))


def assert_all_grads(model, exactly_zero=()):
    """Every parameter got a gradient of its own shape, finite, and not all zero (except the
    parameters named in ``exactly_zero``, whose gradient must then be exactly zero)."""
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.shape == p.shape, name
        assert np.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        if name in exactly_zero:
            assert not p.grad.any(), f"{name} should get a zero gradient"
        else:
            assert np.abs(p.grad).max() > 0, f"{name} has an all-zero gradient"


def _owner(model, dotted):
    *path, leaf = dotted.split(".")
    module = model
    for part in path:
        module = getattr(module, part)
    return module, leaf


@contextlib.contextmanager
def parameters_bound_to(model, tensors):
    """Temporarily make ``model``'s parameters named in ``tensors`` ({dotted name: Tensor}) be those
    tensors, so check_grad can differentiate the model with respect to its own weights. A shared
    parameter has one owner module, so replacing it replaces it at every use."""
    owners = {name: _owner(model, name) for name in tensors}
    saved = {name: m._parameters[leaf] for name, (m, leaf) in owners.items()}
    try:
        for name, (m, leaf) in owners.items():
            m._parameters[leaf] = tensors[name]
        yield
    finally:
        for name, (m, leaf) in owners.items():
            m._parameters[leaf] = saved[name]


def check_param_grad(model, names, loss_fn):
    """check_grad of ``loss_fn()`` with respect to the named parameters of a float64 model."""
    arrays = [_owner(model, n)[0]._parameters[_owner(model, n)[1]].data for n in names]

    def fn(*weights):
        with parameters_bound_to(model, dict(zip(names, weights))):
            return loss_fn()

    check_grad(fn, *arrays)


def grads_of(model):
    return {name: p.grad.copy() for name, p in model.named_parameters()}


_DATA = os.environ.get("TINYCONV_DATA", "")
needs_data = pytest.mark.skipif(
    not (_DATA and (Path(_DATA) / "cifar-10-batches-py" / "test_batch").is_file()),
    reason="TINYCONV_DATA is unset or has no cifar-10-batches-py/")


@pytest.fixture(scope="module")
def cifar():
    """64 real CIFAR-10 test images (rows 0-63, the exact ones): uint8 images, labels, normalised floats."""
    from tinyconv.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD
    ds = CIFAR10(_DATA, train=False)
    images, labels = ds.data[:64].copy(), ds.targets[:64].copy()
    x = (images / 255.0 - np.array(CIFAR10_MEAN)[:, None, None]) / np.array(CIFAR10_STD)[:, None, None]
    return images, labels, x.astype(np.float32)


def loss_drops(model, loss_fn, steps=8, lr=5e-3):
    """Adam steps on one fixed batch; returns (first loss, last loss)."""
    tinyconv.random.manual_seed(0)
    opt = optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses[0], losses[-1]


def test_constructors_are_registered():
    assert set(LECTURE_MODELS) == {"multitask_cifar", "dag_cifar", "rcnn", "two_stream", "siamese_cifar",
                                   "multiscale", "devise_cifar"}


# ---- multi-task ---------------------------------------------------------------------------------

def test_multitask_shapes_and_gradients(rng):
    tinyconv.random.manual_seed(0)
    model = multitask_cifar(widths=(8, 16))
    x = randn(rng, 4, 3, 16, 16)
    out = model(x)
    assert {k: v.shape for k, v in out.items()} == {"class": (4, 10), "animal": (4, 2), "rotation": (4, 4)}
    targets = {"class": np.array([0, 3, 8, 9]), "animal": np.array([1, 0, 1, 1]), "rotation": np.array([0, 1, 2, 3])}
    loss, parts = multitask_loss(out, targets, {"class": 1.0, "animal": 0.5, "rotation": 0.25})
    assert loss.item() == pytest.approx(parts["class"] + 0.5 * parts["animal"] + 0.25 * parts["rotation"], rel=1e-5)
    loss.backward()
    assert_all_grads(model)


def test_multitask_trunk_gradient_is_weighted_sum_of_task_gradients(rng):
    """dL/dW_trunk = sum_t w_t dL_t/dW_trunk: the shared trunk adds up every head's gradient."""
    tinyconv.random.manual_seed(1)
    model = multitask_cifar(widths=(4, 8)).double()
    x = Tensor(rng.standard_normal((3, 3, 8, 8)))
    targets = {"class": np.array([1, 5, 9]), "animal": np.array([1, 0, 1]), "rotation": np.array([2, 0, 3])}
    weights = {"class": 1.0, "animal": 0.3, "rotation": 2.0}
    total = None
    for task in targets:
        model.zero_grad()
        multitask_loss(model(x), {task: targets[task]})[0].backward()
        g = model.trunk.features[0][0].weight.grad * weights[task]
        total = g if total is None else total + g
    model.zero_grad()
    multitask_loss(model(x), targets, weights)[0].backward()
    np.testing.assert_allclose(model.trunk.features[0][0].weight.grad, total, rtol=1e-9, atol=1e-12)


def test_rotate90_and_animal_labels():
    images = np.arange(2 * 1 * 3 * 3).reshape(2, 1, 3, 3)
    out = rotate90(images, np.array([1, 3]))
    np.testing.assert_array_equal(out[0], np.rot90(images[0], 1, axes=(1, 2)))
    np.testing.assert_array_equal(out[1], np.rot90(images[1], 3, axes=(1, 2)))
    np.testing.assert_array_equal(rotate90(images, 4), images)
    np.testing.assert_array_equal(animal_vs_vehicle(np.arange(10)), [1, 1, 0, 0, 0, 0, 0, 0, 1, 1])


@needs_data
def test_multitask_learns_on_real_cifar(cifar):
    images, labels, x = cifar
    k = np.arange(len(labels)) % 4
    xr = Tensor(rotate90(x, k))
    targets = {"class": labels, "animal": animal_vs_vehicle(labels), "rotation": k}
    tinyconv.random.manual_seed(0)
    model = multitask_cifar(widths=(16, 32))
    first, last = loss_drops(model, lambda: multitask_loss(model(xr), targets)[0])
    assert last < 0.9 * first


# ---- DAG ------------------------------------------------------------------------------------------

def test_dag_shapes_and_every_branch_gets_gradient(rng):
    tinyconv.random.manual_seed(0)
    model = dag_cifar(width=8)
    image, edges = randn(rng, 2, 3, 16, 16), randn(rng, 2, 1, 16, 16)
    logits, coarse = model(image, edges)
    assert logits.shape == (2, 10) and coarse.shape == (2, 1, 4, 4)
    assert model(edges=edges, image=image)[0].shape == (2, 10)
    (F.cross_entropy(logits, np.array([1, 2])) + F.mse_loss(coarse, np.zeros(coarse.shape, np.float32))).backward()
    assert_all_grads(model)
    assert model.order.index("stem") > max(model.order.index("rgb_stem"), model.order.index("edge_stem"))


def test_dag_gradients_match_finite_differences(rng):
    """Both inputs of a tiny float64 DAG (concat, add, cross-stage skip, two outputs)."""
    tinyconv.random.manual_seed(2)
    model = dag_cifar(num_classes=3, width=2).double()

    def fn(image, edges):
        logits, coarse = model(image, edges)
        return F.concat([logits.reshape(-1), coarse.reshape(-1)], axis=0)

    check_grad(fn, rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((2, 1, 8, 8)))


def test_dag_sums_gradients_where_a_value_fans_out(rng):
    """x feeds two nodes and the output: dL/dx is the sum over the three paths."""
    lin = nn.Linear(3, 3)
    model = DAG(["x"], [("a", lin, "x"), ("b", nn.ReLU(), "a"), ("out", Add(), ["a", "b", "x"])], ["out"]).double()
    x = rng.standard_normal((4, 3))
    check_grad(lambda t: model(t), x)


def test_dag_rejects_bad_graphs():
    with pytest.raises(ValueError, match="cycle"):
        DAG(["x"], [("a", Add(), ["x", "b"]), ("b", nn.ReLU(), "a")], ["b"])
    with pytest.raises(ValueError, match="undefined"):
        DAG(["x"], [("a", nn.ReLU(), "y")], ["a"])
    with pytest.raises(ValueError, match="do not reach"):
        DAG(["x"], [("a", nn.ReLU(), "x"), ("dead", nn.ReLU(), "x")], ["a"])
    with pytest.raises(ValueError, match="twice"):
        DAG(["x"], [("a", nn.ReLU(), "x"), ("a", nn.ReLU(), "x")], ["a"])
    model = DAG(["x", "y"], [("c", Concat(), ["y", "x"])], ["c"])
    assert model(Tensor(np.zeros((1, 1, 2, 2))), Tensor(np.ones((1, 2, 2, 2)))).shape == (1, 3, 2, 2)
    with pytest.raises(TypeError, match="missing"):
        model(Tensor(np.zeros((1, 1, 2, 2))))


@needs_data
def test_dag_learns_on_real_cifar(cifar):
    images, labels, x = cifar
    x, labels = x[:32], labels[:32]
    grey = x.mean(axis=1, keepdims=True)
    edges = Tensor(np.abs(np.diff(grey, axis=3, prepend=grey[..., :1])).astype(np.float32))
    target = F.avg_pool2d(Tensor(grey), 4).data
    tinyconv.random.manual_seed(0)
    model = dag_cifar(width=8)

    def loss():
        logits, coarse = model(Tensor(x), edges)
        return F.cross_entropy(logits, labels) + F.mse_loss(coarse, target)

    first, last = loss_drops(model, loss)
    assert last < 0.9 * first


# ---- recurrent CNN ----------------------------------------------------------------------------------

def test_rcnn_shapes_gradients_and_single_step_module(rng):
    tinyconv.random.manual_seed(0)
    model = rcnn(num_classes=3, width=8, steps=3)
    x = randn(rng, 2, 3, 12, 12)
    outs = model(x)
    assert len(outs) == 3 and all(z.shape == (2, 3, 12, 12) for z in outs)
    # One set of weights, used three times.
    assert len(list(model.parameters())) == 8
    labels = rng.integers(0, 3, (2, 12, 12))
    loss, per_step = rcnn_loss(outs, labels)
    assert loss.item() == pytest.approx(np.mean(per_step), rel=1e-5)
    loss.backward()
    assert_all_grads(model)
    assert 0.0 <= pixel_accuracy(outs[-1], labels) <= 1.0


def test_rcnn_shared_weight_gradient_matches_finite_differences(rng):
    """Backprop through the unrolled graph: check every shared weight of a tiny float64 RCNN."""
    tinyconv.random.manual_seed(3)
    model = RecurrentCNN(in_channels=2, num_classes=2, width=3, steps=3, dilations=(1, 2)).double()
    x = Tensor(rng.standard_normal((2, 2, 5, 5)))
    labels = rng.integers(0, 2, (2, 5, 5))
    names = [n for n, _ in model.named_parameters()]
    check_param_grad(model, names, lambda: rcnn_loss(model(x), labels)[0])


def test_rcnn_shared_gradient_is_the_sum_over_steps(rng):
    """Untie the steps (a copy of the weights per step): the tied gradient is the sum of theirs."""
    tinyconv.random.manual_seed(4)
    tied = RecurrentCNN(in_channels=3, num_classes=2, width=4, steps=3).double()
    x = Tensor(rng.standard_normal((2, 3, 6, 6)))
    labels = rng.integers(0, 2, (2, 6, 6))
    rcnn_loss(tied(x), labels)[0].backward()
    copies = [RecurrentCNN(in_channels=3, num_classes=2, width=4, steps=1).double() for _ in range(3)]
    for c in copies:
        c.load_state_dict(tied.state_dict())
    prev = Tensor(np.zeros((2, 2, 6, 6)))
    outs = []
    for c in copies:  # the same unrolled computation, one module per step
        z = c.step(F.concat([x, prev], axis=1))
        outs.append(z)
        prev = F.softmax(z, axis=1)
    rcnn_loss(outs, labels)[0].backward()
    for name, p in tied.named_parameters():
        per_step = [dict(c.named_parameters())[name].grad for c in copies]
        np.testing.assert_allclose(p.grad, sum(per_step), rtol=1e-9, atol=1e-12, err_msg=name)
        assert all(np.abs(g).max() > 0 for g in per_step), name  # every step contributes


def test_border_contrast_labels_are_deterministic_and_three_class(rng):
    images = rng.integers(0, 256, (3, 3, 16, 16)).astype(np.uint8)
    images[0] = 0
    images[0, :, 6:10, 6:10] = 255  # black frame, white square: background + bright foreground
    labels = border_contrast_labels(images)
    assert labels.shape == (3, 16, 16) and set(np.unique(labels)) <= {0, 1, 2}
    assert labels[0, 0, 0] == 0 and labels[0, 8, 8] == 2
    np.testing.assert_array_equal(labels, border_contrast_labels(images))


@needs_data
def test_rcnn_learns_on_real_cifar(cifar):
    images, labels, x = cifar
    seg = border_contrast_labels(images[:16])
    tinyconv.random.manual_seed(0)
    model = rcnn(width=8, steps=2)
    first, last = loss_drops(model, lambda: rcnn_loss(model(Tensor(x[:16])), seg)[0], steps=12, lr=1e-2)
    assert last < 0.9 * first


# ---- two-stream -------------------------------------------------------------------------------------

def test_two_stream_small_shapes_and_gradients(rng):
    tinyconv.random.manual_seed(0)
    model = two_stream(num_classes=4, temporal_channels=6, width=1 / 16, input_size=32)
    assert model.spatial.conv1.out_channels == 6 and model.spatial.full6.out_features == 256
    assert hasattr(model.spatial, "norm2") and not hasattr(model.temporal, "norm2")
    s, t = model(randn(rng, 2, 3, 32, 32), randn(rng, 2, 6, 32, 32))
    assert s.shape == t.shape == (2, 4)
    (F.cross_entropy(s, np.array([0, 3])) + F.cross_entropy(t, np.array([1, 2]))).backward()
    assert_all_grads(model)
    model.eval()
    scores = model.scores(randn(rng, 2, 3, 32, 32), randn(rng, 2, 6, 32, 32))
    np.testing.assert_allclose(scores.data.sum(axis=1), 1.0, rtol=1e-5)
    assert stream_feature_size(224) == 7 and stream_feature_size(32) == 1 and stream_feature_size(64) == 2


def test_two_stream_paper_table_at_224(rng):
    """width=1 is the table exactly; a narrow net runs the 224x224 geometry (112-56-28-14-7)."""
    with skip_init():  # shapes only: drawing 236 M random initial weights takes seconds
        model = two_stream(num_classes=101, temporal_channels=20)
    sp = model.spatial
    assert [getattr(sp, f"conv{i}").out_channels for i in range(1, 6)] == [96, 256, 512, 512, 512]
    assert [getattr(sp, f"conv{i}").kernel_size[0] for i in range(1, 6)] == [7, 5, 3, 3, 3]
    assert [getattr(sp, f"conv{i}").stride[0] for i in range(1, 6)] == [2, 2, 1, 1, 1]
    assert (sp.full6.in_features, sp.full6.out_features, sp.full7.out_features) == (25088, 4096, 2048)
    assert model.temporal.conv1.in_channels == 20
    assert sp.num_parameters() == 117_890_789
    del model, sp
    narrow = two_stream(num_classes=5, temporal_channels=20, width=1 / 8)
    assert narrow.spatial.features(randn(rng, 1, 3, 224, 224)).shape == (1, 64, 7, 7)
    s, t = narrow(randn(rng, 1, 3, 224, 224), randn(rng, 1, 20, 224, 224))
    (F.cross_entropy(s, np.array([1])) + F.cross_entropy(t, np.array([1]))).backward()
    assert_all_grads(narrow)


@pytest.mark.slow
def test_two_stream_full_size_forward_backward(rng):
    """The paper's nets at full size (width=1, 224x224, 2 x 118 M parameters), batch 1, both streams.
    Slow: 5-10 s on a quiet 2-core machine, 35 s measured on a loaded one."""
    tinyconv.random.manual_seed(0)
    model = two_stream(num_classes=101, temporal_channels=20)
    s, t = model(randn(rng, 1, 3, 224, 224), randn(rng, 1, 20, 224, 224))
    assert s.shape == t.shape == (1, 101)
    (F.cross_entropy(s, np.array([7])) + F.cross_entropy(t, np.array([7]))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad).all(), name


def test_moving_clips_move_in_the_labelled_direction(rng):
    images = rng.integers(0, 256, (8, 3, 16, 16)).astype(np.uint8)
    clips = moving_clips(images, np.arange(8), frames=3, speed=2)
    assert clips.shape == (8, 3, 3, 16, 16)
    for d, (dy, dx) in enumerate(DIRECTIONS):
        a, b = clips[d, 0], clips[d, 1]      # frame 1 is frame 0 shifted by (2 dy, 2 dx)
        sy, sx = 2 * dy, 2 * dx
        np.testing.assert_array_equal(b[:, max(sy, 0):16 + min(sy, 0), max(sx, 0):16 + min(sx, 0)],
                                      a[:, max(-sy, 0):16 + min(-sy, 0), max(-sx, 0):16 + min(-sx, 0)])
    np.testing.assert_array_equal(clips[:, 1], images)  # the middle frame is the image itself
    diffs = frame_differences(clips)
    assert diffs.shape == (8, 6, 16, 16)
    np.testing.assert_allclose(diffs[:, 3:], clips[:, 2].astype(np.float32) - clips[:, 1])


@needs_data
def test_two_stream_learns_on_real_cifar(cifar):
    images, labels, x = cifar
    x = x[:32]
    directions = np.arange(len(x)) % 4 * 2
    clips = moving_clips(x, directions, frames=4)
    frame, motion = Tensor(clips[:, 2]), Tensor(frame_differences(clips))
    y = directions // 2
    tinyconv.random.manual_seed(0)
    model = two_stream(num_classes=4, temporal_channels=9, width=1 / 8, input_size=32, dropout=0.0)

    def loss():
        s, t = model(frame, motion)
        return F.cross_entropy(s, y) + F.cross_entropy(t, y)

    first, last = loss_drops(model, loss, steps=8, lr=1e-3)
    assert last < 0.9 * first


# ---- siamese ----------------------------------------------------------------------------------------

def test_siamese_shared_weights_are_one_parameter_and_gradients_add(rng):
    tinyconv.random.manual_seed(0)
    shared = siamese_cifar(shared=True, widths=(4, 8), embed_dim=5).double()
    unshared = siamese_cifar(shared=False, widths=(4, 8), embed_dim=5).double()
    assert shared.branch_a is shared.branch_b
    assert shared.branch_a.embed.weight is shared.branch_b.embed.weight
    assert unshared.branch_a.embed.weight is not unshared.branch_b.embed.weight
    assert 2 * shared.num_parameters() == unshared.num_parameters()
    # Unshared net with both branches set to the shared weights: same function, and the shared
    # gradient is the sum of the two branch gradients.
    branch_state = {k[len("branch_a."):]: v for k, v in shared.state_dict().items() if k.startswith("branch_a.")}
    unshared.branch_a.load_state_dict(branch_state)
    unshared.branch_b.load_state_dict(branch_state)
    xa, xb = Tensor(rng.standard_normal((4, 3, 8, 8))), Tensor(rng.standard_normal((4, 3, 8, 8)))
    same = np.array([1, 0, 1, 0])
    for model in (shared, unshared):
        model.zero_grad()
        contrastive_loss(*model(xa, xb), same, margin=2.0).backward()
    ga, gb = dict(unshared.branch_a.named_parameters()), dict(unshared.branch_b.named_parameters())
    for name, p in shared.branch_a.named_parameters():
        np.testing.assert_allclose(p.grad, ga[name].grad + gb[name].grad, rtol=1e-9, atol=1e-12, err_msg=name)
    # With shared weights the embedding bias cancels in e_a - e_b, so its gradient is exactly 0
    # (the two uses contribute +g and -g); unshared, only b_a - b_b matters, and both get gradients.
    assert_all_grads(shared, exactly_zero=("branch_a.embed.bias",))
    assert_all_grads(unshared)


def test_siamese_shared_gradient_matches_finite_differences(rng):
    tinyconv.random.manual_seed(5)
    model = siamese_cifar(shared=True, widths=(2, 3), embed_dim=3).double()
    xa, xb = Tensor(rng.standard_normal((3, 3, 4, 4))), Tensor(rng.standard_normal((3, 3, 4, 4)))
    same = np.array([1, 0, 0])
    check_param_grad(model, ["branch_a.embed.weight", "branch_a.trunk.features.0.0.weight"],
                     lambda: contrastive_loss(*model(xa, xb), same, margin=3.0))


def test_contrastive_loss_value_and_gradient(rng):
    a, b = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    same = np.array([1, 0, 1, 0, 0, 1])
    margin = 2.5
    d = np.linalg.norm(a - b, axis=1)
    expected = 0.5 * np.mean(same * d ** 2 + (1 - same) * np.maximum(margin - d, 0) ** 2)
    assert contrastive_loss(Tensor(a), Tensor(b), same, margin).item() == pytest.approx(expected, rel=1e-9)
    assert (d < margin).sum() not in (0, 6)  # both sides of the hinge are exercised
    check_grad(lambda x, y: contrastive_loss(x, y, same, margin), a, b)
    np.testing.assert_allclose(pair_distance(Tensor(a), Tensor(b)).data, d, rtol=1e-6)


def test_make_pairs(rng):
    labels = np.repeat(np.arange(5), 20)
    i, j, same = make_pairs(labels, 400, rng)
    assert (i != j).all() and 0.4 < same.mean() < 0.6
    np.testing.assert_array_equal(same, labels[i] == labels[j])


@needs_data
def test_siamese_learns_on_real_cifar(cifar):
    images, labels, x = cifar
    i, j, same = make_pairs(labels, 32, np.random.default_rng(0))
    tinyconv.random.manual_seed(0)
    for shared in (True, False):
        model = siamese_cifar(shared=shared, widths=(8, 16), embed_dim=8)
        first, last = loss_drops(model, lambda: contrastive_loss(*model(Tensor(x[i]), Tensor(x[j])), same))
        assert last < 0.9 * first, shared


# ---- multi-scale -------------------------------------------------------------------------------------

def test_pyramids(rng):
    x = Tensor(rng.standard_normal((2, 3, 8, 8)))
    g = gaussian_pyramid(x, 3)
    assert [t.shape[2:] for t in g] == [(8, 8), (4, 4), (2, 2)]
    np.testing.assert_allclose(g[2].data, x.data.reshape(2, 3, 2, 4, 2, 4).mean(axis=(3, 5)))
    lap = laplacian_pyramid(x, 3)
    rebuilt = lap[2]
    for level in (1, 0):  # G_s = L_s + up(G_{s+1}) reconstructs the input exactly
        rebuilt = lap[level] + F.upsample_nearest(rebuilt, 2)
    np.testing.assert_allclose(rebuilt.data, x.data, atol=1e-12)
    with pytest.raises(ValueError, match="divisible"):
        gaussian_pyramid(Tensor(np.zeros((1, 1, 6, 6))), 3)


@pytest.mark.parametrize("dense", [True, False])
def test_multiscale_shapes_and_gradients(rng, dense):
    tinyconv.random.manual_seed(0)
    model = multiscale(num_classes=5, scales=3, widths=(4, 6), hidden=8, dense=dense)
    out = model(randn(rng, 2, 3, 16, 16))
    assert out.shape == ((2, 5, 16, 16) if dense else (2, 5))
    if dense:
        loss = pixel_cross_entropy(out, rng.integers(0, 5, (2, 16, 16)))
    else:
        loss = F.cross_entropy(out, np.array([0, 4]))
    loss.backward()
    assert_all_grads(model)
    # The same weights at every scale: the parameter count does not depend on the number of scales
    # beyond the classifier's input width.
    one = multiscale(num_classes=5, scales=1, widths=(4, 6), hidden=8, dense=dense)
    assert sum(p.size for p in model.features.parameters()) == sum(p.size for p in one.features.parameters())


@pytest.mark.parametrize("pyramid", ["laplacian", "gaussian"])
def test_multiscale_shared_weight_gradient_matches_finite_differences(rng, pyramid):
    tinyconv.random.manual_seed(6)
    model = MultiScaleNet(3, 2, scales=3, widths=(2, 2), hidden=3, pyramid=pyramid).double()
    x = Tensor(rng.standard_normal((2, 3, 8, 8)))
    labels = rng.integers(0, 2, (2, 8, 8))
    check_param_grad(model, ["features.0.weight", "features.2.weight", "features.0.bias"],
                     lambda: pixel_cross_entropy(model(x), labels))
    check_grad(lambda t: model(t), x.data)  # and through the pyramid to the input


@needs_data
def test_multiscale_learns_on_real_cifar(cifar):
    images, labels, x = cifar
    seg = border_contrast_labels(images[:16])
    tinyconv.random.manual_seed(0)
    model = multiscale(widths=(8, 8), hidden=16)
    first, last = loss_drops(model, lambda: pixel_cross_entropy(model(Tensor(x[:16])), seg), steps=12, lr=1e-2)
    assert last < 0.9 * first


# ---- DeViSE ---------------------------------------------------------------------------------------

def test_hinge_rank_loss_value_and_gradient(rng):
    scores = rng.standard_normal((5, 4)) * 0.1
    targets = np.array([0, 3, 1, 1, 2])
    expected = np.mean([sum(max(0.0, 0.1 - scores[i, t] + scores[i, j]) for j in range(4) if j != t)
                        for i, t in enumerate(targets)])
    assert hinge_rank_loss(Tensor(scores), targets).item() == pytest.approx(expected, rel=1e-9)
    check_grad(lambda s: hinge_rank_loss(s, targets), scores)


def test_devise_shapes_gradients_and_fixed_embeddings(rng):
    tinyconv.random.manual_seed(0)
    table = rng.standard_normal((10, 6))
    model = devise_cifar(table, widths=(4, 8))
    np.testing.assert_allclose(np.linalg.norm(model.label_embeddings.data, axis=1), 1.0, rtol=1e-6)
    assert all(p is not model.label_embeddings for p in model.parameters())  # a buffer, not learned
    x = randn(rng, 3, 3, 8, 8)
    assert model.embed(x).shape == (3, 6)
    scores = model(x)
    assert scores.shape == (3, 10) and model(x, labels=[0, 2, 5]).shape == (3, 3)
    np.testing.assert_allclose(model(x, labels=[2, 5]).data, scores.data[:, [2, 5]], rtol=1e-5, atol=1e-6)
    hinge_rank_loss(model(x, labels=np.arange(9)), np.array([0, 4, 8])).backward()
    assert_all_grads(model)


def test_devise_projection_gradient_matches_finite_differences(rng):
    tinyconv.random.manual_seed(7)
    model = DeViSE(ConvTrunk(3, (2, 3)), normalize_rows(rng.standard_normal((4, 3)))).double()
    x = Tensor(rng.standard_normal((3, 3, 4, 4)))
    targets = np.array([0, 2, 3])
    check_param_grad(model, ["projection.weight", "visual.features.0.0.weight"],
                     lambda: hinge_rank_loss(model(x) * 10.0, targets))


@needs_data
def test_devise_learns_on_real_cifar(cifar):
    images, labels, x = cifar
    table = normalize_rows(np.random.default_rng(0).standard_normal((10, 8)))
    tinyconv.random.manual_seed(0)
    model = devise_cifar(table, widths=(8, 16))
    first, last = loss_drops(model, lambda: hinge_rank_loss(model(Tensor(x)), labels), lr=3e-3)
    assert last < 0.9 * first
