"""The autograd core: graph recording, backward, accumulation, graph freeing, no_grad, dtypes.

Op-specific forward/gradient checks live in tests/test_ops_*.py; here the ops are only vehicles
for properties of ``Tensor``, ``Function`` and ``backward`` themselves.
"""
import gc
import threading
import weakref

import numpy as np
import pytest

from tinyconv import Tensor, enable_grad, is_grad_enabled, no_grad
from tinyconv.autograd import Function
from tinyconv.ops import activation, elementwise, linear, reduction
from tinyconv.testing import check_grad


def leaf(values, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ---------------------------------------------------------------- depth and fan-out

def test_chain_20000_ops_deep_backprops_without_recursion_error():
    x = leaf([0.5, -1.0])
    y = x
    for i in range(20_000):
        y = y * 1.0001 if i % 2 else y + 0.25
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(2, 1.0001 ** 10_000), rtol=1e-9)


def test_chain_20000_ops_deep_can_be_dropped_without_backward():
    """Freeing an un-differentiated deep graph must not overflow the C stack either."""
    x = leaf([1.0])
    y = x
    for _ in range(20_000):
        y = y + 1.0
    del y
    gc.collect()


def test_fan_out_accumulates_every_use():
    x = leaf([0.3, -0.7, 1.2])
    y = x * x + x.exp() + 3.0 * x  # x used by four edges (x*x counts twice)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + np.exp(x.data) + 3.0, rtol=1e-12)


def test_same_tensor_on_both_sides_of_an_op():
    x = leaf([1.5, -2.0])
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    x.zero_grad()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_diamond_graph_waits_for_all_consumers_before_propagating():
    """a feeds both b = exp(a) and the final sum directly; a's gradient must include both paths
    before it is passed on to x (a topological-order bug gives only one of them)."""

    def fn(x):
        a = x * 2.0
        b = a.exp()
        c = b * a
        return c + a + (c * b).tanh()

    check_grad(fn, np.array([[0.1, -0.4], [0.3, 0.2]]))


def test_shared_weight_in_unrolled_loop_gets_the_sum_of_contributions(rng):
    """A recurrent cell unrolled 6 steps with one weight matrix (an RCNN/RNN pattern)."""

    def unrolled(w, u, h0, xs):
        h = h0
        for t in range(xs.shape[0]):
            h = activation.tanh(linear.matmul(h, w) + linear.matmul(xs[t], u))
        return h

    w = rng.normal(0, 0.5, (3, 3))
    u = rng.normal(0, 0.5, (2, 3))
    h0 = rng.normal(0, 0.5, (1, 3))
    xs = rng.normal(0, 1.0, (6, 1, 2))
    check_grad(unrolled, w, u, h0, xs)

    # The weight's gradient is the sum of one contribution per step: compare with a copy of the
    # net whose every step has its own weight leaf.
    shared = leaf(w)
    unrolled(shared, Tensor(u), Tensor(h0), Tensor(xs)).sum().backward()
    per_step = [leaf(w) for _ in range(6)]
    h = Tensor(h0)
    for t in range(6):
        h = activation.tanh(linear.matmul(h, per_step[t]) + linear.matmul(Tensor(xs[t]), Tensor(u)))
    h.sum().backward()
    np.testing.assert_allclose(shared.grad, sum(p.grad for p in per_step), rtol=1e-12, atol=1e-15)


def test_gradients_of_two_backward_passes_accumulate_in_leaves():
    x = leaf([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3.0 + 2 * x.data)
    x.zero_grad()
    assert x.grad is None


# ---------------------------------------------------------------- freeing the graph

def test_graph_is_freed_after_backward_and_second_backward_raises():
    x = leaf([1.0, 2.0])
    y = (x * 2.0).exp().sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"second time.*retain_graph=True"):
        y.backward()


