"""Window arithmetic and the loops that move one kernel tap, shared by the convolution kernels.

Along one axis a convolution maps output position ``o`` and a tap at ``offset = k*dilation`` to
input position ``o*stride - pad + offset``. :func:`tap_range` says which outputs that lands inside
the input for; the row helpers move one row of values along that map, :func:`copy_tap` and
:func:`scatter_tap_axpy` a whole (oh, ow) plane for one tap (i, j), and :func:`flat_layout` turns a
plane's worth of rows into one long row. They are ``inline="always"`` so every caller gets
them specialised to its dtype and fastmath flags, with the bounds visible to LLVM.

Every inner loop indexes a view from 0 upwards. Numba wraps negative indices around, and for an
index LLVM cannot prove non-negative (``o + offset``) that check turned the unit-stride copy into
AVX-512 gathers and scatters, 2-3x slower; ``range(n)`` over a view is provably non-negative.

Numba's on-disk cache checks only the source file of the kernel it compiled, not the helpers
inlined into it: after editing this file, delete ``kernels/cpu/__pycache__`` (or touch the kernel
modules), or the kernels keep running the old code.
"""
from numba import njit


@njit(inline="always", cache=True)
def tap_range(offset, pad, stride, in_size, out_size):
    """Output positions ``o`` in ``[lo, hi)`` with ``0 <= o*stride - pad + offset < in_size``;
    always ``0 <= lo <= hi <= out_size`` (``lo == hi`` when there are none), so callers may
    also use ``[0, lo)`` and ``[hi, out_size)`` as the outputs that land in the padding."""
    # ceil((pad - offset) / stride) and ceil((in_size + pad - offset) / stride), numerators of
    # either sign (// floors).
    lo = min(max(-((offset - pad) // stride), 0), out_size)
    hi = min(-((offset - pad - in_size) // stride), out_size)
    return lo, max(hi, lo)


@njit(inline="always", cache=True)
def zero(a):
    """``a[:] = 0`` for a 1-D view."""
    for k in range(a.size):
        a[k] = 0


@njit(inline="always", cache=True)
def copy_row(dst, src, lo, hi, stride, offset):
    """``dst[o] = src[o*stride + offset]`` for ``o`` in ``[lo, hi)``."""
    d = dst[lo:hi]
    if stride == 1:
        s = src[lo + offset:hi + offset]
        for k in range(d.size):
            d[k] = s[k]
    else:
        s_strided = src[lo * stride + offset::stride]
        for k in range(d.size):
            d[k] = s_strided[k]


@njit(inline="always", cache=True)
def gather_row_axpy(dst, a, src, lo, hi, stride, offset):
    """``dst[o] += a * src[o*stride + offset]`` for ``o`` in ``[lo, hi)``."""
    d = dst[lo:hi]
    if stride == 1:
        s = src[lo + offset:hi + offset]
        for k in range(d.size):
            d[k] += a * s[k]
    elif stride == 2:
        # A contiguous view indexed 2*k vectorises as interleaved loads (3x faster for a
        # stride-2 depthwise forward). The same spelling made the other helpers slower.
        s2 = src[lo * 2 + offset:]
        for k in range(d.size):
            d[k] += a * s2[2 * k]
    else:
        s_strided = src[lo * stride + offset::stride]
        for k in range(d.size):
            d[k] += a * s_strided[k]


@njit(inline="always", cache=True)
def scatter_row_axpy(dst, a, src, lo, hi, stride, offset):
    """``dst[o*stride + offset] += a * src[o]`` for ``o`` in ``[lo, hi)``, the adjoint of
    :func:`gather_row_axpy`. Distinct ``o`` reach distinct ``dst`` entries."""
    s = src[lo:hi]
    if stride == 1:
        d = dst[lo + offset:hi + offset]
        for k in range(s.size):
            d[k] += a * s[k]
    else:
        d_strided = dst[lo * stride + offset::stride]
        for k in range(s.size):
            d_strided[k] += a * s[k]


@njit(inline="always", cache=True)
def dot_row(a, src, lo, hi, stride, offset):
    """``sum_o a[o] * src[o*stride + offset]`` over ``o`` in ``[lo, hi)``, in ``a``'s dtype."""
    av = a[lo:hi]
    acc = a.dtype.type(0)
    if stride == 1:
        s = src[lo + offset:hi + offset]
        for k in range(av.size):
            acc += av[k] * s[k]
    else:
        s_strided = src[lo * stride + offset::stride]
        for k in range(av.size):
            acc += av[k] * s_strided[k]
    return acc


@njit(inline="always", cache=True)
def copy_tap(out, inp, off_h, off_w, sh, sw, ph, pw):
    """Overwrite ``out`` (oh, ow) with ``inp[y*sh - ph + off_h, z*sw - pw + off_w]``, 0 where
    that falls outside ``inp`` (H, W): one im2col row of one image."""
    oh, ow = out.shape
    y_lo, y_hi = tap_range(off_h, ph, sh, inp.shape[0], oh)
    z_lo, z_hi = tap_range(off_w, pw, sw, inp.shape[1], ow)
    for y in range(y_lo):
        zero(out[y])
    for y in range(y_lo, y_hi):
        row = out[y]
        zero(row[:z_lo])
        copy_row(row, inp[y * sh - ph + off_h], z_lo, z_hi, sw, off_w - pw)
        zero(row[z_hi:])
    for y in range(y_hi, oh):
        zero(out[y])


@njit(inline="always", cache=True)
def scatter_tap_axpy(inp, a, out, off_h, off_w, sh, sw, ph, pw):
    """``inp[y*sh - ph + off_h, z*sw - pw + off_w] += a * out[y, z]`` for every (y, z) whose tap
    lands inside ``inp`` (H, W): the adjoint of :func:`copy_tap`, scaled. One tap reaches each
    ``inp`` pixel at most once."""
    y_lo, y_hi = tap_range(off_h, ph, sh, inp.shape[0], out.shape[0])
    z_lo, z_hi = tap_range(off_w, pw, sw, inp.shape[1], out.shape[1])
    for y in range(y_lo, y_hi):
        scatter_row_axpy(inp[y * sh - ph + off_h], a, out[y], z_lo, z_hi, sw, off_w - pw)


@njit(inline="always", cache=True)
def flat_layout(h_in, w_in, oh, kh, kw, sh, sw, ph, pw, dh, dw):
    """Geometry that turns a whole strided, dilated, padded convolution of one plane into one
    1-D loop per tap.

    The input plane goes, zero-padded, into a flat buffer with rows of ``wp`` (``W + 2*pw``
    rounded up to a multiple of ``sw``); outputs go in rows of ``wo = sh*wp // sw``, of which
    the first ``ow`` are real. Then output ``k = y*wo + z`` of tap (i, j) reads padded input
    ``k*sw + i*dh*wp + j*dw`` for every k alike, so each tap is a single
    ``gather_row_axpy``/``scatter_row_axpy``/``dot_row`` over ``n_out = oh*wo`` entries instead
    of ``oh`` short rows with their own bounds (measured 2-4x faster on 4x4..32x32 planes). The
    columns past ``ow`` read padding or the next row: a forward pass discards them, and backward
    passes keep them zero in the buffer they read gradients from, so they add nothing.
    Returns ``(wp, wo, in_size, n_out)``; ``in_size`` covers everything the extra columns reach.
    """
    wp = -(-(w_in + 2 * pw) // sw) * sw
    wo = sh * wp // sw
    n_out = oh * wo
    reach = (n_out - 1) * sw + (kh - 1) * dh * wp + (kw - 1) * dw + 1
    rows = max(-(-reach // wp), h_in + ph)
    return wp, wo, rows * wp, n_out


@njit(inline="always", cache=True)
def load_rows(flat, plane, row0, col0, width):
    """Copy ``plane`` (R, Q) into the flat buffer laid out in rows of ``width``, its top-left
    corner at (row0, col0); the rest of ``flat`` is left as it is."""
    for r in range(plane.shape[0]):
        start = (row0 + r) * width + col0
        copy_row(flat[start:start + plane.shape[1]], plane[r], 0, plane.shape[1], 1, 0)


@njit(inline="always", cache=True)
def store_rows(plane, flat, row0, col0, width):
    """The inverse of :func:`load_rows`: overwrite ``plane`` (R, Q) from the flat buffer."""
    for r in range(plane.shape[0]):
        start = (row0 + r) * width + col0
        copy_row(plane[r], flat[start:start + plane.shape[1]], 0, plane.shape[1], 1, 0)
