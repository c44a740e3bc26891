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
vectorises only loops longer than a few vectors; see ``GROUP_TILES``). A plane, zero-padded, is
first laid out by row, ``by_row[a][y*4*pitch + col] = padded[4y + a, col]``: tile row ``y`` of
every row phase ``a``, ``4*pitch`` columns wide. The first matrix of a transform (``B^T``, or
``A`` in the output adjoint) then acts on the columns of the tiles, every column of every tile
row at once: one unit-stride loop over ``J = y*4*pitch + col``, reading the tile's row ``r`` at
``by_row[r % 4][J + (r // 4)*4*pitch]``. The second acts on the tiles' rows: tile ``k = ty*pitch
+ tx`` finds its column ``q`` at ``4k + q`` of that result (columns 4 and 5 are the next tile's 0
and 1, hence the dummy tile that ends a row), read from a copy by column phase
(:func:`_deinterleave`). Splitting the padded plane itself into its 16 polyphase components (and
8 more for the rows below a tile row), for unit-stride passes over tiles in both directions,
took longer for the split than for both passes. What the input transform writes into dummy
tiles is finite and unspecified, the output transform drops them, and its adjoint writes zeros
there (their columns lie past the plane), so they add nothing to the weight gradient; they cost
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
def _place_rows(plane, rows, cols, row0, col0, by_row, pitch):
    """``plane[:rows, :cols]`` placed at (row0, col0) of a zero-padded plane laid out by row:
    ``by_row[a][y*4*pitch + col] = padded[4y + a, col]``. Outside the placed rectangle
    ``by_row`` keeps the zeros it was made with, for every plane."""
    for r in range(rows):
        padded_row = r + row0
        first = (padded_row // 4) * 4 * pitch + col0
        dst, src = by_row[padded_row % 4, first:first + cols], plane[r]
        for q in range(cols):
            dst[q] = src[q]


@njit(inline="always", cache=True)
def _deinterleave(row, columns, tiles):
    """``columns[q][k] = row[4k + q]`` for the first ``tiles`` tiles. The row passes read their
    columns from these unit-stride copies: reading ``row`` 4 apart inside a pass took longer
    than copying first (on the 2-core host: 12-14 against 8-9 ns a tile for a row pass of the
    input transform; conv fwd+bwd at batch 128, 1.05-1.08x)."""
    c0, c1, c2, c3 = columns[0, :tiles], columns[1, :tiles], columns[2, :tiles], columns[3, :tiles]
    for k in range(tiles):
        c0[k], c1[k], c2[k], c3[k] = row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3]
    return columns[0], columns[1], columns[2], columns[3]


@njit(nogil=True, cache=True)
def winograd4_input(x, v, ph, pw, th, tw, pitch):
    """``V = B^T d B`` for every 6x6 tile of ``x`` (N, C, H, W) zero-padded by (ph, pw):
    ``v[xi, c*N*th*pitch + col]``, tile (ty, tx) reading padded rows 4ty..4ty+5, columns
    4tx..4tx+5. Requires ``pitch > tw``."""
    n_img, channels, h, w = x.shape
    count, width = th * pitch, 4 * pitch
    tiles = n_img * count
    h_in, w_in = min(h, 4 * th + 2 - ph), min(w, 4 * tw + 2 - pw)  # rows/columns no tile reaches are skipped
    group = _images_per_group(n_img, count)
    by_row = np.zeros((4, (th + 1) * width), x.dtype)  # a tile row's last two rows are the next's first
    # B^T d: row i holds entry i of B^T times each column of every tile row of the group's planes,
    # plus the columns that the group's last (dummy) tile reads; ``columns`` holds a row of it
    # by column phase
    bt_d = np.zeros((6, group * 4 * count + 4), x.dtype)
    columns = np.empty((4, group * count + 1), x.dtype)
    for c, n0, images in _groups(channels, n_img, group):
        for n in range(images):
            _place_rows(x[n0 + n, c], h_in, w_in, ph, pw, by_row, pitch)
            d0, d1, d2, d3, d4, d5 = by_row[0], by_row[1], by_row[2], by_row[3], by_row[0, width:], by_row[1, width:]
            first, last = n * 4 * count, (n + 1) * 4 * count
            t0, t1, t2 = bt_d[0, first:last], bt_d[1, first:last], bt_d[2, first:last]
            t3, t4, t5 = bt_d[3, first:last], bt_d[4, first:last], bt_d[5, first:last]
            for j in range(4 * count):
                r0, r1, r2, r3, r4, r5 = _bt(d0[j], d1[j], d2[j], d3[j], d4[j], d5[j])
                t0[j], t1[j], t2[j], t3[j], t4[j], t5[j] = r0, r1, r2, r3, r4, r5
        start, tiles_here = c * tiles + n0 * count, images * count
        for i in range(6):  # each row i of B^T d times B
            c0, c1, c2, c3 = _deinterleave(bt_d[i], columns, tiles_here + 1)
            v0, v1 = v[6 * i, start:start + tiles_here], v[6 * i + 1, start:start + tiles_here]
            v2, v3 = v[6 * i + 2, start:start + tiles_here], v[6 * i + 3, start:start + tiles_here]
            v4, v5 = v[6 * i + 4, start:start + tiles_here], v[6 * i + 5, start:start + tiles_here]
            n0, n1 = c0[1:], c1[1:]  # columns 4 and 5: the next tile's 0 and 1
            for k in range(tiles_here):
                r0, r1, r2, r3, r4, r5 = _bt(c0[k], c1[k], c2[k], c3[k], n0[k], n1[k])
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
    by_row = np.zeros((4, th * 4 * pitch), gy.dtype)
    a_dy = np.empty((6, group * 4 * count), gy.dtype)  # A dY: row i, entry i of A times each column
    columns = np.empty((4, group * count), gy.dtype)
    for o, n0, images in _groups(channels, n_img, group):
        for n in range(images):
            _place_rows(gy[n0 + n, o], oh, ow, 0, 0, by_row, pitch)
            g0, g1, g2, g3 = by_row[0], by_row[1], by_row[2], by_row[3]
            first, last = n * 4 * count, (n + 1) * 4 * count
            s0, s1, s2 = a_dy[0, first:last], a_dy[1, first:last], a_dy[2, first:last]
            s3, s4, s5 = a_dy[3, first:last], a_dy[4, first:last], a_dy[5, first:last]
            for j in range(4 * count):
                r0, r1, r2, r3, r4, r5 = _a(g0[j], g1[j], g2[j], g3[j])
                s0[j], s1[j], s2[j], s3[j], s4[j], s5[j] = r0, r1, r2, r3, r4, r5
        start, tiles_here = o * tiles + n0 * count, images * count
        for i in range(6):  # each row i of A dY times A^T
            e0, e1, e2, e3 = _deinterleave(a_dy[i], columns, tiles_here)
            d0, d1 = dm[6 * i, start:start + tiles_here], dm[6 * i + 1, start:start + tiles_here]
            d2, d3 = dm[6 * i + 2, start:start + tiles_here], dm[6 * i + 3, start:start + tiles_here]
            d4, d5 = dm[6 * i + 4, start:start + tiles_here], dm[6 * i + 5, start:start + tiles_here]
            for k in range(tiles_here):
                r0, r1, r2, r3, r4, r5 = _a(e0[k], e1[k], e2[k], e3[k])
                d0[k], d1[k], d2[k], d3[k], d4[k], d5[k] = r0, r1, r2, r3, r4, r5
