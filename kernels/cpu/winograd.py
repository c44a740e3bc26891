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

The loops run a tile row at a time: the ``tw`` tiles of a row are one loop, reading inputs two
apart and writing each of the 16 outputs contiguously (2-6x faster than a tile at a time, whose 16
scattered stores defeat the vectoriser). The CPU takes F(2x2) only for planes of 4 pixels or
fewer across (wider ones go to ``winograd4.py``), so its rows are tight: ``pitch == tw`` (the
GPU twin also takes a dummy tile ending each row, ``pitch == tw + 1``; the output transform here
skips such tiles too). They run on the calling thread without the GIL: the conv op hands each
core its own batch chunk.
"""
import numpy as np
from numba import njit

from ._taps import copy_row


@njit(nogil=True, cache=True)
def winograd_input(x, v, ph, pw, th, tw, pitch):
    """``V = B^T d B`` for every 4x4 tile of ``x`` (N, C, H, W) zero-padded by (ph, pw):
    ``v[xi, c*N*th*tw + col]``, tile (ty, tx) reading padded rows 2ty..2ty+3, columns 2tx..2tx+3.
    Requires ``pitch == tw``."""
    if pitch != tw:
        raise ValueError("winograd_input: the CPU's F(2x2) layout has no dummy tiles (pitch == tw)")
    n_img, channels, h, w = x.shape
    tiles = n_img * th * tw
    h_in, w_in = min(h, 2 * th + 2 - ph), min(w, 2 * tw + 2 - pw)  # rows/columns no tile reaches are skipped
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
    overwritten; the parts of edge tiles beyond (oh, ow) are dropped, and so are dummy tiles."""
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
    ``dm[xi, o*N*th*tw + col]``, the missing outputs of edge tiles counting as zero.
    A = [[1, 0], [1, 1], [1, -1], [0, -1]]. Requires ``pitch == tw``."""
    if pitch != tw:
        raise ValueError("winograd_output_adjoint: the CPU's F(2x2) layout has no dummy tiles (pitch == tw)")
    tiles = gy.shape[0] * th * tw
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
