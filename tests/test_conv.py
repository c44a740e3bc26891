"""conv2d: forward against a loop written from the definition, gradients by finite differences,
PyTorch parity, bad input."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
from tinyconv import backend
from tinyconv.ops import winograd
from tinyconv.ops.conv import _batch_chunk, conv2d
from tinyconv.testing import check_grad, conv_params


def naive_conv2d(x, w, b, stride, padding, dilation, groups):
    """y[n,o,p,q] = b[o] + sum_{c,i,j} w[o,c,i,j] x[n, g*C/g + c, p*sh - ph + i*dh, q*sw - pw + j*dw]."""
    n, c_in, h, wd = x.shape
    c_out, c_per_group, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out_per_group = c_out // groups
    y = np.zeros((n, c_out, oh, ow), dtype=np.float64)
    for b_ in range(n):
        for o in range(c_out):
            first_channel = (o // out_per_group) * c_per_group
            for p in range(oh):
                for q in range(ow):
                    total = 0.0 if b is None else b[o]
                    for c in range(c_per_group):
                        for i in range(kh):
                            for j in range(kw):
                                r, s = p * sh - ph + i * dh, q * sw - pw + j * dw
                                if 0 <= r < h and 0 <= s < wd:
                                    total += w[o, c, i, j] * x[b_, first_channel + c, r, s]
                    y[b_, o, p, q] = total
    return y


def make_problem(p, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((p["n"], p["c_in"], p["h"], p["w"])).astype(dtype)
    w = rng.standard_normal((p["c_out"], p["c_in"] // p["groups"], p["kh"], p["kw"])).astype(dtype)
    b = rng.standard_normal(p["c_out"]).astype(dtype)
    return x, w, b


def conv_of(p):
    return lambda x, w, b: conv2d(x, w, b, p["stride"], p["padding"], p["dilation"], p["groups"])


@settings(max_examples=60)
@given(conv_params())
def test_forward_matches_definition(p):
    x, w, b = make_problem(p)
    y = conv_of(p)(tinyconv.tensor(x), tinyconv.tensor(w), tinyconv.tensor(b))
    expected = naive_conv2d(x, w, b, p["stride"], p["padding"], p["dilation"], p["groups"])
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=30)
@given(conv_params(depthwise=True))
def test_depthwise_forward_matches_definition(p):
    x, w, b = make_problem(p)
    y = conv_of(p)(tinyconv.tensor(x), tinyconv.tensor(w), tinyconv.tensor(b))
    expected = naive_conv2d(x, w, b, p["stride"], p["padding"], p["dilation"], p["groups"])
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=30)
@given(conv_params())
def test_gradients(p):
    check_grad(conv_of(p), *make_problem(p))


@settings(max_examples=25)
@given(conv_params(depthwise=True))
def test_depthwise_gradients(p):
    check_grad(conv_of(p), *make_problem(p))


def test_float32_forward_close_to_float64():
    p = dict(n=2, c_in=3, c_out=4, h=9, w=7, kh=3, kw=2, stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=1)
    x, w, b = make_problem(p)
    y32 = conv_of(p)(*(tinyconv.tensor(a.astype(np.float32)) for a in (x, w, b)))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.data, naive_conv2d(x, w, b, (2, 1), (1, 1), (1, 2), 1), rtol=1e-4, atol=1e-5)


def test_batch_chunking_gives_same_result(monkeypatch):
    """A tiny workspace limit forces one image per chunk; results must not change."""
    p = dict(n=5, c_in=2, c_out=3, h=6, w=6, kh=3, kw=3, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1)
    x, w, b = make_problem(p)
    xs = [tinyconv.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv_of(p)(*xs)
    (y * y).sum().backward()
    full = [y.data.copy()] + [t.grad.copy() for t in xs]
    monkeypatch.setattr(backend, "workspace_limit", 1)
    xs = [tinyconv.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv_of(p)(*xs)
    (y * y).sum().backward()
    for got, want in zip([y.data] + [t.grad for t in xs], full):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, fits, threads, chunk", [
    (128, 27, 2, 22),  # 5 chunks of 27 would leave one thread idle for a chunk: 6 of 22
    (128, 9, 2, 8), (128, 17, 2, 16), (128, 32, 2, 32), (128, 27, 1, 26), (5, 3, 2, 3), (1, 1, 2, 1)])
def test_batch_chunks_share_out_evenly_over_threads(monkeypatch, n, fits, threads, chunk):
    """``fits`` images fill the workspace; the chunks stay within it and come in a number the
    threads share evenly."""
    monkeypatch.setenv("TINYCONV_NUM_THREADS", str(threads))
    monkeypatch.setattr(backend, "workspace_limit", fits * 1000)
    assert _batch_chunk(n, 1000, np) == chunk


@pytest.mark.torch
@pytest.mark.parametrize("groups,c_in,c_out", [(1, 16, 32), (2, 8, 6), (8, 8, 8), (4, 4, 8)])
def test_matches_pytorch_float32(groups, c_in, c_out):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, c_in, 13, 11)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in // groups, 3, 3)).astype(np.float32) * 0.2
    b = rng.standard_normal(c_out).astype(np.float32)
    gy = rng.standard_normal((4, c_out, 7, 11)).astype(np.float32)
    args = dict(stride=(2, 1), padding=1, dilation=(1, 1), groups=groups)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **args)
    ty.backward(torch.tensor(gy))
    ours = [tinyconv.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv2d(*ours, **args)
    y.backward(gy)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    for mine, theirs in zip(ours, (tx, tw, tb)):
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-4, atol=1e-3)


def _conv_error(x_shape, w_shape, dtype=np.float32, w_dtype=None, **kw):
    x = tinyconv.tensor(np.zeros(x_shape, dtype=dtype))
    w = tinyconv.tensor(np.zeros(w_shape, dtype=w_dtype or dtype))
    return conv2d(x, w, **kw)


@pytest.mark.parametrize("x_shape,w_shape,kw,error,words", [
    ((3, 8, 8), (4, 3, 3, 3), {}, ValueError, ["conv2d", "4-D", "(3, 8, 8)"]),
    ((1, 3, 8, 8), (4, 3, 3), {}, ValueError, ["conv2d", "weight", "(4, 3, 3)"]),
    ((1, 2, 8, 8), (4, 3, 3, 3), {}, ValueError, ["conv2d", "2 channels", "(4, 3, 3, 3)"]),
    ((1, 4, 8, 8), (3, 2, 3, 3), {"groups": 2}, ValueError, ["conv2d", "divisible", "groups=2"]),
    ((1, 3, 2, 2), (4, 3, 5, 5), {}, ValueError, ["conv2d", "larger than the padded input", "(1, 3, 2, 2)"]),
    ((1, 3, 8, 8), (4, 3, 3, 3), {"stride": 0}, ValueError, ["conv2d", "stride"]),
    ((1, 3, 8, 8), (4, 3, 3, 3), {"padding": -1}, ValueError, ["conv2d", "padding"]),
    ((1, 3, 8, 8), (4, 3, 3, 3), {"stride": (1, 2, 3)}, TypeError, ["conv2d", "stride"]),
])
def test_bad_input(x_shape, w_shape, kw, error, words):
    with pytest.raises(error) as info:
        _conv_error(x_shape, w_shape, **kw)
    for word in words:
        assert word in str(info.value)


def test_bad_dtypes():
    with pytest.raises(TypeError, match="conv2d.*int64"):
        _conv_error((1, 3, 8, 8), (4, 3, 3, 3), dtype=np.int64, w_dtype=np.float32)
    with pytest.raises(TypeError, match="conv2d.*float32.*float64"):
        _conv_error((1, 3, 8, 8), (4, 3, 3, 3), dtype=np.float32, w_dtype=np.float64)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(4,\)"):
        conv2d(tinyconv.tensor(np.zeros((1, 3, 8, 8), np.float32)), tinyconv.tensor(np.zeros((4, 3, 3, 3), np.float32)),
               tinyconv.tensor(np.zeros(5, np.float32)))


@pytest.mark.parametrize("n,c_in,c_out,h,w,bias", [
    (3, 4, 5, 6, 7, True), (5, 3, 3, 6, 6, True), (1, 1, 2, 1, 1, False), (4, 6, 5, 4, 4, True)])
@pytest.mark.parametrize("workspace_limit", [None, 1])
def test_pointwise_path_matches_definition_and_gradients(n, c_in, c_out, h, w, bias, workspace_limit, monkeypatch):
    """1x1 stride-1 unpadded convs need no im2col: per-image GEMMs on planes of 32 pixels or
    more, channel-major batch chunks (here also one image per chunk) below that."""
    if workspace_limit:
        monkeypatch.setattr(backend, "workspace_limit", workspace_limit)
    p = dict(n=n, c_in=c_in, c_out=c_out, h=h, w=w, kh=1, kw=1, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)
    x, wt, b = make_problem(p)
    b = b if bias else None
    args = [tinyconv.tensor(a, requires_grad=True) for a in ([x, wt] + ([b] if bias else []))]
    y = conv2d(*args)
    assert type(y.creator).__name__ == "PointwiseConv2d"
    np.testing.assert_allclose(y.data, naive_conv2d(x, wt, b, (1, 1), (0, 0), (1, 1), 1), rtol=1e-10, atol=1e-10)
    check_grad(lambda *t: conv2d(*t), *([x, wt] + ([b] if bias else [])))


@st.composite
def winograd_problems(draw):
    """3x3 stride-1 convs that take the Winograd path: padding 0-2 per axis, odd and tiny planes."""
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    return dict(n=draw(st.integers(1, 3)), c_in=draw(st.integers(winograd.MIN_CHANNELS, winograd.MIN_CHANNELS + 2)),
                c_out=draw(st.integers(1, 4)), h=draw(st.integers(max(1, 3 - 2 * ph), 9)),
                w=draw(st.integers(max(1, 3 - 2 * pw), 9)), kh=3, kw=3, stride=(1, 1), padding=(ph, pw),
                dilation=(1, 1), groups=1)


LAYOUTS = ["f2", "f4"]


def tile_layout(layout):
    """Every plane, however wide or narrow, through F(2x2) ("f2") or F(4x4) ("f4")."""
    return mock.patch.object(winograd, "F4_MIN_TILES", 1 if layout == "f4" else 10**9)


@pytest.mark.parametrize("layout", LAYOUTS)
@settings(max_examples=30)
@given(p=winograd_problems())
def test_winograd_forward_matches_definition(layout, p):
    x, w, b = make_problem(p)
    with tile_layout(layout):
        y = conv_of(p)(*(tinyconv.tensor(a, requires_grad=True) for a in (x, w, b)))
    assert type(y.creator).__name__ == "WinogradConv2d"
    np.testing.assert_allclose(y.data, naive_conv2d(x, w, b, (1, 1), p["padding"], (1, 1), 1), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("layout", LAYOUTS)
@settings(max_examples=15)
@given(p=winograd_problems())
def test_winograd_gradients(layout, p):
    with tile_layout(layout):
        check_grad(conv_of(p), *make_problem(p))


@pytest.mark.parametrize("change, path", [
    ({}, "WinogradConv2d"), ({"stride": 2}, "Conv2d"), ({"dilation": 2}, "Conv2d"), ({"groups": 2}, "Conv2d"),
    ({"padding": 3}, "Conv2d"), ({"c_in": winograd.MIN_CHANNELS - 1}, "Conv2d"), ({"kernel": 5}, "Conv2d")])
def test_winograd_is_taken_only_where_it_applies(change, path):
    c_in, kernel = change.pop("c_in", 8), change.pop("kernel", 3)
    x = tinyconv.tensor(np.ones((1, c_in, 9, 9)), requires_grad=True)
    w = tinyconv.tensor(np.ones((4, c_in // change.get("groups", 1), kernel, kernel)))
    assert type(conv2d(x, w, **{"padding": 1, **change}).creator).__name__ == path


def test_winograd_chunking_gives_same_result(monkeypatch):
    """One image per chunk instead of the whole batch: the same outputs and gradients."""
    p = dict(n=5, c_in=8, c_out=3, h=7, w=6, kh=3, kw=3, stride=(1, 1), padding=(1, 0), dilation=(1, 1), groups=1)
    results = []
    for limit in (backend.workspace_limit, 1):
        monkeypatch.setattr(backend, "workspace_limit", limit)
        xs = [tinyconv.tensor(a, requires_grad=True) for a in make_problem(p)]
        y = conv_of(p)(*xs)
        (y * y).sum().backward()
        results.append([y.data] + [t.grad for t in xs])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [(1, 1), (0, 2)])
def test_winograd_kept_tiles_give_the_same_gradients(monkeypatch, padding):
    """The weight gradient from the transformed input kept by forward equals the one from x
    transformed again, bit for bit, and a second backward through the graph (which finds
    nothing kept any more) gives the same gradients again."""
    p = dict(n=5, c_in=9, c_out=3, h=7, w=6, kh=3, kw=3, stride=(1, 1), padding=padding, dilation=(1, 1), groups=1)
    monkeypatch.setattr(backend, "workspace_limit", 2 * 16 * 12 * 16 * 8)  # 2 images per chunk
    results = []
    for keep_max in (0, winograd.KEEP_MAX_CHANNELS):
        monkeypatch.setattr(winograd, "KEEP_MAX_CHANNELS", keep_max)
        xs = [tinyconv.tensor(a, requires_grad=True) for a in make_problem(p)]
        y = conv_of(p)(*xs)
        assert bool(y.creator.kept_tiles) == (keep_max >= p["c_in"])
        loss = (y * y).sum()
        loss.backward(retain_graph=True)
        first = [t.grad.copy() for t in xs]
        assert not y.creator.kept_tiles  # backward used them all
        for t in xs:
            t.grad = None
        loss.backward()
        for again, grad in zip((t.grad for t in xs), first):
            np.testing.assert_array_equal(again, grad)
        results.append(first)
    for kept, recomputed in zip(*results):
        np.testing.assert_array_equal(kept, recomputed)


def test_winograd_takes_f4_on_wide_planes_only():
    assert winograd.tiling(4 * winograd.F4_MIN_TILES) is winograd.F4
    assert winograd.tiling(4 * winograd.F4_MIN_TILES - 4) is winograd.F2


@pytest.mark.torch
@pytest.mark.parametrize("padding", [0, 1, 2, (1, 0)])
@pytest.mark.parametrize("size", [(13, 10), (11, 30)], ids=["F2x2", "F4x4"])
def test_winograd_matches_pytorch_float32(torch, padding, size):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 16, *size)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32) * 0.2
    b = rng.standard_normal(24).astype(np.float32)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=padding)
    gy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(gy))
    ours = [tinyconv.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv2d(*ours, padding=padding)
    y.backward(gy)
    assert type(y.creator).__name__ == "WinogradConv2d"
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    for mine, theirs in zip(ours, (tx, tw, tb)):
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-4, atol=1e-3)


# One problem per path: (x shape, w shape, kwargs, the Function that runs it).
RELU_PATHS = [
    ((2, 3, 7, 6), (4, 3, 3, 3), dict(stride=2, padding=1), "Conv2d"),
    ((2, 8, 9, 7), (3, 8, 3, 3), dict(padding=1), "WinogradConv2d"),
    ((2, 3, 6, 6), (5, 3, 1, 1), {}, "PointwiseConv2d"),  # one GEMM per image
    ((3, 4, 2, 3), (5, 4, 1, 1), {}, "PointwiseConv2d"),  # channel-major chunks
    ((2, 4, 6, 5), (8, 1, 3, 3), dict(padding=1, groups=4), "DepthwiseConv2d"),
]


@pytest.mark.parametrize("x_shape, w_shape, kwargs, path", RELU_PATHS, ids=[p[-1] + str(p[0]) for p in RELU_PATHS])
@pytest.mark.parametrize("bias", [True, False])
def test_relu_epilogue_on_every_path(x_shape, w_shape, kwargs, path, bias):
    """conv2d(..., relu=True) is relu(conv2d(...)), forward and by finite differences (the data
    keeps every output away from the ReLU's kink)."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if bias else None
    y = conv2d(*(tinyconv.tensor(a, requires_grad=True) for a in (x, w)),
               tinyconv.tensor(b, requires_grad=True) if bias else None, relu=True, **kwargs)
    assert type(y.creator).__name__ == path
    stride, padding = kwargs.get("stride", 1), kwargs.get("padding", 0)
    expected = naive_conv2d(x, w, b, (stride, stride), (padding, padding), (1, 1), kwargs.get("groups", 1))
    np.testing.assert_allclose(y.data, np.maximum(expected, 0), rtol=1e-10, atol=1e-10)
    assert (y.data == 0).any() and (y.data > 0).any()
    assert np.abs(expected).min() > 1e-4  # so finite differences do not straddle the kink
    inputs = [x, w] + ([b] if bias else [])
    check_grad(lambda *t: conv2d(*t[:2], t[2] if bias else None, relu=True, **kwargs), *inputs)


@pytest.mark.parametrize("x_shape, w_shape, kwargs, path", RELU_PATHS, ids=[p[-1] + str(p[0]) for p in RELU_PATHS])
@pytest.mark.parametrize("relu", [True, False])
def test_residual_epilogue_on_every_path(x_shape, w_shape, kwargs, path, relu):
    """conv2d(..., residual=r) at inference: (relu of) conv + b + r, chunk by chunk."""
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    stride, padding = kwargs.get("stride", 1), kwargs.get("padding", 0)
    expected = naive_conv2d(x, w, b, (stride, stride), (padding, padding), (1, 1), kwargs.get("groups", 1))
    residual = rng.standard_normal(expected.shape)
    expected = expected + residual
    with tinyconv.no_grad(), mock.patch.object(backend, "workspace_limit", 1):  # a chunk per image
        y = conv2d(*(tinyconv.tensor(a) for a in (x, w, b)), relu=relu, residual=residual, **kwargs)
    np.testing.assert_allclose(y.data, np.maximum(expected, 0) if relu else expected, rtol=1e-10, atol=1e-10)


def test_residual_is_for_inference_only_and_must_match_the_output():
    x, w = tinyconv.tensor(np.ones((2, 3, 5, 5))), tinyconv.tensor(np.ones((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="conv2d: residual= takes no gradient and is for inference"):
        conv2d(x, w, residual=np.zeros((2, 4, 3, 3)))
    with tinyconv.no_grad():
        with pytest.raises(ValueError, match=r"conv2d: residual must have the output's shape \(2, 4, 3, 3\) "
                                             r"and dtype float64, got \(2, 4, 5, 5\) float64"):
            conv2d(x, w, residual=np.zeros((2, 4, 5, 5)))
        with pytest.raises(ValueError, match="got \\(2, 4, 3, 3\\) float32"):
            conv2d(x, w, residual=np.zeros((2, 4, 3, 3), np.float32))
