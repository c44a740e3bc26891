"""Elementwise arithmetic, unary math, activations, matmul/linear and reductions.

For every op: (1) the forward against a reference written from the op's definition (and against
PyTorch, marked ``torch``), (2) a float64 finite-difference gradient check over hypothesis shapes,
with inputs built away from kinks (|x| = 0, ties, non-positive bases of log/sqrt/pow), and
(3) bad inputs fail with an error that names the op and the offending shapes or dtypes.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from tinyconv import Tensor
from tinyconv.ops import activation, elementwise, linear, reduction
from tinyconv.testing import arrays, check_grad, distinct_arrays

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # no overflow/invalid/div-by-0

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
NONEMPTY_SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together, in either order (one may be 0-d or have fewer axes)."""
    shape = draw(SHAPES)
    other = draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=3, max_side=4))
    return (shape, other) if draw(st.booleans()) else (other, shape)


def away_from_zero(shape, low=0.3, high=2.0):
    """Arrays with |x| in [low, high] and random signs: no kink of |x| or relu, no division by ~0."""
    magnitudes = arrays(shape, low=low, high=high)
    signs = hnp.arrays(np.bool_, shape)
    return st.tuples(magnitudes, signs).map(lambda ms: np.where(ms[1], -ms[0], ms[0]))


@st.composite
def separated_pair(draw, shapes):
    """Arrays for a broadcast pair whose values are all distinct and >= 4/127 apart (no ties)."""
    shape_a, shape_b = shapes
    n_a, n_b = int(np.prod(shape_a)), int(np.prod(shape_b))
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).permutation(np.linspace(-2.0, 2.0, n_a + n_b))
    return values[:n_a].reshape(shape_a), values[n_a:].reshape(shape_b)


def t(array):
    return Tensor(np.asarray(array, dtype=np.float64))


# ================================================================ binary elementwise ops

def any_pair(shapes):
    return st.tuples(arrays(shapes[0]), arrays(shapes[1]))


BINARY = {
    # name: (tinyconv op, reference from the definition, torch op name, input strategy for a shape pair)
    "add": (elementwise.add, lambda a, b: a + b, "add", any_pair),
    "sub": (elementwise.sub, lambda a, b: a + -1.0 * b, "sub", any_pair),
    "mul": (elementwise.mul, lambda a, b: a * b, "mul", any_pair),
    "div": (elementwise.div, lambda a, b: a * (1.0 / b), "div",
            lambda s: st.tuples(arrays(s[0]), away_from_zero(s[1]))),
    "pow": (elementwise.pow, lambda a, b: np.exp(b * np.log(a)), "pow",
            lambda s: st.tuples(arrays(s[0], low=0.3, high=2.0), arrays(s[1]))),
    "maximum": (elementwise.maximum, lambda a, b: np.where(a > b, a, b), "maximum", separated_pair),
    "minimum": (elementwise.minimum, lambda a, b: np.where(a < b, a, b), "minimum", separated_pair),
}


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data(), shapes=broadcast_pair())
def test_binary_forward_matches_definition(name, data, shapes):
    op, reference, _, inputs = BINARY[name]
    a, b = data.draw(inputs(shapes))
    y = op(t(a), t(b))
    expected = reference(*np.broadcast_arrays(a, b))
    assert y.shape == expected.shape and y.dtype == np.float64
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data(), shapes=broadcast_pair())
def test_binary_gradient(name, data, shapes):
    op, _, _, inputs = BINARY[name]
    a, b = data.draw(inputs(shapes))
    check_grad(op, a, b)


