"""The Winograd F(2x2, 3x3) tile transforms against the matrix products that define them.

The references pad the plane with ``np.pad``, cut every 4x4 (or 2x2) tile out by slicing and
multiply by the transform matrices written out in full, one tile at a time, so they share no code
or loop structure with the row-at-a-time kernels.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyconv.kernels.cpu import winograd_input, winograd_output, winograd_output_adjoint

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-13, atol=1e-13)}
SETTINGS = settings(deadline=None, max_examples=60)
PAD = 7  # the kernels must leave a row's entries past its C*N*th*tw alone


@st.composite
def cases(draw):
    """(n, c, h, w, ph, pw, th, tw, pitch, dtype): a 3x3 stride-1 conv with at least one output,
    its tile rows laid out tight (a tile row at a time) or with a dummy tile (a plane at a time)."""
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h, w = draw(st.integers(max(1, 3 - 2 * ph), 9)), draw(st.integers(max(1, 3 - 2 * pw), 9))
    oh, ow = h + 2 * ph - 2, w + 2 * pw - 2
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w, ph, pw, th, tw, tw + draw(st.integers(0, 1)),
            draw(st.sampled_from([np.float32, np.float64])))


def tile_index(n, ty, tx, th, pitch):
    return (n * th + ty) * pitch + tx


def real_tiles(rows, c, n, th, tw, pitch):
    """The (16, c*n*th*pitch) layout's entries of real tiles, as (16, c, n, th, tw)."""
    return rows.reshape(16, c, n, th, pitch)[..., :tw]


def ref_input(x, ph, pw, th, tw, pitch):
    n_img, channels = x.shape[:2]
    tiles = n_img * th * pitch
    padded = np.zeros((n_img, channels, 2 * th + 2, 2 * tw + 2))
    h, w = min(x.shape[2], 2 * th + 2 - ph), min(x.shape[3], 2 * tw + 2 - pw)
    padded[:, :, ph:ph + h, pw:pw + w] = x[:, :, :h, :w]
    v = np.zeros((16, channels * tiles))
    for n in range(n_img):
        for c in range(channels):
            for ty in range(th):
                for tx in range(tw):
                    tile = BT @ padded[n, c, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4] @ BT.T
                    v[:, c * tiles + tile_index(n, ty, tx, th, pitch)] = tile.ravel()
    return v


def ref_output(m, shape, th, tw, pitch):
    n_img, channels, oh, ow = shape
    tiles = n_img * th * pitch
    y = np.zeros((n_img, channels, 2 * th, 2 * tw))
    for n in range(n_img):
        for o in range(channels):
            for ty in range(th):
                for tx in range(tw):
                    tile = m[:, o * tiles + tile_index(n, ty, tx, th, pitch)].reshape(4, 4)
                    y[n, o, 2 * ty:2 * ty + 2, 2 * tx:2 * tx + 2] = AT @ tile @ AT.T
    return y[:, :, :oh, :ow]


def ref_output_adjoint(gy, th, tw, pitch):
    """Zero at dummy tiles: the output transform drops them."""
    n_img, channels, oh, ow = gy.shape
    tiles = n_img * th * pitch
    padded = np.zeros((n_img, channels, 2 * th, 2 * tw))
    padded[:, :, :oh, :ow] = gy
    dm = np.zeros((16, channels * tiles))
    for n in range(n_img):
        for o in range(channels):
            for ty in range(th):
                for tx in range(tw):
                    tile = AT.T @ padded[n, o, 2 * ty:2 * ty + 2, 2 * tx:2 * tx + 2] @ AT
                    dm[:, o * tiles + tile_index(n, ty, tx, th, pitch)] = tile.ravel()
    return dm


