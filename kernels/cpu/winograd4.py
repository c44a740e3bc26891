"""The tile transforms of Winograd's F(4x4, 3x3) (Lavin & Gray, 2015): the CPU's way for wide planes.

A 3x3 stride-1 convolution computes each 4x4 output tile from a 6x6 input tile ``d`` as

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, 36 products instead of 144)

    B^T = [[4,  0, -5,  0, 1, 0],     G = [[ 1/4,     0,    0],     A^T = [[1, 1,  1, 1,  1, 0],
           [0, -4, -4,  1, 1, 0],          [-1/6,  -1/6, -1/6],            [0, 1, -1, 2, -2, 0],
           [0,  4, -4, -1, 1, 0],          [-1/6,   1/6, -1/6],            [0, 1,  1, 4,  4, 0],
           [0, -2, -1,  2, 1, 0],          [1/24,  1/12,  1/6],            [0, 1, -1, 8, -8, 1]]
           [0,  2, -1, -2, 1, 0],          [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]          [   0,     0,    1]]

(interpolation points 0, 1, -1, 2, -2 and infinity). Against F(2x2, 3x3) (``winograd.py``, whose
layout this file shares with 36 rows instead of 16: tile ``xi = 6*i + j`` in row ``xi``) it needs
1.78x fewer multiplies per output and transforms 2.25 values per input pixel instead of 4, but its
tiles are 4 pixels wide: a plane of 4 pixels or fewer across is one tile (plus its dummy) of
mostly padding, which is why the op keeps F(2x2) for those.

Each tile row ends with a dummy tile (``pitch > tw``), which makes every transform a few
unit-stride loops over a channel's tiles in a group of images, ``images*th*pitch`` long (LLVM
vectorises only loops longer than a few vectors, and reads 2 or 4 apart cost several times what
unit-stride ones do; see ``GROUP_TILES``). Each plane, zero-padded, is split into 16 polyphase components,
``P[4a + b][y*pitch + s] = padded[4y + a, 4s + b]`` for the tile rows ``y < th``, and 8 more,
``D[4a + b]``, that hold the same for ``y + 1`` and a < 2 (the bottom rows of a tile, which
would otherwise reach into the next image's components). Then tile ``k = ty*pitch + tx`` finds
its row ``r``, column ``q`` at index ``k + q // 4`` of component ``4*(r % 4) + q % 4`` of P, or
of D for r >= 4: the same offset for every tile of every image. Each transform is two such loops,
over the columns of the tile and then its rows, through a scratch array of partial results. What
the input transform writes into dummy tiles is finite and unspecified, the output transform drops
them, and its adjoint writes zeros there, so they add nothing to the weight gradient; they cost
the GEMMs ``1/tw`` more columns.

The kernels run on the calling thread without the GIL: the conv op hands each core its own batch
chunk.
"""
import numpy as np
from numba import njit

# The transforms' coefficients, typed float32 so that float32 tiles stay float32 (an integer or a
# Python float would promote them to float64); they are exact in either precision.
TWO, FOUR, FIVE, EIGHT = np.float32(2), np.float32(4), np.float32(5), np.float32(8)


@njit(inline="always", cache=True)
def _bt(d0, d1, d2, d3, d4, d5):
    """``B^T`` times the column (d0, ..., d5)."""
    a, b = d4 - FOUR * d2, d3 - FOUR * d1
    c, e = d4 - d2, TWO * (d3 - d1)
    return FOUR * d0 - FIVE * d2 + d4, a + b, a - b, c + e, c - e, FOUR * d1 - FIVE * d3 + d5


@njit(inline="always", cache=True)
def _at(e0, e1, e2, e3, e4, e5):
    """``A^T`` times the column (e0, ..., e5)."""
    s12, d12, s34, d34 = e1 + e2, e1 - e2, e3 + e4, e3 - e4
    return e0 + s12 + s34, d12 + TWO * d34, s12 + FOUR * s34, d12 + EIGHT * d34 + e5


@njit(inline="always", cache=True)
def _a(g0, g1, g2, g3):
    """``A`` times the column (g0, ..., g3): the adjoint of :func:`_at`."""
    even, odd = g0 + g2, g1 + g3
    even4, odd4 = g0 + FOUR * g2, TWO * g1 + EIGHT * g3
    return g0, even + odd, even - odd, even4 + odd4, even4 - odd4, g3


# Each loop runs over a channel's tiles in a group of images, at least this many tiles long when
# the chunk has the images: long enough to vectorise, short enough for the scratch arrays to stay
# in L1/L2. Per image on one core, 64 channels at 8x8 (6 tiles a plane), one plane per loop ->
# groups of 144+ tiles: input transform 25 -> 10 us, output adjoint 25 -> 12; 32x32 planes (72
# tiles) the same either way.
GROUP_TILES = 128


