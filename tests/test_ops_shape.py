"""Shape and indexing ops: reshape, transpose, flatten, concat, stack, split, getitem, pad, cast.

They move values without changing them, so each forward is checked element by element against
where the value must land, each backward by finite differences (float64) over hypothesis shapes,
and each bad input must fail with an error that names the op and the shapes involved.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from tinyconv import Tensor
from tinyconv.ops import reduction, shape
from tinyconv.testing import arrays, check_grad

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
NONEMPTY_SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def t(array):
    return Tensor(np.asarray(array, dtype=np.float64))


# ================================================================ reshape / flatten

@st.composite
def reshape_case(draw):
    s = draw(SHAPES)
    size = int(np.prod(s))
    target = draw(st.sampled_from([tuple(reversed(s)), (size,), (-1,), s + (1,), (1,) + s])
                  | st.permutations(s).map(tuple))
    return s, target


@given(data=st.data(), case=reshape_case())
def test_reshape_keeps_row_major_order(data, case):
    in_shape, target = case
    x = data.draw(arrays(in_shape))
    y = shape.reshape(t(x), target)
    expected_shape = tuple(x.size if n == -1 else n for n in target)
    assert y.shape == expected_shape
    assert list(y.data.flat) == list(x.flat)
    check_grad(lambda a: shape.reshape(a, target), x)


def test_tensor_reshape_and_view_accept_varargs_or_a_tuple():
    x = Tensor(np.arange(6.0))
    assert x.reshape(2, 3).shape == (2, 3)
    assert x.reshape((3, 2)).shape == (3, 2)
    assert x.view(-1, 2).shape == (3, 2)


def test_reshape_to_a_wrong_size_is_an_error():
    with pytest.raises(ValueError, match=r"reshape: .*\(2, 3\) \(6 elements\) into \(4, 2\)"):
        shape.reshape(Tensor(np.ones((2, 3))), (4, 2))


@given(data=st.data(), in_shape=NONEMPTY_SHAPES)
def test_flatten_merges_the_chosen_axes(data, in_shape):
    ndim = len(in_shape)
    start = data.draw(st.integers(-ndim, ndim - 1))
    end = data.draw(st.integers(start % ndim, ndim - 1))
    x = data.draw(arrays(in_shape))
    y = shape.flatten(t(x), start, end)
    s, e = start % ndim, end
    assert y.shape == in_shape[:s] + (int(np.prod(in_shape[s:e + 1])),) + in_shape[e + 1:]
    assert list(y.data.flat) == list(x.flat)
    check_grad(lambda a: shape.flatten(a, start, end), x)


def test_flatten_defaults():
    """F.flatten keeps the batch axis (as nn.Flatten); Tensor.flatten flattens all (as torch)."""
    x = Tensor(np.ones((2, 3, 4)))
    assert shape.flatten(x).shape == (2, 12)
    assert x.flatten().shape == (24,)


# ================================================================ transpose

@st.composite
def transpose_case(draw):
    s = draw(SHAPES)
    ndim = len(s)
    if draw(st.booleans()):
        return s, None
    perm = draw(st.permutations(range(ndim)))
    return s, tuple(a - ndim if draw(st.booleans()) else a for a in perm)  # negative axes too


@given(data=st.data(), case=transpose_case())
def test_transpose_moves_every_element(data, case):
    in_shape, axes = case
    x = data.draw(arrays(in_shape))
    y = shape.transpose(t(x), axes)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    assert y.shape == tuple(in_shape[p] for p in perm)
    for index in np.ndindex(*in_shape):
        assert y.data[tuple(index[p] for p in perm)] == x[index]
    check_grad(lambda a: shape.transpose(a, axes), x)


def test_tensor_transpose_permute_and_T():
    x = Tensor(np.ones((2, 3, 4)))
    assert x.transpose().shape == (4, 3, 2)
    assert x.transpose(1, 0, 2).shape == (3, 2, 4)
    assert x.permute((2, 0, 1)).shape == (4, 2, 3)
    assert x.T.shape == (4, 3, 2)


@pytest.mark.parametrize("axes", [(0, 0, 1), (0, 1), (0, 1, 2, 3), (0, 1, 5), (0, 1, -4)])
def test_transpose_rejects_axes_that_are_not_a_permutation(axes):
    with pytest.raises(ValueError, match=r"transpose: axes .* rank-3"):
        shape.transpose(Tensor(np.ones((2, 3, 4))), axes)


# ================================================================ concat / stack / split

@st.composite
def concat_case(draw):
    base = list(draw(NONEMPTY_SHAPES))
    axis = draw(st.integers(-len(base), len(base) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    shapes = []
    for n in sizes:
        base[axis] = n
        shapes.append(tuple(base))
    return shapes, axis


@given(data=st.data(), case=concat_case())
def test_concat_places_each_input_at_its_offset(data, case):
    shapes, axis = case
    xs = [data.draw(arrays(s)) for s in shapes]
    y = shape.concat([t(x) for x in xs], axis=axis)
    offset = 0
    for x in xs:
        n = x.shape[axis]
        picked = np.take(y.data, range(offset, offset + n), axis=axis)
        np.testing.assert_array_equal(picked, x)
        offset += n
    assert y.shape[axis] == offset
    check_grad(lambda *ts: shape.concat(list(ts), axis=axis), *xs)


def test_cat_is_concat():
    assert shape.cat is shape.concat


@pytest.mark.torch
def test_concat_stack_split_match_torch(torch, rng):
    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    oa, ob = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    theirs = torch.split(torch.cat([ta, tb], dim=1), [1, 6, 1], dim=1)
    ours = shape.split(shape.concat([oa, ob], axis=1), [1, 6, 1], axis=1)
    weights = [rng.normal(size=p.shape) for p in ours]
    for o, th in zip(ours, theirs):
        np.testing.assert_array_equal(o.data, th.detach().numpy())
    theirs_out = torch.stack([p * torch.tensor(w) for p, w in zip(theirs[::2], weights[::2])], dim=-1)
    ours_out = shape.stack([p * w for p, w in zip(ours[::2], weights[::2])], axis=-1)
    np.testing.assert_array_equal(ours_out.data, theirs_out.detach().numpy())
    theirs_out.sum().backward()
    ours_out.sum().backward()
    np.testing.assert_allclose(oa.grad, ta.grad.numpy())
    np.testing.assert_allclose(ob.grad, tb.grad.numpy())


def test_concat_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"concat: shapes \[\(2, 3\), \(3, 3\)\] differ outside axis 1"):
        shape.concat([Tensor(np.ones((2, 3))), Tensor(np.ones((3, 3)))], axis=1)
    with pytest.raises(ValueError, match=r"concat: shapes \[\(2, 3\), \(2, 3, 1\)\]"):
        shape.concat([Tensor(np.ones((2, 3))), Tensor(np.ones((2, 3, 1)))], axis=0)


@given(data=st.data(), item_shape=SHAPES, count=st.integers(1, 3))
def test_stack_puts_each_input_on_the_new_axis(data, item_shape, count):
    axis = data.draw(st.integers(-len(item_shape) - 1, len(item_shape)))
    xs = [data.draw(arrays(item_shape)) for _ in range(count)]
    y = shape.stack([t(x) for x in xs], axis=axis)
    assert y.ndim == len(item_shape) + 1 and y.shape[axis] == count
    for i, x in enumerate(xs):
        np.testing.assert_array_equal(np.take(y.data, i, axis=axis), x)
    check_grad(lambda *ts: shape.stack(list(ts), axis=axis), *xs)


def test_stack_rejects_different_shapes():
    with pytest.raises(ValueError, match=r"stack: .*same shape.*\[\(2, 3\), \(2, 4\)\]"):
        shape.stack([Tensor(np.ones((2, 3))), Tensor(np.ones((2, 4)))])


@st.composite
def split_case(draw):
    s = draw(NONEMPTY_SHAPES)
    axis = draw(st.integers(-len(s), len(s) - 1))
    n = s[axis]
    if draw(st.booleans()):
        return s, axis, draw(st.integers(1, n + 1))  # equal chunks, the last one may be smaller
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
    bounds = [0] + cuts + [n]
    return s, axis, [b - a for a, b in zip(bounds, bounds[1:])]  # zero-size pieces allowed


@given(data=st.data(), case=split_case())
def test_split_pieces_are_consecutive_slices(data, case):
    in_shape, axis, sections = case
    x = data.draw(arrays(in_shape))
    pieces = shape.split(t(x), sections, axis=axis)
    n = in_shape[axis]
    sizes = ([min(sections, n - i) for i in range(0, n, sections)]
             if isinstance(sections, int) else sections)
    assert [p.shape[axis] for p in pieces] == sizes
    offset = 0
    for p, size in zip(pieces, sizes):
        np.testing.assert_array_equal(p.data, np.take(x, range(offset, offset + size), axis=axis))
        offset += size

    def weighted_sum_of_pieces(a):
        parts = shape.split(a, sections, axis=axis)
        return shape.concat([p * float(i + 1) for i, p in enumerate(parts)], axis=axis)

    check_grad(weighted_sum_of_pieces, x)
    check_grad(lambda a: shape.split(a, sections, axis=axis)[0] * 3.0, x)  # unused pieces: zero grad


@pytest.mark.parametrize("sections,pattern", [
    ([1, 1], r"split: sizes \[1, 1\] .*add up to 3.*axis 1 of shape \(2, 3\)"),
    ([2, 2], r"split: sizes \[2, 2\] .*add up to 3"),
    ([-1, 4], r"split: sizes \[-1, 4\]"),
    (0, r"split: .*0"),
    (-2, r"split: .*-2"),
])
def test_split_rejects_sizes_that_do_not_add_up(sections, pattern):
    with pytest.raises(ValueError, match=pattern):
        shape.split(Tensor(np.ones((2, 3))), sections, axis=1)


# ================================================================ getitem

@given(data=st.data(), in_shape=SHAPES)
def test_basic_indexing(data, in_shape):
    index = data.draw(hnp.basic_indices(in_shape, allow_newaxis=True))
    x = data.draw(arrays(in_shape))
    y = t(x)[index]
    expected = x[index]
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.data, expected)
    check_grad(lambda a: a[index], x)


@given(data=st.data(), in_shape=NONEMPTY_SHAPES)
def test_fancy_indexing_with_repeats_accumulates(data, in_shape):
    n = in_shape[0]
    picks = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6))
    index = np.array(picks)
    if data.draw(st.booleans()) and len(picks) % 2 == 0:
        index = index.reshape(2, -1)  # a 2-D index array
    x = data.draw(arrays(in_shape))
    leaf = Tensor(x, requires_grad=True)
    y = leaf[index]
    np.testing.assert_array_equal(y.data, np.stack([x[i] for i in index.ravel()]).reshape(y.shape))
    y.sum().backward()
    counts = np.zeros(n)
    for i in picks:
        counts[i] += 1  # a row picked k times gets k times the gradient
    counts = counts.reshape((n,) + (1,) * (x.ndim - 1))
    np.testing.assert_array_equal(leaf.grad, np.broadcast_to(counts, x.shape))
    check_grad(lambda a: a[index], x)


def test_fancy_index_forms():
    x = np.arange(12.0).reshape(3, 4) / 10
    cases = [
        ([0, 0, 2], [[2, 2, 2, 2], [0] * 4, [1] * 4]),
        (([0, 0, 1], [3, 3, -1]), [[0, 0, 0, 2], [0, 0, 0, 1], [0] * 4]),
        (([1, 1], slice(1, None)), [[0] * 4, [0, 2, 2, 2], [0] * 4]),
        (x > 0.6, [[0] * 4, [0, 0, 0, 1], [1] * 4]),
        (Tensor(np.array([2, 2])), [[0] * 4, [0] * 4, [2] * 4]),
    ]
    for index, counts in cases:
        leaf = Tensor(x, requires_grad=True)
        leaf[index].sum().backward()
        np.testing.assert_array_equal(leaf.grad, counts, err_msg=f"index {index!r}")
    check_grad(lambda a: a[[0, 2, 0], 1:3] * a[x > 0.3].sum(), x)


def test_index_out_of_range_is_an_error():
    with pytest.raises(IndexError):
        Tensor(np.ones((2, 3)))[[0, 5]]


# ================================================================ pad

@st.composite
def pad_case(draw):
    s = draw(NONEMPTY_SHAPES)
    widths = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in s]
    return s, widths, draw(st.sampled_from([0.0, -1.5]))


@given(data=st.data(), case=pad_case())
def test_pad_numpy_style(data, case):
    in_shape, widths, value = case
    x = data.draw(arrays(in_shape))
    y = shape.pad(t(x), widths, value=value)
    expected = np.full([b + n + a for (b, a), n in zip(widths, in_shape)], value)
    expected[tuple(slice(b, b + n) for (b, _), n in zip(widths, in_shape))] = x
    np.testing.assert_array_equal(y.data, expected)
    check_grad(lambda a: shape.pad(a, widths, value=value), x)


@given(data=st.data(), in_shape=NONEMPTY_SHAPES)
def test_pad_torch_style_flat_widths_start_at_the_last_axis(data, in_shape):
    k = data.draw(st.integers(1, len(in_shape)))
    flat = tuple(data.draw(st.integers(0, 2)) for _ in range(2 * k))
    x = data.draw(arrays(in_shape))
    y = shape.pad(t(x), flat)
    pairs = [(0, 0)] * (len(in_shape) - k) + [flat[2 * i:2 * i + 2] for i in reversed(range(k))]
    np.testing.assert_array_equal(y.data, shape.pad(t(x), pairs).data)
    check_grad(lambda a: shape.pad(a, flat), x)


@pytest.mark.torch
def test_pad_matches_torch(torch, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    tx = torch.tensor(x, requires_grad=True)
    theirs = torch.nn.functional.pad(tx, (1, 2, 0, 3), value=0.25)
    ox = Tensor(x, requires_grad=True)
    ours = shape.pad(ox, (1, 2, 0, 3), value=0.25)
    np.testing.assert_array_equal(ours.data, theirs.detach().numpy())
    g = rng.normal(size=ours.shape)
    theirs.backward(torch.tensor(g))
    ours.backward(g)
    np.testing.assert_array_equal(ox.grad, tx.grad.numpy())


@pytest.mark.parametrize("widths,pattern", [
    ([(1, 1)], r"pad: need 2 \(before, after\) pairs for shape \(2, 3\)"),
    ((1, 1, 1, 1, 1, 1), r"pad: need 2 .*\(2, 3\)"),
    ((1, 2, 3), r"pad: .*even.*\(1, 2, 3\)"),
])
def test_pad_rejects_wrong_widths(widths, pattern):
    with pytest.raises(ValueError, match=pattern):
        shape.pad(Tensor(np.ones((2, 3))), widths)


# ================================================================ cast

@pytest.mark.parametrize("source,target", [(np.float32, np.float64), (np.float64, np.float32),
                                           (np.float32, np.float32)])
def test_cast_converts_values_and_casts_the_gradient_back(source, target):
    x = Tensor(np.array([0.1, -2.5, 3.0], dtype=source), requires_grad=True)
    y = shape.cast(x, target)
    assert y.dtype == target
    np.testing.assert_array_equal(y.data, x.data.astype(target))
    (y * 2.0).sum().backward()
    assert x.grad.dtype == source
    np.testing.assert_array_equal(x.grad, np.full(3, 2.0, dtype=source))


def test_cast_gradient_in_float64():
    check_grad(lambda a: shape.cast(a, np.float64) * reduction.sum(a), np.array([[0.5, -1.0], [2.0, 0.3]]))


def test_tensor_float_and_double():
    x = Tensor(np.ones(2, np.float64))
    assert x.float().dtype == np.float32 and x.float().double().dtype == np.float64
