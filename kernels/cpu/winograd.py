"""The tile transforms of Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2015).

A 3x3 stride-1 convolution computes each 2x2 output tile from a 4x4 input tile ``d`` as

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, 16 products instead of 36)

    B^T = [[1, 0,-1, 0],      G = [[1,   0,   0 ],      A^T = [[1, 1, 1, 0],
           [0, 1, 1, 0],           [1/2, 1/2, 1/2],            [0, 1,-1,-1]]
           [0,-1, 1, 0],           [1/2,-1/2, 1/2],
           [0, 1, 0,-1]]           [0,   0,   1 ]]

Tiles start every 2 pixels, so neighbouring input tiles overlap by 2. Summed over input channels,
the 16 elementwise products become 16 GEMMs, one per tile position ``xi = 4*i + j``:
``M[xi] (O, tiles) = U[xi] (O, C) @ V[xi] (C, tiles)``. These kernels move between images and
that layout, each ``V[xi]`` flattened into row ``xi`` of a 2-D array (channel ``c``'s tiles at
``c*tiles``, then the tile of image ``n`` at tile row ``ty``, column ``tx`` at
``n*th*pitch + ty*pitch + tx``). The rows may be longer than that: the caller pads them so that
the 16 rows, read or written together, do not all fall into the same cache sets.

``pitch`` is ``tw`` or ``tw + 1``, and picks one of two ways to run the loops:

- ``pitch == tw``, a tile row at a time: the ``tw`` tiles of a row are one loop, reading inputs
  two apart and writing each of the 16 outputs contiguously (2-6x faster than a tile at a time,
  whose 16 scattered stores defeat the vectoriser).
- ``pitch == tw + 1``: each tile row ends with a dummy tile, and then tile ``k = ty*pitch + tx``
  of a plane reads the same places of four polyphase components of the padded plane (its
  even/odd rows and columns, laid out with ``pitch`` entries a row) at ``k``, ``k + 1``,
  ``k + pitch`` and ``k + pitch + 1``, so the input transform and the output transform's
  adjoint run a whole plane per unit-stride loop. LLVM vectorises only loops of more than a
  few vectors, and reads two apart cost 4-7x more than unit-stride ones (measured on a
  272-long loop): on 32x32 planes these two transforms run 2x and 1.6x faster this way. The
  output transform stays a tile row at a time (it is bound by reading M either way). The dummy
  tiles cost the GEMMs ``1/tw`` more columns: what the input transform writes there is finite
  and unspecified, the output transform skips them, and its adjoint writes zeros there, so
  they add nothing to the weight gradient.

Both ways compute every value with the same operations, so they agree bit for bit. They run on
the calling thread without the GIL: the conv op hands each core its own batch chunk.
"""
import numpy as np
from numba import njit

from ._taps import copy_row

# (B^T d)'s rows from d's rows d0..d3: row i = d[first] + sign * d[second], each d_r as (row
# parity r % 2, polyphase rows further down r // 2).
_BT_ROWS = ((0, 0, 0, 1, -1),   # d0 - d2
            (1, 0, 0, 1, 1),    # d1 + d2
            (0, 1, 1, 0, -1),   # d2 - d1
            (1, 0, 1, 1, -1))   # d1 - d3


@njit(inline="always", cache=True)
def _polyphase_buffers(th, pitch, dtype):
    """Zeroed scratch for one plane of ``th + 1`` polyphase rows: (2, ...) for its even and odd
    rows at full width, (4, ...) for the components ``2*row parity + column parity``. Both have
    room past the end for the reads of the last row's dummy tile."""
    halves = np.zeros((2, (th + 1) * 2 * pitch + 2), dtype)
    poly = np.zeros((4, (th + 1) * pitch + 1), dtype)
    return halves, poly