def test_backward_frees_saved_intermediates():
    x = leaf(np.ones(4))
    hidden = x * 2.0
    probe = weakref.ref(hidden)
    loss = hidden.exp().sum()
    del hidden
    assert probe() is not None  # kept alive by the graph (exp saved it as an input)
    loss.backward()
    gc.collect()
    assert probe() is None


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = leaf([0.5, -1.5])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, 2 * first)
    y.backward()  # the last one may free the graph ...
    np.testing.assert_allclose(x.grad, 3 * first)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()  # ... after which it is gone


# ---------------------------------------------------------------- no_grad, detach, leaves

def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with no_grad():
        y = (x * 2.0).exp() + x
        assert not is_grad_enabled()
    assert y.creator is None and not y.requires_grad and y.is_leaf
    np.testing.assert_allclose(y.data, np.exp(2 * x.data) + x.data)


def test_no_grad_nests_and_restores_even_on_error():
    x = leaf([1.0])
    assert is_grad_enabled()
    with no_grad():
        with no_grad():
            assert not is_grad_enabled()
        assert not is_grad_enabled()  # leaving the inner block keeps the outer one's state
        with enable_grad():
            z = x * 2.0
            assert z.requires_grad and z.creator is not None
        assert not (x * 2.0).requires_grad
    assert is_grad_enabled()
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("boom")
    assert is_grad_enabled()
    assert (x * 2.0).requires_grad


def test_no_grad_is_per_thread():
    seen = []
    with no_grad():
        worker = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        worker.start()
        worker.join()
    assert seen == [True]


def test_detach_cuts_the_graph_and_shares_data():
    x = leaf([1.0, 2.0])
    w = leaf([3.0, 4.0])
    h = x * w
    d = h.detach()
    assert d.creator is None and not d.requires_grad
    assert np.shares_memory(d.data, h.data)
    (d * w).sum().backward()
    assert x.grad is None  # nothing flowed through h's graph
    np.testing.assert_allclose(w.grad, h.data)


def test_ops_on_tensors_that_do_not_require_grad_record_nothing():
    a = Tensor(np.ones(3))
    y = (a * 2.0).exp()
    assert not y.requires_grad and y.creator is None


def test_int_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="int64"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="bool"):
        Tensor(np.array([True, False]), requires_grad=True)


def test_non_float_outputs_of_a_recorded_op_are_not_differentiable():
    """Casting a trainable tensor to int (for labels, argmax-like bookkeeping) gives a plain,
    non-differentiable int tensor, as in PyTorch, instead of failing."""
    x = leaf([1.7, -2.2])
    i = x.astype(np.int64)
    assert i.dtype == np.int64 and not i.requires_grad and i.is_leaf
    np.testing.assert_array_equal(i.data, [1, -2])
    y = (x * i).sum()  # the int tensor takes part as a constant
    y.backward()
    np.testing.assert_array_equal(x.grad, [1.0, -2.0])


# ---------------------------------------------------------------- backward's contract

def test_backward_on_non_scalar_needs_an_explicit_grad():
    x = leaf(np.ones((2, 3)))
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"single-element.*\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        y.backward(np.ones(3))
    y.backward(np.full((2, 3), 0.5))
    np.testing.assert_allclose(x.grad, np.ones((2, 3)))


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(1)).backward()


def test_backward_on_a_leaf_gives_the_seed_gradient():
    x = leaf([2.0])
    x.backward()
    np.testing.assert_array_equal(x.grad, [1.0])
    seed = np.array([3.0])
    x.backward(seed)
    np.testing.assert_array_equal(x.grad, [4.0])
    x.grad += 1.0
    np.testing.assert_array_equal(seed, [3.0])  # the leaf's grad is its own array