@pytest.mark.torch
@pytest.mark.parametrize("name", BINARY)
def test_binary_matches_torch(name, torch, rng):
    op, _, torch_name, _ = BINARY[name]
    a = rng.uniform(0.3, 2.0, (2, 1, 3))
    b = rng.uniform(-2.0, 2.0, (4, 1))
    b[np.abs(b) < 0.3] = 0.5
    ours = op(t(a), t(b))
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    theirs = getattr(torch, torch_name)(ta, tb)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    g = rng.normal(size=theirs.shape)
    theirs.backward(torch.tensor(g))
    xa, xb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    op(xa, xb).backward(g)
    np.testing.assert_allclose(xa.grad, ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(xb.grad, tb.grad.numpy(), rtol=1e-10)


def test_maximum_minimum_split_the_gradient_evenly_on_ties():
    """Convention (as torch.maximum/minimum): where a == b each input gets half the gradient."""
    for op in (elementwise.maximum, elementwise.minimum):
        a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
        b = Tensor(np.array([2.0, 2.0, 2.0]), requires_grad=True)
        op(a, b).sum().backward()
        a_wins = [0.0, 0.5, 1.0] if op is elementwise.maximum else [1.0, 0.5, 0.0]
        np.testing.assert_array_equal(a.grad, a_wins)
        np.testing.assert_array_equal(b.grad, 1.0 - np.array(a_wins))


@pytest.mark.parametrize("op", [elementwise.add, elementwise.sub, elementwise.mul, elementwise.div,
                                elementwise.maximum])
def test_binary_ops_reject_shapes_that_do_not_broadcast(op):
    with pytest.raises(ValueError, match=rf"{op.__name__}: shapes \(2, 3\) and \(4,\) do not broadcast"):
        op(Tensor(np.ones((2, 3))), Tensor(np.ones(4)))


# ---------------------------------------------------------------- pow's three forms

@pytest.mark.parametrize("exponent", [2, 3, -1, 0.5, 2.5, -1.5])
@given(data=st.data(), shape=SHAPES)
def test_pow_tensor_to_scalar(exponent, data, shape):
    # Integer exponents are smooth for every base except 0 when negative; others need base > 0.
    x = data.draw(away_from_zero(shape) if float(exponent).is_integer() else arrays(shape, low=0.3, high=2.0))
    y = t(x) ** exponent
    np.testing.assert_allclose(y.data, x ** float(exponent), rtol=1e-12)
    check_grad(lambda a: a ** exponent, x)


@pytest.mark.parametrize("base", [2.0, 0.5, np.e])
@given(x=arrays(SHAPES))
def test_pow_scalar_to_tensor(base, x):
    y = base ** t(x)
    np.testing.assert_allclose(y.data, np.exp(x * np.log(base)), rtol=1e-12)
    check_grad(lambda a: base ** a, x)


def test_pow_of_a_constant_negative_base_to_an_integer_is_differentiable():
    """Only the base's gradient is needed, so log(base) of a negative base is never taken."""
    x = Tensor(np.array([-1.5, 2.0]), requires_grad=True)
    (x ** 3).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * x.data ** 2)


# ================================================================ unary math and activations

def _sigmoid_reference(x):
    return 1.0 / (1.0 + np.exp(-x))


def _tanh_reference(x):
    return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))