@njit(inline="always", cache=True)
def _split_plane(plane, rows, cols, row0, col0, halves, poly, th, pitch):
    """``plane[:rows, :cols]`` placed at (row0, col0) of a zero-padded plane of rows
    ``2*pitch`` wide, split into ``poly[2a + b][y*pitch + s] = padded[2y + a, 2s + b]``.
    Everything outside the placed rectangle keeps the zeros it was allocated with."""
    width = 2 * pitch
    for r in range(rows):
        padded_row = r + row0
        start = (padded_row // 2) * width + col0
        copy_row(halves[padded_row % 2, start:start + cols], plane[r], 0, cols, 1, 0)
    for a in range(2):
        src, src_odd = halves[a], halves[a, 1:]
        even, odd = poly[2 * a], poly[2 * a + 1]
        for k in range((th + 1) * pitch):
            even[k] = src[2 * k]
            odd[k] = src_odd[2 * k]


@njit(nogil=True, cache=True)
def winograd_input(x, v, ph, pw, th, tw, pitch):
    """``V = B^T d B`` for every 4x4 tile of ``x`` (N, C, H, W) zero-padded by (ph, pw):
    ``v[xi, c*N*th*pitch + col]``, tile (ty, tx) reading padded rows 2ty..2ty+3, columns 2tx..2tx+3."""
    n_img, channels, h, w = x.shape
    tiles = n_img * th * pitch
    h_in, w_in = min(h, 2 * th + 2 - ph), min(w, 2 * tw + 2 - pw)  # rows/columns no tile reaches are skipped
    if pitch == tw:
        _input_by_rows(x, v, ph, pw, th, tw, h_in, w_in, tiles)
    else:
        _input_by_planes(x, v, ph, pw, th, pitch, h_in, w_in, tiles)


@njit(inline="always", cache=True)
def _input_by_planes(x, v, ph, pw, th, pitch, h_in, w_in, tiles):
    """:func:`winograd_input` a plane at a time, for ``pitch == tw + 1``."""
    n_img, channels = x.shape[:2]
    halves, poly = _polyphase_buffers(th, pitch, x.dtype)
    count = th * pitch
    for n in range(n_img):
        for c in range(channels):
            _split_plane(x[n, c], h_in, w_in, ph, pw, halves, poly, th, pitch)
            start = c * tiles + n * count
            for i in range(4):
                first_a, first_down, second_a, second_down, sign_int = _BT_ROWS[i]
                sign = x.dtype.type(sign_int)
                # the tile's row i of B^T d: columns 2tx (ae), 2tx+1 (ao), 2tx+2 (ae[k+1]), 2tx+3
                ae = poly[2 * first_a, first_down * pitch:]
                ao = poly[2 * first_a + 1, first_down * pitch:]
                be = poly[2 * second_a, second_down * pitch:]
                bo = poly[2 * second_a + 1, second_down * pitch:]
                ae1, ao1, be1, bo1 = ae[1:], ao[1:], be[1:], bo[1:]
                v0 = v[4 * i, start:start + count]
                v1 = v[4 * i + 1, start:start + count]
                v2 = v[4 * i + 2, start:start + count]
                v3 = v[4 * i + 3, start:start + count]
                for k in range(count):  # (B^T d) B along the row
                    c0, c1 = ae[k] + sign * be[k], ao[k] + sign * bo[k]
                    c2, c3 = ae1[k] + sign * be1[k], ao1[k] + sign * bo1[k]
                    v0[k] = c0 - c2
                    v1[k] = c1 + c2
                    v2[k] = c2 - c1
                    v3[k] = c1 - c3


@njit(inline="always", cache=True)
def _input_by_rows(x, v, ph, pw, th, tw, h_in, w_in, tiles):
    """:func:`winograd_input` a tile row at a time, for ``pitch == tw``."""
    n_img, channels = x.shape[:2]
    width = 2 * tw + 2
    padded = np.zeros((2 * th + 2, width), x.dtype)  # borders stay zero; the image part is refilled
    rows = np.empty((4, width), x.dtype)
    for n in range(n_img):
        for c in range(channels):
            for r in range(h_in):
                copy_row(padded[r + ph, pw:pw + w_in], x[n, c, r], 0, w_in, 1, 0)
            for ty in range(th):
                d0, d1, d2, d3 = padded[2 * ty], padded[2 * ty + 1], padded[2 * ty + 2], padded[2 * ty + 3]
                r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
                for s in range(width):  # B^T d: combine the tile row's four input rows
                    r0[s] = d0[s] - d2[s]
                    r1[s] = d1[s] + d2[s]
                    r2[s] = d2[s] - d1[s]
                    r3[s] = d1[s] - d3[s]
                start = c * tiles + n * th * tw + ty * tw
                for i in range(4):  # (B^T d) B: the same combination along each row
                    row = rows[i]
                    v0 = v[4 * i, start:start + tw]
                    v1 = v[4 * i + 1, start:start + tw]
                    v2 = v[4 * i + 2, start:start + tw]
                    v3 = v[4 * i + 3, start:start + tw]
                    for t in range(tw):
                        a, b, e, f = row[2 * t], row[2 * t + 1], row[2 * t + 2], row[2 * t + 3]
                        v0[t] = a - e
                        v1[t] = b + e
                        v2[t] = e - b
                        v3[t] = b - f


@njit(nogil=True, cache=True)
def winograd_output(m, y, th, tw, pitch):
    """``Y = A^T M A``: ``m[xi, o*N*th*pitch + col]`` back to ``y`` (N, O, oh, ow), which is
    overwritten; the parts of edge tiles beyond (oh, ow) are dropped, and so are dummy tiles.

    Always a tile row at a time: reading M, fresh from the GEMMs and larger than L2, bounds it
    either way (a whole-plane version measured 1.3x slower)."""
    n_img, channels, oh, ow = y.shape
    tiles = n_img * th * pitch
    pair = np.empty((2, 2 * tw), y.dtype)
    for n in range(n_img):
        for o in range(channels):
            for ty in range(th):
                start = o * tiles + (n * th + ty) * pitch
                top, bottom = pair[0], pair[1]
                for t in range(tw):
                    # A^T M: sums over the tile's rows i, for each column j
                    s0 = m[0, start + t] + m[4, start + t] + m[8, start + t]
                    s1 = m[1, start + t] + m[5, start + t] + m[9, start + t]
                    s2 = m[2, start + t] + m[6, start + t] + m[10, start + t]
                    s3 = m[3, start + t] + m[7, start + t] + m[11, start + t]
                    q0 = m[4, start + t] - m[8, start + t] - m[12, start + t]
                    q1 = m[5, start + t] - m[9, start + t] - m[13, start + t]
                    q2 = m[6, start + t] - m[10, start + t] - m[14, start + t]
                    q3 = m[7, start + t] - m[11, start + t] - m[15, start + t]
                    top[2 * t] = s0 + s1 + s2
                    top[2 * t + 1] = s1 - s2 - s3
                    bottom[2 * t] = q0 + q1 + q2
                    bottom[2 * t + 1] = q1 - q2 - q3
                for r in range(min(2, oh - 2 * ty)):
                    copy_row(y[n, o, 2 * ty + r], pair[r], 0, ow, 1, 0)


@njit(nogil=True, cache=True)
def winograd_output_adjoint(gy, dm, th, tw, pitch):
    """The adjoint of :func:`winograd_output`, ``dM = A dY A^T``: ``gy`` (N, O, oh, ow) to
    ``dm[xi, o*N*th*pitch + col]``, the missing outputs of edge tiles (and dummy tiles) counting
    as zero. A = [[1, 0], [1, 1], [1, -1], [0, -1]]."""
    tiles = gy.shape[0] * th * pitch
    if pitch == tw:
        _output_adjoint_by_rows(gy, dm, th, tw, tiles)
    else:
        _output_adjoint_by_planes(gy, dm, th, pitch, tiles)


@njit(inline="always", cache=True)
def _output_adjoint_by_rows(gy, dm, th, tw, tiles):
    """:func:`winograd_output_adjoint` a tile row at a time, for ``pitch == tw``."""
    n_img, channels, oh, ow = gy.shape
    width = 2 * tw
    padded = np.zeros((2 * th, width), gy.dtype)
    rows = np.empty((4, width), gy.dtype)
    for n in range(n_img):
        for o in range(channels):
            for r in range(oh):
                copy_row(padded[r, :ow], gy[n, o, r], 0, ow, 1, 0)
            for ty in range(th):
                g0, g1 = padded[2 * ty], padded[2 * ty + 1]
                r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
                for s in range(width):  # A dY
                    r0[s] = g0[s]
                    r1[s] = g0[s] + g1[s]
                    r2[s] = g0[s] - g1[s]
                    r3[s] = -g1[s]
                start = o * tiles + n * th * tw + ty * tw
                for i in range(4):  # (A dY) A^T
                    row = rows[i]
                    d0 = dm[4 * i, start:start + tw]
                    d1 = dm[4 * i + 1, start:start + tw]
                    d2 = dm[4 * i + 2, start:start + tw]
                    d3 = dm[4 * i + 3, start:start + tw]
                    for t in range(tw):
                        a, b = row[2 * t], row[2 * t + 1]
                        d0[t] = a
                        d1[t] = a + b
                        d2[t] = a - b
                        d3[t] = -b


@njit(inline="always", cache=True)
def _output_adjoint_by_planes(gy, dm, th, pitch, tiles):
    """:func:`winograd_output_adjoint` a plane at a time, for ``pitch == tw + 1``: dummy tiles
    read the zero padding past ``ow``."""
    n_img, channels, oh, ow = gy.shape
    halves, poly = _polyphase_buffers(th, pitch, gy.dtype)
    count = th * pitch
    g00, g01, g10, g11 = poly[0], poly[1], poly[2], poly[3]
    for n in range(n_img):
        for o in range(channels):
            _split_plane(gy[n, o], oh, ow, 0, 0, halves, poly, th, pitch)
            start = o * tiles + n * count
            for i in range(4):
                d0 = dm[4 * i, start:start + count]
                d1 = dm[4 * i + 1, start:start + count]
                d2 = dm[4 * i + 2, start:start + count]
                d3 = dm[4 * i + 3, start:start + count]
                for k in range(count):
                    if i == 0:  # row i of A dY, its two columns (the test is hoisted out)
                        a, b = g00[k], g01[k]
                    elif i == 1:
                        a, b = g00[k] + g10[k], g01[k] + g11[k]
                    elif i == 2:
                        a, b = g00[k] - g10[k], g01[k] - g11[k]
                    else:
                        a, b = -g10[k], -g11[k]
                    d0[k] = a  # (A dY) A^T
                    d1[k] = a + b
                    d2[k] = a - b
                    d3[k] = -b