def test_broadcasting_grads_have_each_inputs_shape():
    a = leaf(np.ones((3, 1)))
    b = leaf(np.ones(4))
    s = leaf(2.0)  # 0-d
    ((a + b) * s).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,) and s.grad.shape == ()
    np.testing.assert_allclose(a.grad, np.full((3, 1), 8.0))
    np.testing.assert_allclose(b.grad, np.full(4, 6.0))
    np.testing.assert_allclose(s.grad, 24.0)


def test_retain_grad_keeps_an_intermediate_gradient():
    x = leaf([1.0, -2.0])
    h = (x * 3.0).retain_grad()
    other = x * 2.0  # not retained
    loss = (h * h).sum() + other.sum()
    loss.retain_grad()
    loss.backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    np.testing.assert_allclose(loss.grad, 1.0)
    assert other.grad is None
    np.testing.assert_allclose(x.grad, 3 * 2 * h.data + 2.0)


def test_leaf_grads_are_independent_writable_arrays():
    """Add's backward hands the same array to both inputs; each leaf must still own its grad."""
    a, b = leaf(np.ones(3)), leaf(np.ones(3))
    (a + b).sum().backward()  # Sum's backward also gives a read-only broadcast view
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    a.grad += 1.0
    np.testing.assert_array_equal(b.grad, np.ones(3))
    np.testing.assert_array_equal(a.grad, np.full(3, 2.0))


def test_retained_grads_are_independent_writable_arrays():
    x = leaf(np.ones(3))
    p, q = (x * 1.0).retain_grad(), (x * 1.0).retain_grad()
    (p + q).sum().backward()
    assert not np.shares_memory(p.grad, q.grad)
    p.grad *= 5.0  # writable, and q's grad does not change
    np.testing.assert_array_equal(q.grad, np.ones(3))


# ---------------------------------------------------------------- dtypes