@njit(inline="always", cache=True)
def _images_per_group(n_img, count):
    """Images per group for planes of ``count`` tiles."""
    return max(1, min(n_img, -(-GROUP_TILES // count)))


@njit(inline="always", cache=True)
def _groups(channels, n_img, group):
    """(channel, first image, images) of every group, channel by channel."""
    spans = []
    for c in range(channels):
        for n0 in range(0, n_img, group):
            spans.append((c, n0, min(group, n_img - n0)))
    return spans


@njit(inline="always", cache=True)
def _split_plane(plane, rows, cols, row0, col0, quarters, p, d, start, th, pitch):
    """``plane[:rows, :cols]`` placed at (row0, col0) of a zero-padded plane, split into
    ``p[4a + b][start + y*pitch + s] = padded[4y + a, 4s + b]`` for y < th and, where ``d`` has
    rows (a < 2), ``d[4a + b][start + y*pitch + s]`` for y + 1. ``quarters`` (4, 4*(th + 1)*pitch)
    holds the padded rows by ``row % 4``, each polyphase row ``4*pitch`` wide: zeros outside the
    placed rectangle, which every plane keeps."""
    for r in range(rows):
        padded_row = r + row0
        first = (padded_row // 4) * 4 * pitch + col0
        dst, src = quarters[padded_row % 4, first:first + cols], plane[r]
        for q in range(cols):
            dst[q] = src[q]
    count = th * pitch
    for a in range(4):
        for down in range(2 if a < d.shape[0] // 4 else 1):
            src = quarters[a, 4 * down * pitch:]
            out = p if down == 0 else d
            p0 = out[4 * a, start:start + count]
            p1 = out[4 * a + 1, start:start + count]
            p2 = out[4 * a + 2, start:start + count]
            p3 = out[4 * a + 3, start:start + count]
            for k in range(count):
                p0[k] = src[4 * k]
                p1[k] = src[4 * k + 1]
                p2[k] = src[4 * k + 2]
                p3[k] = src[4 * k + 3]


@njit(nogil=True, cache=True)
def winograd4_input(x, v, ph, pw, th, tw, pitch):
    """``V = B^T d B`` for every 6x6 tile of ``x`` (N, C, H, W) zero-padded by (ph, pw):
    ``v[xi, c*N*th*pitch + col]``, tile (ty, tx) reading padded rows 4ty..4ty+5, columns
    4tx..4tx+5. Requires ``pitch > tw``."""
    n_img, channels, h, w = x.shape
    count = th * pitch
    tiles = n_img * count
    h_in, w_in = min(h, 4 * th + 2 - ph), min(w, 4 * tw + 2 - pw)  # rows/columns no tile reaches are skipped
    group = _images_per_group(n_img, count)
    quarters = np.zeros((4, 4 * (th + 1) * pitch), x.dtype)
    # zeros: a group's last dummy tile reads one entry past its tiles
    p, d = np.zeros((16, group * count + 1), x.dtype), np.zeros((8, group * count + 1), x.dtype)
    bt_d = np.empty((36, group * count), x.dtype)  # B^T d: row 6i + q holds entry (i, q) of every tile
    for c, n0, images in _groups(channels, n_img, group):
        for n in range(images):
            _split_plane(x[n0 + n, c], h_in, w_in, ph, pw, quarters, p, d, n * count, th, pitch)
        tiles_here = images * count
        for q in range(6):  # B^T times each column q of the tile
            phase, right = q % 4, q // 4
            d0, d1 = p[phase, right:], p[4 + phase, right:]
            d2, d3 = p[8 + phase, right:], p[12 + phase, right:]
            d4, d5 = d[phase, right:], d[4 + phase, right:]
            t0, t1, t2, t3, t4, t5 = bt_d[q], bt_d[6 + q], bt_d[12 + q], bt_d[18 + q], bt_d[24 + q], bt_d[30 + q]
            for k in range(tiles_here):
                r0, r1, r2, r3, r4, r5 = _bt(d0[k], d1[k], d2[k], d3[k], d4[k], d5[k])
                t0[k], t1[k], t2[k], t3[k], t4[k], t5[k] = r0, r1, r2, r3, r4, r5
        start = c * tiles + n0 * count
        for i in range(6):  # each row i of B^T d times B
            e0, e1, e2, e3, e4, e5 = bt_d[6 * i], bt_d[6 * i + 1], bt_d[6 * i + 2], bt_d[6 * i + 3], bt_d[6 * i + 4], bt_d[6 * i + 5]
            v0, v1 = v[6 * i, start:start + tiles_here], v[6 * i + 1, start:start + tiles_here]
            v2, v3 = v[6 * i + 2, start:start + tiles_here], v[6 * i + 3, start:start + tiles_here]
            v4, v5 = v[6 * i + 4, start:start + tiles_here], v[6 * i + 5, start:start + tiles_here]
            for k in range(tiles_here):
                r0, r1, r2, r3, r4, r5 = _bt(e0[k], e1[k], e2[k], e3[k], e4[k], e5[k])
                v0[k], v1[k], v2[k], v3[k], v4[k], v5[k] = r0, r1, r2, r3, r4, r5


@njit(nogil=True, cache=True)
def winograd4_output(m, y, th, tw, pitch):
    """``Y = A^T M A``: ``m[xi, o*N*th*pitch + col]`` back to ``y`` (N, O, oh, ow), which is
    overwritten; the parts of edge tiles beyond (oh, ow) are dropped, and so are dummy tiles."""
    n_img, channels, oh, ow = y.shape
    count = th * pitch
    tiles = n_img * count
    group = _images_per_group(n_img, count)
    at_m = np.empty((24, group * count), y.dtype)  # A^T M: row 6a + j holds entry (a, j) of every tile
    quarters = np.empty((4, 4 * group * count), y.dtype)  # output rows 4ty + a of every image, by a
    for o, n0, images in _groups(channels, n_img, group):
        start, tiles_here = o * tiles + n0 * count, images * count
        for j in range(6):  # A^T times each column j of the tile
            e0, e1 = m[j, start:start + tiles_here], m[6 + j, start:start + tiles_here]
            e2, e3 = m[12 + j, start:start + tiles_here], m[18 + j, start:start + tiles_here]
            e4, e5 = m[24 + j, start:start + tiles_here], m[30 + j, start:start + tiles_here]
            s0, s1, s2, s3 = at_m[j], at_m[6 + j], at_m[12 + j], at_m[18 + j]
            for k in range(tiles_here):
                r0, r1, r2, r3 = _at(e0[k], e1[k], e2[k], e3[k], e4[k], e5[k])
                s0[k], s1[k], s2[k], s3[k] = r0, r1, r2, r3
        for a in range(4):  # each row a of A^T M times A
            e0, e1, e2, e3, e4, e5 = at_m[6 * a], at_m[6 * a + 1], at_m[6 * a + 2], at_m[6 * a + 3], at_m[6 * a + 4], at_m[6 * a + 5]
            out = quarters[a]
            for k in range(tiles_here):
                r0, r1, r2, r3 = _at(e0[k], e1[k], e2[k], e3[k], e4[k], e5[k])
                out[4 * k], out[4 * k + 1], out[4 * k + 2], out[4 * k + 3] = r0, r1, r2, r3
        for n in range(images):
            plane = y[n0 + n, o]
            for r in range(oh):
                first = 4 * n * count + (r // 4) * 4 * pitch
                dst, src = plane[r], quarters[r % 4, first:first + ow]
                for q in range(ow):
                    dst[q] = src[q]


@njit(nogil=True, cache=True)
def winograd4_output_adjoint(gy, dm, th, tw, pitch):
    """The adjoint of :func:`winograd4_output`, ``dM = A dY A^T``: ``gy`` (N, O, oh, ow) to
    ``dm[xi, o*N*th*pitch + col]``, the missing outputs of edge tiles (and dummy tiles) counting
    as zero. Requires ``pitch > tw``."""
    n_img, channels, oh, ow = gy.shape
    count = th * pitch
    tiles = n_img * count
    group = _images_per_group(n_img, count)
    quarters = np.zeros((4, 4 * (th + 1) * pitch), gy.dtype)
    p, no_rows_below = np.empty((16, group * count), gy.dtype), np.empty((0, 0), gy.dtype)
    a_dy = np.empty((24, group * count), gy.dtype)  # A dY: row 4i + b holds entry (i, b) of every tile
    for o, n0, images in _groups(channels, n_img, group):
        for n in range(images):
            _split_plane(gy[n0 + n, o], oh, ow, 0, 0, quarters, p, no_rows_below, n * count, th, pitch)
        tiles_here = images * count
        for b in range(4):  # A times each column b of the tile
            g0, g1, g2, g3 = p[b], p[4 + b], p[8 + b], p[12 + b]
            s0, s1, s2, s3, s4, s5 = a_dy[b], a_dy[4 + b], a_dy[8 + b], a_dy[12 + b], a_dy[16 + b], a_dy[20 + b]
            for k in range(tiles_here):
                r0, r1, r2, r3, r4, r5 = _a(g0[k], g1[k], g2[k], g3[k])
                s0[k], s1[k], s2[k], s3[k], s4[k], s5[k] = r0, r1, r2, r3, r4, r5
        start = o * tiles + n0 * count
        for i in range(6):  # each row i of A dY times A^T
            e0, e1, e2, e3 = a_dy[4 * i], a_dy[4 * i + 1], a_dy[4 * i + 2], a_dy[4 * i + 3]
            d0, d1 = dm[6 * i, start:start + tiles_here], dm[6 * i + 1, start:start + tiles_here]
            d2, d3 = dm[6 * i + 2, start:start + tiles_here], dm[6 * i + 3, start:start + tiles_here]
            d4, d5 = dm[6 * i + 4, start:start + tiles_here], dm[6 * i + 5, start:start + tiles_here]
            for k in range(tiles_here):
                r0, r1, r2, r3, r4, r5 = _a(e0[k], e1[k], e2[k], e3[k])
                d0[k], d1[k], d2[k], d3[k], d4[k], d5[k] = r0, r1, r2, r3, r4, r5
