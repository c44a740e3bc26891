"""The Winograd tile transforms, F(2x2, 3x3) and F(4x4, 3x3), against the matrix products that
define them.

The references pad the plane with ``np.pad``, cut every input (or output) tile out by slicing and
multiply by the transform matrices written out in full, one tile at a time, so they share no code
or loop structure with the kernels.
"""
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyconv.kernels import cpu

F2 = SimpleNamespace(
    m=2, pitches=(0,), prefix="winograd",  # its CPU kernels take no dummy tile
    BT=np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),
    G=np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]),
    AT=np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64))
F4 = SimpleNamespace(
    m=4, pitches=(1,), prefix="winograd4",  # its kernels need the dummy tile
    BT=np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float64),
    G=np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
    AT=np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                dtype=np.float64))
SCHEMES = pytest.mark.parametrize("f", [F2, F4], ids=["F2x2", "F4x4"])
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-13, atol=1e-13)}
SETTINGS = settings(deadline=None, max_examples=40)
PAD = 7  # the kernels must leave a row's entries past its C*N*th*tw alone


def kernel(f, step):
    return getattr(cpu, f"{f.prefix}_{step}")


def products(f):
    return (f.m + 2) ** 2


@st.composite
def cases(draw, f):
    """(n, c, h, w, ph, pw, th, tw, pitch, dtype): a 3x3 stride-1 conv with at least one output,
    its tile rows laid out tight (a tile row at a time) or with a dummy tile (a plane at a time)."""
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h, w = draw(st.integers(max(1, 3 - 2 * ph), 13)), draw(st.integers(max(1, 3 - 2 * pw), 13))
    oh, ow = h + 2 * ph - 2, w + 2 * pw - 2
    th, tw = -(-oh // f.m), -(-ow // f.m)
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w, ph, pw, th, tw, tw + draw(st.sampled_from(f.pitches)),
            draw(st.sampled_from([np.float32, np.float64])))


def tile_index(n, ty, tx, th, pitch):
    return (n * th + ty) * pitch + tx


def real_tiles(rows, c, n, th, tw, pitch):
    """The (P, c*n*th*pitch) layout's entries of real tiles, as (P, c, n, th, tw)."""
    return rows.reshape(-1, c, n, th, pitch)[..., :tw]


def ref_input(f, x, ph, pw, th, tw, pitch):
    n_img, channels = x.shape[:2]
    tiles, size = n_img * th * pitch, f.m + 2
    padded = np.zeros((n_img, channels, f.m * th + 2, f.m * tw + 2))
    h, w = min(x.shape[2], f.m * th + 2 - ph), min(x.shape[3], f.m * tw + 2 - pw)
    padded[:, :, ph:ph + h, pw:pw + w] = x[:, :, :h, :w]
    v = np.zeros((products(f), channels * tiles))
    for n in range(n_img):
        for c in range(channels):
            for ty in range(th):
                for tx in range(tw):
                    tile = f.BT @ padded[n, c, f.m * ty:f.m * ty + size, f.m * tx:f.m * tx + size] @ f.BT.T
                    v[:, c * tiles + tile_index(n, ty, tx, th, pitch)] = tile.ravel()
    return v


def ref_output(f, m, shape, th, tw, pitch):
    n_img, channels, oh, ow = shape
    tiles, size = n_img * th * pitch, f.m + 2
    y = np.zeros((n_img, channels, f.m * th, f.m * tw))
    for n in range(n_img):
        for o in range(channels):
            for ty in range(th):
                for tx in range(tw):
                    tile = m[:, o * tiles + tile_index(n, ty, tx, th, pitch)].reshape(size, size)
                    y[n, o, f.m * ty:f.m * ty + f.m, f.m * tx:f.m * tx + f.m] = f.AT @ tile @ f.AT.T
    return y[:, :, :oh, :ow]


def ref_output_adjoint(f, gy, th, tw, pitch):
    """Zero at dummy tiles: the output transform drops them."""
    n_img, channels, oh, ow = gy.shape
    tiles = n_img * th * pitch
    padded = np.zeros((n_img, channels, f.m * th, f.m * tw))
    padded[:, :, :oh, :ow] = gy
    dm = np.zeros((products(f), channels * tiles))
    for n in range(n_img):
        for o in range(channels):
            for ty in range(th):
                for tx in range(tw):
                    tile = f.AT.T @ padded[n, o, f.m * ty:f.m * ty + f.m, f.m * tx:f.m * tx + f.m] @ f.AT
                    dm[:, o * tiles + tile_index(n, ty, tx, th, pitch)] = tile.ravel()
    return dm


def tile_rows(f, rows, dtype):
    """A (P, rows + PAD) NaN-filled buffer, as the op's padded workspace rows."""
    return np.full((products(f), rows + PAD), np.nan, dtype)


@SCHEMES
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_input_transform_matches_definition(f, data, seed):
    """Real tiles as defined, dummy tiles finite (their values are left unspecified), the rows'
    tails untouched."""
    n, c, h, w, ph, pw, th, tw, pitch, dtype = data.draw(cases(f))
    x = np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(dtype)
    v = tile_rows(f, c * n * th * pitch, dtype)
    kernel(f, "input")(x, v, ph, pw, th, tw, pitch)
    expected = ref_input(f, x.astype(np.float64), ph, pw, th, tw, pitch)
    np.testing.assert_allclose(real_tiles(v[:, :-PAD], c, n, th, tw, pitch),
                               real_tiles(expected, c, n, th, tw, pitch), **TOL[dtype])
    assert np.isfinite(v[:, :-PAD]).all()
    assert np.isnan(v[:, -PAD:]).all()