SCALAR_OPS = {
    "x * 2.0": lambda x: x * 2.0,
    "2.0 * x": lambda x: 2.0 * x,
    "x + 1": lambda x: x + 1,
    "2.0 - x": lambda x: 2.0 - x,
    "x - 0.5": lambda x: x - 0.5,
    "x / 3.0": lambda x: x / 3.0,
    "3.0 / x": lambda x: 3.0 / x,
    "x ** 2": lambda x: x ** 2,
    "x ** 0.5": lambda x: x ** 0.5,
    "2.0 ** x": lambda x: 2.0 ** x,
    "-x": lambda x: -x,
    "maximum(x, 0.5)": lambda x: elementwise.maximum(x, 0.5),
    "mean": lambda x: x.mean(),
    "var": lambda x: x.var(axis=0),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", SCALAR_OPS.values(), ids=SCALAR_OPS.keys())
def test_scalar_ops_keep_the_tensors_float_dtype(op, dtype):
    x = leaf([0.5, 1.25, 2.0], dtype=dtype)
    y = op(x)
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == dtype


def test_python_floats_default_to_float32():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(1.5).dtype == np.float32
    assert Tensor(np.ones(2)).dtype == np.float64  # numpy arrays keep theirs


def test_leaf_grads_have_the_leafs_dtype_in_mixed_precision():
    """float32 * float64 promotes to float64 (numpy's rule), but the float32 leaf's gradient must
    still be float32 so an optimizer step keeps its parameters float32."""
    w = leaf([1.0, 2.0], dtype=np.float32)
    x = leaf([3.0, 4.0], dtype=np.float64)
    y = (w * x).sum()
    assert y.dtype == np.float64
    y.backward()
    assert w.grad.dtype == np.float32 and x.grad.dtype == np.float64
    np.testing.assert_allclose(w.grad, [3.0, 4.0])


# ---------------------------------------------------------------- numpy interplay

NUMPY_LEFT = {
    "+": (lambda a, t: a + t, lambda a, x: a + x),
    "-": (lambda a, t: a - t, lambda a, x: a - x),
    "*": (lambda a, t: a * t, lambda a, x: a * x),
    "/": (lambda a, t: a / t, lambda a, x: a / x),
    "**": (lambda a, t: a ** t, lambda a, x: a ** x),
    "@": (lambda a, t: a @ t, lambda a, x: a @ x),
}


@pytest.mark.parametrize("op,reference", NUMPY_LEFT.values(), ids=NUMPY_LEFT.keys())
def test_numpy_array_on_the_left_gives_a_tensor(op, reference):
    a = np.array([[1.5, 2.0], [0.5, 3.0]])
    t = leaf([[0.5, 1.0], [2.0, 1.5]])
    y = op(a, t)
    assert isinstance(y, Tensor) and y.requires_grad
    np.testing.assert_allclose(y.data, reference(a, t.data))
    y.sum().backward()
    assert t.grad is not None and t.grad.shape == t.shape


# ---------------------------------------------------------------- Function contract

class _Square(Function):
    """y = x^2; ``factor`` scales the backward (2 is right)."""

    def __init__(self, factor=2.0):
        self.factor = factor

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return gy * self.factor * self.x


def test_check_grad_accepts_a_correct_backward():
    check_grad(lambda x: _Square()(x), np.array([0.3, -1.2, 2.0]))


@pytest.mark.parametrize("size", [5, 200], ids=["per-element", "random-direction"])
def test_check_grad_catches_a_wrong_backward(size, rng):
    x = rng.uniform(0.5, 1.5, size)
    with pytest.raises(AssertionError, match="gradient of input 0"):
        check_grad(lambda t: _Square(factor=1.0)(t), x)  # the 2 is missing
    with pytest.raises(AssertionError):
        check_grad(lambda t: _Square(factor=2.0 + 1e-3)(t), x)  # slightly off still fails


def test_check_grad_catches_a_gradient_routed_to_the_wrong_input():
    class SwappedMul(Function):
        def forward(self, a, b):
            self.a, self.b = a, b
            return a * b

        def backward(self, gy):
            return gy * self.a, gy * self.b  # swapped

    with pytest.raises(AssertionError, match="input"):
        check_grad(lambda a, b: SwappedMul()(a, b), np.array([1.0, 2.0]), np.array([3.0, -1.0]))


def test_check_grad_gives_every_input_as_a_tensor():
    """fn may call Tensor methods on any input, not only the one being perturbed."""
    check_grad(lambda a, b: a.exp() * b.tanh() + b.sum(), np.array([0.1, 0.2]), np.array([0.3, -0.4]))


def test_backward_returning_a_wrongly_shaped_gradient_is_reported():
    class BadShape(Function):
        def forward(self, x):
            return x.sum()

        def backward(self, gy):
            return np.ones(1)

    x = leaf(np.ones(3))
    with pytest.raises(RuntimeError, match=r"BadShape.*\(1,\).*\(3,\)"):
        BadShape()(x).backward()


def test_backward_returning_too_few_gradients_is_reported():
    class TooFew(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, gy):
            return gy

    with pytest.raises(RuntimeError, match="TooFew.*1 gradients for 2 inputs"):
        TooFew()(leaf([1.0]), leaf([2.0])).backward()


def test_needs_input_grad_tells_forward_which_inputs_are_trainable():
    seen = []

    class Probe(Function):
        def forward(self, a, b):
            seen.append(self.needs_input_grad)
            return a * b

        def backward(self, gy):
            return gy, gy

    Probe()(leaf([1.0]), Tensor(np.ones(1)))
    with no_grad():
        Probe()(leaf([1.0]), leaf([1.0]))
    assert seen == [(True, False), (False, False)]


def test_unused_output_of_a_multi_output_function_gets_zero_gradient():
    class TwoWay(Function):
        def forward(self, x):
            return x * 2.0, x * 3.0

        def backward(self, g2, g3):
            return g2 * 2.0 + g3 * 3.0

    x = leaf([1.0, 1.0])
    _, y3 = TwoWay()(x)
    reduction.sum(y3).backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
