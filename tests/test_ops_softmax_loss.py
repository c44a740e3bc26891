"""softmax / log_softmax and the losses cross_entropy and mse_loss.

References are written from the definitions in float64 on moderate logits; stability is checked
separately on logits around +-1000, where the naive formulas overflow. Cross-entropy with label
smoothing must match PyTorch's definition (checked against torch when it is installed).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from tinyconv import Tensor
from tinyconv.ops import loss, softmax
from tinyconv.testing import arrays, check_grad

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # overflow in exp would show here

NONEMPTY_SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
REDUCTIONS = ["mean", "sum", "none"]


def t(array):
    return Tensor(np.asarray(array, dtype=np.float64))


def _softmax_reference(x, axis):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


# ================================================================ softmax / log_softmax

@given(data=st.data(), in_shape=NONEMPTY_SHAPES)
def test_softmax_and_log_softmax_match_the_definition(data, in_shape):
    axis = data.draw(st.integers(-len(in_shape), len(in_shape) - 1))
    x = data.draw(arrays(in_shape, low=-5.0, high=5.0))
    p = softmax.softmax(t(x), axis=axis)
    np.testing.assert_allclose(p.data, _softmax_reference(x, axis), rtol=1e-12)
    np.testing.assert_allclose(p.data.sum(axis=axis), 1.0, rtol=1e-12)
    log_p = softmax.log_softmax(t(x), axis=axis)
    np.testing.assert_allclose(log_p.data, np.log(_softmax_reference(x, axis)), rtol=1e-12, atol=1e-12)


@given(data=st.data(), in_shape=NONEMPTY_SHAPES)
def test_softmax_gradients(data, in_shape):
    axis = data.draw(st.integers(-len(in_shape), len(in_shape) - 1))
    x = data.draw(arrays(in_shape, low=-3.0, high=3.0))
    check_grad(lambda a: softmax.softmax(a, axis=axis), x)
    check_grad(lambda a: softmax.log_softmax(a, axis=axis), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [1000.0, -1000.0])
def test_softmax_is_stable_for_huge_logits(dtype, offset):
    base = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
    x = Tensor((base + offset).astype(dtype), requires_grad=True)
    p = softmax.softmax(x, axis=1)
    log_p = softmax.log_softmax(x, axis=1)
    assert p.dtype == dtype and log_p.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p.data, _softmax_reference(base, 1), rtol=tol)
    np.testing.assert_allclose(log_p.data, np.log(_softmax_reference(base, 1)), rtol=tol, atol=tol)
    (p * np.arange(3.0).astype(dtype)).sum().backward()
    log_p.sum().backward()
    assert np.all(np.isfinite(x.grad))
    # The shift by `offset` cancels: gradients equal those at the unshifted logits.
    y = Tensor(base.astype(dtype), requires_grad=True)
    (softmax.softmax(y, axis=1) * np.arange(3.0).astype(dtype)).sum().backward()
    softmax.log_softmax(y, axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, y.grad, rtol=tol, atol=tol)


def test_log_softmax_of_far_apart_logits_is_exact():
    np.testing.assert_array_equal(softmax.log_softmax(t([[1000.0, 0.0]])).data, [[0.0, -1000.0]])
    check_grad(lambda a: softmax.log_softmax(a), np.array([[1000.0, 0.0, 999.5]]))


@pytest.mark.torch
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_matches_torch(axis, torch, rng):
    x = rng.normal(0, 3, (3, 4, 2))
    g = rng.normal(size=x.shape)
    for ours_fn, theirs_fn in ((softmax.softmax, torch.softmax), (softmax.log_softmax, torch.log_softmax)):
        tx = torch.tensor(x, requires_grad=True)
        theirs = theirs_fn(tx, dim=axis)
        ox = Tensor(x, requires_grad=True)
        ours = ours_fn(ox, axis=axis)
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
        theirs.backward(torch.tensor(g))
        ours.backward(g)
        np.testing.assert_allclose(ox.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-15)


# ================================================================ cross_entropy

@st.composite
def classification(draw, low=-4.0, high=4.0):
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    logits = draw(arrays((n, k), low=low, high=high))
    targets = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=np.int64)
    return logits, targets


def _cross_entropy_reference(x, targets, reduction, smoothing):
    """loss_n = -sum_k q_nk log p_nk, q = (1 - eps) onehot + eps / K, p = e^x / sum e^x."""
    n, k = x.shape
    losses = []
    for row, target in zip(x, targets):
        log_p = np.log(np.exp(row) / np.exp(row).sum())
        q = np.full(k, smoothing / k)
        q[target] += 1.0 - smoothing
        losses.append(-(q * log_p).sum())
    losses = np.array(losses)
    return {"none": losses, "sum": losses.sum(), "mean": losses.mean()}[reduction]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.35])
@given(problem=classification())
def test_cross_entropy_matches_the_definition(reduction, smoothing, problem):
    x, targets = problem
    y = loss.cross_entropy(t(x), targets, reduction=reduction, label_smoothing=smoothing)
    expected = _cross_entropy_reference(x, targets, reduction, smoothing)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@given(problem=classification())
def test_cross_entropy_gradient(reduction, smoothing, problem):
    x, targets = problem
    check_grad(lambda a: loss.cross_entropy(a, targets, reduction=reduction, label_smoothing=smoothing), x)


def test_cross_entropy_with_repeated_targets_and_tensor_targets():
    x = np.array([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3], [3.0, 0.0, -3.0]])
    targets = Tensor(np.array([2, 2, 2]))
    expected = _cross_entropy_reference(x, targets.data, "mean", 0.0)
    np.testing.assert_allclose(loss.cross_entropy(t(x), targets).data, expected, rtol=1e-12)
    check_grad(lambda a: loss.cross_entropy(a, targets), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_and_keeps_dtype(dtype):
    x = Tensor(np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 999.0]], dtype=dtype), requires_grad=True)
    y = loss.cross_entropy(x, [1, 2], label_smoothing=0.1)
    assert y.dtype == dtype and np.isfinite(y.item())
    y.backward()
    assert x.grad.dtype == dtype and np.all(np.isfinite(x.grad))
    # row 0: p = (1, 0, 0); row 1: p ~= (0, 0.731, 0.269); grad = (p - q) / N
    q = np.array([[0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3], [0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3]])
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))]])
    np.testing.assert_allclose(x.grad, (p - q) / 2, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_cross_entropy_matches_torch(reduction, smoothing, torch, rng):
    x = rng.normal(0, 2, (6, 5))
    targets = rng.integers(0, 5, 6)
    tx = torch.tensor(x, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(tx, torch.tensor(targets), reduction=reduction,
                                               label_smoothing=smoothing)
    ox = Tensor(x, requires_grad=True)
    ours = loss.cross_entropy(ox, targets, reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    g = rng.normal(size=ours.shape)
    theirs.backward(torch.tensor(g))
    ours.backward(g)
    np.testing.assert_allclose(ox.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("logits_shape,targets,error,pattern", [
    ((3, 4), [0, 4, 1], ValueError, r"cross_entropy: targets must lie in \[0, 4\), got range \[0, 4\]"),
    ((3, 4), [0, -1, 1], ValueError, r"cross_entropy: targets must lie in \[0, 4\), got range \[-1, 1\]"),
    ((3, 4), [0.0, 1.0, 2.0], TypeError, r"cross_entropy: targets must be integer.*float64"),
    ((3, 4), [0, 1], ValueError, r"cross_entropy: targets must have shape \(3,\).*\(3, 4\).*\(2,\)"),
    ((3, 4), [[0], [1], [2]], ValueError, r"cross_entropy: targets must have shape \(3,\).*\(3, 1\)"),
    ((4,), [1], ValueError, r"cross_entropy: logits must be \(N, K\), got shape \(4,\)"),
    ((2, 3, 4), [0, 1], ValueError, r"cross_entropy: logits must be \(N, K\), got shape \(2, 3, 4\)"),
])
def test_cross_entropy_rejects_bad_targets_and_logits(logits_shape, targets, error, pattern):
    with pytest.raises(error, match=pattern):
        loss.cross_entropy(Tensor(np.zeros(logits_shape)), np.array(targets))


def test_cross_entropy_rejects_bad_options():
    x, targets = Tensor(np.zeros((2, 3))), [0, 1]
    with pytest.raises(ValueError, match=r"cross_entropy: reduction must be one of .*'avg'"):
        loss.cross_entropy(x, targets, reduction="avg")
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"):
        loss.cross_entropy(x, targets, label_smoothing=1.5)


# ================================================================ mse_loss

@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(data=st.data(), in_shape=NONEMPTY_SHAPES)
def test_mse_loss_matches_the_definition_and_gradient(reduction, data, in_shape):
    x, target = data.draw(arrays(in_shape)), data.draw(arrays(in_shape))
    squared = np.array([(a - b) * (a - b) for a, b in zip(x.flat, target.flat)]).reshape(in_shape)
    expected = {"none": squared, "sum": squared.sum(), "mean": squared.sum() / squared.size}[reduction]
    y = loss.mse_loss(t(x), t(target), reduction=reduction)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-15)
    check_grad(lambda a, b: loss.mse_loss(a, b, reduction=reduction), x, target)


def test_mse_loss_accepts_an_array_target_and_keeps_float32():
    x = Tensor(np.array([1.0, 2.0, 4.0], np.float32), requires_grad=True)
    y = loss.mse_loss(x, [1.0, 0.0, 1.0])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.item(), 13.0 / 3, rtol=1e-6)
    y.backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [0.0, 4.0 / 3, 2.0], rtol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_torch(reduction, torch, rng):
    x, target = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    tx, tt = torch.tensor(x, requires_grad=True), torch.tensor(target, requires_grad=True)
    theirs = torch.nn.functional.mse_loss(tx, tt, reduction=reduction)
    ox, ot = Tensor(x, requires_grad=True), Tensor(target, requires_grad=True)
    ours = loss.mse_loss(ox, ot, reduction=reduction)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    g = rng.normal(size=ours.shape)
    theirs.backward(torch.tensor(g))
    ours.backward(g)
    np.testing.assert_allclose(ox.grad, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ot.grad, tt.grad.numpy(), rtol=1e-10)


def test_mse_loss_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"mse_loss: input shape \(2, 3\) and target shape \(3, 2\) differ"):
        loss.mse_loss(Tensor(np.zeros((2, 3))), Tensor(np.zeros((3, 2))))
    with pytest.raises(ValueError, match=r"mse_loss: reduction must be one of .*'max'"):
        loss.mse_loss(Tensor(np.zeros(2)), Tensor(np.zeros(2)), reduction="max")