UNARY = {
    # name: (op, reference from the definition, input strategy for a shape, torch callable)
    "neg": (elementwise.neg, lambda x: 0.0 - x, arrays, lambda T, x: -x),
    "exp": (elementwise.exp, lambda x: np.e ** x, arrays, lambda T, x: T.exp(x)),
    "log": (elementwise.log, None, lambda s: arrays(s, low=0.1, high=3.0), lambda T, x: T.log(x)),
    "sqrt": (elementwise.sqrt, None, lambda s: arrays(s, low=0.1, high=3.0), lambda T, x: T.sqrt(x)),
    "abs": (elementwise.abs, lambda x: np.where(x < 0, -x, x), away_from_zero, lambda T, x: T.abs(x)),
    "relu": (activation.relu, lambda x: np.where(x > 0, x, 0.0), away_from_zero,
             lambda T, x: T.relu(x)),
    "leaky_relu": (activation.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), away_from_zero,
                   lambda T, x: T.nn.functional.leaky_relu(x, 0.01)),
    "leaky_relu_0.2": (lambda x: activation.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                       away_from_zero, lambda T, x: T.nn.functional.leaky_relu(x, 0.2)),
    "sigmoid": (activation.sigmoid, _sigmoid_reference, lambda s: arrays(s, low=-4.0, high=4.0),
                lambda T, x: T.sigmoid(x)),
    "tanh": (activation.tanh, _tanh_reference, lambda s: arrays(s, low=-4.0, high=4.0),
             lambda T, x: T.tanh(x)),
}
# log and sqrt are checked through their inverses, which are independent of the op's formula.
INVERSES = {"log": np.exp, "sqrt": np.square}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data(), shape=SHAPES)
def test_unary_forward_matches_definition(name, data, shape):
    op, reference, inputs, _ = UNARY[name]
    x = data.draw(inputs(shape))
    y = op(t(x))
    assert y.shape == x.shape and y.dtype == np.float64
    if reference is None:
        np.testing.assert_allclose(INVERSES[name](y.data), x, rtol=1e-12)
    else:
        np.testing.assert_allclose(y.data, reference(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data(), shape=SHAPES)
def test_unary_gradient(name, data, shape):
    op, _, inputs, _ = UNARY[name]
    check_grad(op, data.draw(inputs(shape)))


@pytest.mark.torch
@pytest.mark.parametrize("name", UNARY)
def test_unary_matches_torch(name, torch, rng):
    op, _, _, torch_op = UNARY[name]
    x = rng.uniform(0.2, 3.0, (3, 4)) * np.where(name in ("log", "sqrt"), 1.0, rng.choice([-1, 1], (3, 4)))
    tx = torch.tensor(x, requires_grad=True)
    theirs = torch_op(torch, tx)
    ours = Tensor(x, requires_grad=True)
    y = op(ours)
    np.testing.assert_allclose(y.data, theirs.detach().numpy(), rtol=1e-12)
    g = rng.normal(size=x.shape)
    theirs.backward(torch.tensor(g))
    y.backward(g)
    np.testing.assert_allclose(ours.grad, tx.grad.numpy(), rtol=1e-10)


def test_subgradient_at_zero_is_zero_for_relu_and_abs():
    for op in (activation.relu, elementwise.abs):
        x = Tensor(np.zeros(2), requires_grad=True)
        op(x).sum().backward()
        np.testing.assert_array_equal(x.grad, [0.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_saturate_without_overflow(dtype):
    x = Tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=dtype), requires_grad=True)
    s = activation.sigmoid(x)
    np.testing.assert_allclose(s.data, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-20)
    assert s.dtype == dtype
    (s + activation.tanh(x)).sum().backward()
    assert np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(x.grad[[0, -1]], 0.0, atol=1e-20)


@pytest.mark.parametrize("op", [elementwise.exp, elementwise.log, elementwise.sqrt, elementwise.abs,
                                activation.relu, activation.sigmoid, activation.tanh,
                                activation.leaky_relu])
def test_unary_ops_keep_float32(op):
    x = Tensor(np.array([0.5, 1.5], dtype=np.float32), requires_grad=True)
    y = op(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


# ================================================================ scalars and int tensors

def test_int_tensor_with_float_scalar_promotes_like_numpy():
    """A Python scalar takes the tensor's dtype only when that loses nothing (numpy 2's rule)."""
    i = Tensor(np.array([1, 2, 3]))
    np.testing.assert_allclose((i * 0.5).data, [0.5, 1.0, 1.5])
    np.testing.assert_allclose((i ** 0.5).data, np.sqrt([1.0, 2.0, 3.0]))
    np.testing.assert_allclose((1.5 - i).data, [0.5, -0.5, -1.5])
    assert (i * 2).dtype == np.int64 and (i * 2).data.tolist() == [2, 4, 6]
    x = Tensor(np.ones(2, np.float32))
    assert (x * 3).dtype == np.float32 and (x + True).dtype == np.float32


def test_list_operands_take_the_tensors_dtype():
    x = Tensor(np.array([1.0, 2.0], np.float32))
    y = x + [0.5, 1.5]
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, [1.5, 3.5])
    np.testing.assert_array_equal(([3.0, 3.0] - x).data, [2.0, 1.0])


# ================================================================ matmul

@st.composite
def matmul_shapes(draw):
    """Shapes (a, b) for matmul: 1-D or matrices, with broadcast batch axes on either side."""
    batches = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    batch_a, batch_b = batches.input_shapes
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    a_vec, b_vec = draw(st.booleans()), draw(st.booleans())
    return ((k,) if a_vec else batch_a + (n, k)), ((k,) if b_vec else batch_b + (k, m))


def _matmul_reference(a, b):
    """sum_k a[..., i, k] b[..., k, j] written out with broadcasting; 1-D operands promoted."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    y = (a2[..., :, :, None] * b2[..., None, :, :]).sum(axis=-2)
    if a.ndim == 1:
        y = y[..., 0, :]
    if b.ndim == 1:
        y = y[..., 0]
    return y


@given(data=st.data(), shapes=matmul_shapes())
def test_matmul_forward_matches_definition(data, shapes):
    a, b = data.draw(arrays(shapes[0])), data.draw(arrays(shapes[1]))
    y = linear.matmul(t(a), t(b))
    expected = _matmul_reference(a, b)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


@given(data=st.data(), shapes=matmul_shapes())
def test_matmul_gradient(data, shapes):
    a, b = data.draw(arrays(shapes[0])), data.draw(arrays(shapes[1]))
    check_grad(linear.matmul, a, b)


@pytest.mark.parametrize("shape_a,shape_b", [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)),
                                             ((3,), (4, 3, 2)), ((4, 2, 3), (3,)),
                                             ((2, 1, 2, 3), (5, 3, 4)), ((2, 3), (3, 4))])
def test_matmul_gradient_on_every_operand_rank(shape_a, shape_b, rng):
    check_grad(linear.matmul, rng.normal(size=shape_a), rng.normal(size=shape_b))


@pytest.mark.torch
def test_matmul_matches_torch(torch, rng):
    a, b = rng.normal(size=(2, 1, 3, 4)), rng.normal(size=(5, 4, 2))
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    theirs = ta @ tb
    xa, xb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    ours = xa @ xb
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    g = rng.normal(size=ours.shape)
    theirs.backward(torch.tensor(g))
    ours.backward(g)
    np.testing.assert_allclose(xa.grad, ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(xb.grad, tb.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("shape_a,shape_b,pattern", [
    ((2, 3), (4, 5), r"matmul.*\(2, 3\).*\(4, 5\)"),
    ((3,), (4,), r"matmul.*\(3,\).*\(4,\)"),
    ((2, 3, 4), (5, 4, 2), r"matmul.*\(2, 3, 4\).*\(5, 4, 2\)"),
    ((), (3,), r"matmul.*at least 1-D"),
])
def test_matmul_rejects_mismatched_shapes(shape_a, shape_b, pattern):
    with pytest.raises(ValueError, match=pattern):
        linear.matmul(Tensor(np.ones(shape_a)), Tensor(np.ones(shape_b)))


# ================================================================ linear

@st.composite
def linear_problem(draw):
    n, fan_in, fan_out = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    x = draw(arrays((n, fan_in)))
    w = draw(arrays((fan_out, fan_in)))
    b = draw(st.none() | arrays((fan_out,)))
    return x, w, b


@given(problem=linear_problem())
def test_linear_forward_matches_definition(problem):
    x, w, b = problem
    y = linear.linear(t(x), t(w), None if b is None else t(b))
    expected = np.array([[sum(x[i, k] * w[j, k] for k in range(x.shape[1])) for j in range(w.shape[0])]
                         for i in range(x.shape[0])])
    if b is not None:
        expected = expected + b
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


@given(problem=linear_problem())
def test_linear_gradient(problem):
    x, w, b = problem
    if b is None:
        check_grad(linear.linear, x, w)
    else:
        check_grad(linear.linear, x, w, b)


def test_linear_with_constant_input_only_computes_parameter_grads(rng):
    x = Tensor(rng.normal(size=(3, 2)))
    w = Tensor(rng.normal(size=(4, 2)), requires_grad=True)
    b = Tensor(rng.normal(size=4), requires_grad=True)
    linear.linear(x, w, b).sum().backward()
    np.testing.assert_allclose(w.grad, np.ones((4, 3)) @ x.data)
    np.testing.assert_allclose(b.grad, np.full(4, 3.0))
    assert x.grad is None


@pytest.mark.torch
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias, torch, rng):
    x, w, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=4)
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    theirs = torch.nn.functional.linear(tx, tw, tb if bias else None)
    ox, ow, ob = (Tensor(v, requires_grad=True) for v in (x, w, b))
    ours = linear.linear(ox, ow, ob if bias else None)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    g = rng.normal(size=(5, 4))
    theirs.backward(torch.tensor(g))
    ours.backward(g)
    pairs = [(ox, tx), (ow, tw)] + ([(ob, tb)] if bias else [])
    for o, th in pairs:
        np.testing.assert_allclose(o.grad, th.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("x_shape,w_shape,b_shape,pattern", [
    ((4,), (2, 4), None, r"linear: input.*\(4,\)"),
    ((3, 4), (2, 5), None, r"linear: weight.*\(3, 4\).*\(2, 5\)"),
    ((3, 4), (4,), None, r"linear: weight.*\(4,\)"),
    ((3, 4), (2, 4), (3,), r"linear: bias.*\(2,\).*\(3,\)"),
])
def test_linear_rejects_wrong_shapes(x_shape, w_shape, b_shape, pattern):
    b = None if b_shape is None else Tensor(np.ones(b_shape))
    with pytest.raises(ValueError, match=pattern):
        linear.linear(Tensor(np.ones(x_shape)), Tensor(np.ones(w_shape)), b)


def test_linear_rejects_mixed_dtypes():
    x32 = Tensor(np.ones((3, 4), np.float32))
    with pytest.raises(TypeError, match="linear.*float32.*float64"):
        linear.linear(x32, Tensor(np.ones((2, 4))))
    with pytest.raises(TypeError, match="linear: bias.*float64.*float32"):
        linear.linear(x32, Tensor(np.ones((2, 4), np.float32)), Tensor(np.ones(2)))


# ================================================================ reductions

@st.composite
def reduction_case(draw, shapes=SHAPES):
    """A shape, an axis spec (None, an int or a tuple, negative allowed) and keepdims."""
    shape = draw(shapes)
    ndim = len(shape)
    if ndim == 0 or draw(st.booleans()):
        axis = None
    else:
        axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        axes = [a - ndim if draw(st.booleans()) else a for a in axes]
        axis = axes[0] if len(axes) == 1 and draw(st.booleans()) else tuple(axes)
    return shape, axis, draw(st.booleans())


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


def _reduce_reference(x, axis, keepdims, combine):
    """Reduce by iterating over every combination of the kept axes (no numpy reduction used)."""
    axes = _axes(axis, x.ndim)
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = np.moveaxis(x, kept + list(axes), range(x.ndim)).reshape([x.shape[i] for i in kept] + [-1])
    out = np.empty(moved.shape[:-1])
    for index in np.ndindex(*out.shape):
        out[index] = combine(list(moved[index]))
    if keepdims:
        out = out.reshape([1 if i in axes else n for i, n in enumerate(x.shape)])
    return out


def _variance(values, ddof):
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - ddof)


REDUCTIONS = {
    "sum": (reduction.sum, lambda v: sum(v)),
    "mean": (reduction.mean, lambda v: sum(v) / len(v)),
    "max": (reduction.max, lambda v: max(v)),
    "min": (reduction.min, lambda v: min(v)),
    "var": (reduction.var, lambda v: _variance(v, 0)),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data(), case=reduction_case())
def test_reduction_forward_matches_definition(name, data, case):
    op, combine = REDUCTIONS[name]
    shape, axis, keepdims = case
    x = data.draw(arrays(shape))
    y = op(t(x), axis=axis, keepdims=keepdims)
    expected = _reduce_reference(x, axis, keepdims, combine)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data(), case=reduction_case())
def test_reduction_gradient(name, data, case):
    op, _ = REDUCTIONS[name]
    shape, axis, keepdims = case
    # max/min: distinct, well-separated values, so the finite differences never cross a tie.
    x = data.draw(distinct_arrays(shape) if name in ("max", "min") else arrays(shape))
    check_grad(lambda a: op(a, axis=axis, keepdims=keepdims), x)


@given(data=st.data(), case=reduction_case(shapes=NONEMPTY_SHAPES))
def test_var_with_ddof_1(data, case):
    shape, axis, keepdims = case
    x = data.draw(arrays(shape))
    n = int(np.prod([shape[a] for a in _axes(axis, len(shape))]))
    if n < 2:
        return  # the unbiased variance of one value divides by zero
    y = reduction.var(t(x), axis=axis, keepdims=keepdims, ddof=1)
    np.testing.assert_allclose(y.data, _reduce_reference(x, axis, keepdims, lambda v: _variance(v, 1)),
                               rtol=1e-12, atol=1e-12)
    check_grad(lambda a: reduction.var(a, axis=axis, keepdims=keepdims, ddof=1), x)


def test_max_min_split_the_gradient_evenly_among_ties():
    """Convention (as torch.amax/amin, not torch.max(dim) which picks one index): every element
    equal to the extreme gets an equal share of the gradient."""
    x = Tensor(np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0]]), requires_grad=True)
    reduction.max(x, axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3, 0]])
    x.zero_grad()
    reduction.min(x).backward()
    np.testing.assert_allclose(x.grad, [[0, 0, 0, 0], [0, 0, 0, 1.0]])
    x.zero_grad()
    reduction.max(x, axis=None).backward()
    np.testing.assert_allclose(x.grad, [[0, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0]])


@pytest.mark.torch
def test_reductions_match_torch_including_ties(torch):
    x = np.array([[[1.0, 3.0, 3.0], [2.0, -1.0, 0.5]], [[4.0, 4.0, 4.0], [0.0, 2.0, -3.0]]])
    cases = [
        (lambda a: reduction.sum(a, axis=1), lambda a: a.sum(dim=1)),
        (lambda a: reduction.mean(a, axis=(0, 2), keepdims=True), lambda a: a.mean(dim=(0, 2), keepdim=True)),
        (lambda a: reduction.max(a, axis=-1), lambda a: a.amax(dim=-1)),
        (lambda a: reduction.min(a, axis=(1, 2)), lambda a: a.amin(dim=(1, 2))),
        (lambda a: reduction.var(a, axis=1), lambda a: a.var(dim=1, correction=0)),
        (lambda a: reduction.var(a, axis=(0, 1), ddof=1), lambda a: a.var(dim=(0, 1), correction=1)),
    ]
    rng = np.random.default_rng(0)
    for ours_fn, theirs_fn in cases:
        tx = torch.tensor(x, requires_grad=True)
        theirs = theirs_fn(tx)
        ox = Tensor(x, requires_grad=True)
        ours = ours_fn(ox)
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
        g = rng.normal(size=tuple(theirs.shape))
        theirs.backward(torch.tensor(g))
        ours.backward(g)
        np.testing.assert_allclose(ox.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_reductions_keep_float32():
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.5]], np.float32), requires_grad=True)
    for op in (reduction.sum, reduction.mean, reduction.max, reduction.min, reduction.var):
        y = op(x, axis=0)
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_reject_an_axis_out_of_range(name):
    op, _ = REDUCTIONS[name]
    with pytest.raises(ValueError, match=rf"{name}: axis 2 .*rank 2"):
        op(Tensor(np.ones((2, 3))), axis=2)
    with pytest.raises(ValueError, match=rf"{name}: axis -3 "):
        op(Tensor(np.ones((2, 3))), axis=(0, -3))


def test_max_of_an_empty_tensor_is_an_error():
    with pytest.raises(ValueError, match=r"max: empty tensor of shape \(0, 3\)"):
        reduction.max(Tensor(np.ones((0, 3))))