def tile_rows(rows, dtype):
    """A (16, rows + PAD) NaN-filled buffer, as the op's padded workspace rows."""
    return np.full((16, rows + PAD), np.nan, dtype)


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1))
def test_input_transform_matches_definition(case, seed):
    """Real tiles as defined, dummy tiles finite (their values are left unspecified), the rows'
    tails untouched."""
    n, c, h, w, ph, pw, th, tw, pitch, dtype = case
    x = np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(dtype)
    v = tile_rows(c * n * th * pitch, dtype)
    winograd_input(x, v, ph, pw, th, tw, pitch)
    expected = ref_input(x.astype(np.float64), ph, pw, th, tw, pitch)
    np.testing.assert_allclose(real_tiles(v[:, :-PAD], c, n, th, tw, pitch),
                               real_tiles(expected, c, n, th, tw, pitch), **TOL[dtype])
    assert np.isfinite(v[:, :-PAD]).all()
    assert np.isnan(v[:, -PAD:]).all()


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1))
def test_output_transform_matches_definition(case, seed):
    n, c, h, w, ph, pw, th, tw, pitch, dtype = case
    shape = (n, c, h + 2 * ph - 2, w + 2 * pw - 2)
    m = tile_rows(c * n * th * pitch, dtype)
    m[:, :-PAD] = np.random.default_rng(seed).standard_normal((16, c * n * th * pitch))
    y = np.full(shape, np.nan, dtype)  # every output must be written
    winograd_output(m, y, th, tw, pitch)
    np.testing.assert_allclose(y, ref_output(m[:, :-PAD].astype(np.float64), shape, th, tw, pitch), **TOL[dtype])


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1))
def test_output_adjoint_matches_definition_and_is_the_adjoint(case, seed):
    n, c, h, w, ph, pw, th, tw, pitch, dtype = case
    rng = np.random.default_rng(seed)
    gy = rng.standard_normal((n, c, h + 2 * ph - 2, w + 2 * pw - 2)).astype(dtype)
    dm = tile_rows(c * n * th * pitch, dtype)
    winograd_output_adjoint(gy, dm, th, tw, pitch)
    np.testing.assert_allclose(dm[:, :-PAD], ref_output_adjoint(gy.astype(np.float64), th, tw, pitch), **TOL[dtype])
    assert np.isnan(dm[:, -PAD:]).all()

    m = tile_rows(c * n * th * pitch, dtype)
    m[:, :-PAD] = rng.standard_normal((16, c * n * th * pitch))
    y = np.empty_like(gy)
    winograd_output(m, y, th, tw, pitch)
    lhs = np.vdot(y.astype(np.float64), gy.astype(np.float64))
    rhs = np.vdot(m[:, :-PAD].astype(np.float64), dm[:, :-PAD].astype(np.float64))
    assert lhs == pytest.approx(rhs, rel=TOL[dtype]["rtol"] * 10, abs=TOL[dtype]["atol"] * 10)


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1))
def test_both_layouts_give_the_same_bits(case, seed):
    """A tile row at a time (pitch tw) and a plane at a time (pitch tw + 1) run the same
    operations on every real tile."""
    n, c, h, w, ph, pw, th, tw, _, dtype = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    gy = rng.standard_normal((n, c, h + 2 * ph - 2, w + 2 * pw - 2)).astype(dtype)
    results = []
    for pitch in (tw, tw + 1):
        v, dm = (np.empty((16, c * n * th * pitch), dtype) for _ in range(2))
        winograd_input(x, v, ph, pw, th, tw, pitch)
        winograd_output_adjoint(gy, dm, th, tw, pitch)
        results.append([real_tiles(a, c, n, th, tw, pitch) for a in (v, dm)])
    for tight, with_dummies in zip(*results):
        np.testing.assert_array_equal(tight, with_dummies)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transforms_compose_to_a_convolution(dtype):
    """Input transform, elementwise product with G g G^T, output transform: one 3x3 conv of a
    single plane, against the sum of its nine taps."""
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((1, 1, 7, 8)).astype(dtype), rng.standard_normal((3, 3))
    G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    th, tw = 4, 4  # output 7x8 with padding 1
    v = np.empty((16, th * tw), dtype)
    winograd_input(x, v, 1, 1, th, tw, tw)
    m = (v * (G @ g @ G.T).reshape(16, 1)).astype(dtype)
    y = np.empty((1, 1, 7, 8), dtype)
    winograd_output(m, y, th, tw, tw)
    padded = np.pad(x[0, 0].astype(np.float64), 1)
    expected = sum(g[i, j] * padded[i:i + 7, j:j + 8] for i in range(3) for j in range(3))
    np.testing.assert_allclose(y[0, 0], expected, **TOL[dtype])