@SCHEMES
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_output_transform_matches_definition(f, data, seed):
    n, c, h, w, ph, pw, th, tw, pitch, dtype = data.draw(cases(f))
    shape = (n, c, h + 2 * ph - 2, w + 2 * pw - 2)
    m = tile_rows(f, c * n * th * pitch, dtype)
    m[:, :-PAD] = np.random.default_rng(seed).standard_normal((products(f), c * n * th * pitch))
    y = np.full(shape, np.nan, dtype)  # every output must be written
    kernel(f, "output")(m, y, th, tw, pitch)
    np.testing.assert_allclose(y, ref_output(f, m[:, :-PAD].astype(np.float64), shape, th, tw, pitch), **TOL[dtype])


@SCHEMES
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_output_adjoint_matches_definition_and_is_the_adjoint(f, data, seed):
    n, c, h, w, ph, pw, th, tw, pitch, dtype = data.draw(cases(f))
    rng = np.random.default_rng(seed)
    gy = rng.standard_normal((n, c, h + 2 * ph - 2, w + 2 * pw - 2)).astype(dtype)
    dm = tile_rows(f, c * n * th * pitch, dtype)
    kernel(f, "output_adjoint")(gy, dm, th, tw, pitch)
    np.testing.assert_allclose(dm[:, :-PAD], ref_output_adjoint(f, gy.astype(np.float64), th, tw, pitch), **TOL[dtype])
    assert np.isnan(dm[:, -PAD:]).all()

    m = tile_rows(f, c * n * th * pitch, dtype)
    m[:, :-PAD] = rng.standard_normal((products(f), c * n * th * pitch))
    y = np.empty_like(gy)
    kernel(f, "output")(m, y, th, tw, pitch)
    lhs = np.vdot(y.astype(np.float64), gy.astype(np.float64))
    rhs = np.vdot(m[:, :-PAD].astype(np.float64), dm[:, :-PAD].astype(np.float64))
    assert lhs == pytest.approx(rhs, rel=TOL[dtype]["rtol"] * 10, abs=TOL[dtype]["atol"] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_f4_kernels_on_planes_that_split_the_chunk_into_image_groups(dtype):
    """Planes large enough that F(4x4)'s loops take the chunk a few images at a time (the last
    group short): every transform still as defined."""
    f, (n, c, h, w) = F4, (5, 2, 30, 29)
    th, tw = -(-h // 4), -(-w // 4)  # padding 1
    pitch = tw + 1
    assert cpu.winograd4.GROUP_TILES // (th * pitch) + 1 < n
    rng = np.random.default_rng(3)
    x, gy = rng.standard_normal((n, c, h, w)).astype(dtype), rng.standard_normal((n, c, h, w)).astype(dtype)
    v, dm, m = (tile_rows(f, c * n * th * pitch, dtype) for _ in range(3))
    m[:, :-PAD] = rng.standard_normal((36, c * n * th * pitch))
    y = np.full((n, c, h, w), np.nan, dtype)
    kernel(f, "input")(x, v, 1, 1, th, tw, pitch)
    kernel(f, "output")(m, y, th, tw, pitch)
    kernel(f, "output_adjoint")(gy, dm, th, tw, pitch)
    np.testing.assert_allclose(real_tiles(v[:, :-PAD], c, n, th, tw, pitch),
                               real_tiles(ref_input(f, x.astype(np.float64), 1, 1, th, tw, pitch), c, n, th, tw, pitch),
                               **TOL[dtype])
    assert np.isfinite(v[:, :-PAD]).all()
    np.testing.assert_allclose(y, ref_output(f, m[:, :-PAD].astype(np.float64), y.shape, th, tw, pitch), **TOL[dtype])
    np.testing.assert_allclose(dm[:, :-PAD], ref_output_adjoint(f, gy.astype(np.float64), th, tw, pitch), **TOL[dtype])


def test_f2_kernels_refuse_dummy_tiles():
    x, v = np.zeros((1, 1, 4, 4)), np.zeros((16, 8))
    with pytest.raises(ValueError, match="winograd_input: the CPU's F\\(2x2\\) layout has no dummy tiles"):
        cpu.winograd_input(x, v, 1, 1, 2, 2, 3)
    with pytest.raises(ValueError, match="winograd_output_adjoint: .* no dummy tiles"):
        cpu.winograd_output_adjoint(x, v, 2, 2, 3)


@SCHEMES
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transforms_compose_to_a_convolution(f, dtype):
    """Input transform, elementwise product with G g G^T, output transform: one 3x3 conv of a
    single plane, against the sum of its nine taps."""
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((1, 1, 7, 8)).astype(dtype), rng.standard_normal((3, 3))
    th, tw = -(-7 // f.m), -(-8 // f.m)  # output 7x8 with padding 1
    pitch = tw + f.pitches[-1]
    v = np.empty((products(f), th * pitch), dtype)
    kernel(f, "input")(x, v, 1, 1, th, tw, pitch)
    m = (v * (f.G @ g @ f.G.T).reshape(-1, 1)).astype(dtype)
    y = np.empty((1, 1, 7, 8), dtype)
    kernel(f, "output")(m, y, th, tw, pitch)
    padded = np.pad(x[0, 0].astype(np.float64), 1)
    expected = sum(g[i, j] * padded[i:i + 7, j:j + 8] for i in range(3) for j in range(3))
    np.testing.assert_allclose(y[0, 0], expected, **TOL[dtype])
