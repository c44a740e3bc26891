"""im2col and its adjoint col2im: the data movement around conv2d's GEMM.

Layout (NCHW input; rows ``C*kh*kw``, columns ``N*oh*ow``), zero padding::

    col[(c*kh + i)*kw + j, (n*oh + y)*ow + z] = x[n, c, y*sh - ph + i*dh, z*sw - pw + j*dw]

so conv2d is ``W.reshape(C_out, C*kh*kw) @ col`` -> (C_out, N*oh*ow). Any leading slice
``x[n0:n1]`` is itself a valid input, which lets the caller unfold a batch in chunks.

Strided convs (both strides > 1, no dilation) have a faster layout, :func:`im2col_phases`: each
output row gets ``q = ow + (kw - 1) // sw`` columns, the last ``q - ow`` of them dummies. The
padded plane is split into its ``sh*sw`` polyphase components, ``P[a, b][y, z] = padded[y*sh + a,
z*sw + b]``, q wide, and then tap (i, j)'s whole (oh, q) block of col is one contiguous run of
component ``(i % sh, j % sw)`` from row ``i // sh``, column ``j // sw``: one long copy per tap,
where the plain layout copies oh rows of ow values read sw apart (2.1-2.5x faster on ResNet's
stride-2 convs). The dummy columns hold finite, unspecified values; the caller drops them from
the GEMM's output and gives :func:`col2im_phases` zeros there.
"""
import numpy as np
from numba import njit, prange

from ._taps import copy_row, copy_tap, scatter_row_axpy, scatter_tap_axpy, tap_range, zero


@njit(inline="always", cache=True)
def _is_flat(h_in, w_in, sh, sw, ow):
    """With unit column stride and output rows exactly sh input rows apart ("same" convolutions:
    3x3 pad 1, 1x1 pad 0, ...), a tap's whole (oh, ow) block is one shifted run of the flattened
    input plane: one long copy (im2col) or add (col2im) instead of a loop over short rows,
    1.3-2.5x faster, most on small planes. Only the entries that wrap around a row edge differ."""
    return sw == 1 and sh * w_in == ow


@njit(inline="always", cache=True)
def _flat_span(i, j, h_in, w_in, sh, ph, pw, dh, dw, oh, ow):
    """For tap (i, j) of a flat problem: block entries ``[lo, hi)`` pair with flattened-plane
    entries ``[lo + shift, hi + shift)``; entries outside that range fall on padding."""
    y_lo, y_hi = tap_range(i * dh, ph, sh, h_in, oh)
    z_lo, z_hi = tap_range(j * dw, pw, 1, w_in, ow)
    if z_lo == z_hi:
        y_hi = y_lo  # no column lands inside: an empty span
    lo = y_lo * ow + z_lo
    return lo, max((y_hi - 1) * ow + z_hi, lo), (i * dh - ph) * w_in + j * dw - pw


@njit(inline="always", cache=True)
def _zero_wrapped(block, i, j, h_in, w_in, sh, ph, pw, dh, dw, oh, ow):
    """Zero the entries of tap (i, j)'s block whose column falls on padding (the wrapped ones)."""
    y_lo, y_hi = tap_range(i * dh, ph, sh, h_in, oh)
    z_lo, z_hi = tap_range(j * dw, pw, 1, w_in, ow)
    for y in range(y_lo, y_hi):
        row = block[y * ow:(y + 1) * ow]
        zero(row[:z_lo])
        zero(row[z_hi:])


@njit(inline="always", cache=True)
def _unfold_block(x, col, t, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Task ``t`` of im2col: the contiguous (oh, ow) block of col for one (n, c, i, j)."""
    n_in, c_in, h_in, w_in = x.shape
    taps = kh * kw
    plane = oh * ow
    tap = t % taps
    nc = t // taps
    n = nc // c_in
    c = nc - n * c_in
    i = tap // kw
    j = tap - i * kw
    block = col[c * taps + tap, n * plane:(n + 1) * plane]
    if _is_flat(h_in, w_in, sh, sw, ow):
        lo, hi, shift = _flat_span(i, j, h_in, w_in, sh, ph, pw, dh, dw, oh, ow)
        zero(block[:lo])
        copy_row(block, x[n, c].reshape(h_in * w_in), lo, hi, 1, shift)
        zero(block[hi:])
        _zero_wrapped(block, i, j, h_in, w_in, sh, ph, pw, dh, dw, oh, ow)
    else:
        copy_tap(block.reshape((oh, ow)), x[n, c], i * dh, j * dw, sh, sw, ph, pw)


@njit(parallel=True, cache=True)
def im2col(x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Unfold ``x`` (N, C, H, W) into ``col`` (C*kh*kw, N*oh*ow), every entry written.

    ``col[(c*kh + i)*kw + j, (n*oh + y)*ow + z] = x[n, c, y*sh - ph + i*dh, z*sw - pw + j*dw]``,
    or 0 where that index falls outside ``x``.
    """
    # One task per (n, c, i, j); consecutive tasks read the same input plane, which stays in L1
    # while its kh*kw taps are copied out.
    for t in prange(x.shape[0] * x.shape[1] * kh * kw):
        _unfold_block(x, col, t, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


@njit(nogil=True, cache=True)
def im2col_serial(x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """:func:`im2col` on the calling thread alone, without holding the GIL: for callers that
    already spread batch chunks over the cores (a parallel kernel there only adds contention)."""
    for t in range(x.shape[0] * x.shape[1] * kh * kw):
        _unfold_block(x, col, t, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


@njit(inline="always", cache=True)
def _fold_plane(col, x_grad, nc, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Task ``nc`` of col2im: the whole (n, c) plane of x_grad, taps summed in (i, j) order."""
    c_in, h_in, w_in = x_grad.shape[1], x_grad.shape[2], x_grad.shape[3]
    taps = kh * kw
    plane = oh * ow
    one = col.dtype.type(1)
    n = nc // c_in
    c = nc - n * c_in
    dst = x_grad[n, c]
    flat_dst = dst.reshape(h_in * w_in)
    zero(flat_dst)
    for tap in range(taps):
        i = tap // kw
        j = tap - i * kw
        block = col[c * taps + tap, n * plane:(n + 1) * plane]
        if _is_flat(h_in, w_in, sh, sw, ow):
            # The mirror of im2col's flat path: one long shifted add. The block entries that
            # wrap around a row edge belong to padding; zeroing them first keeps the add exact.
            lo, hi, shift = _flat_span(i, j, h_in, w_in, sh, ph, pw, dh, dw, oh, ow)
            _zero_wrapped(block, i, j, h_in, w_in, sh, ph, pw, dh, dw, oh, ow)
            scatter_row_axpy(flat_dst, one, block, lo, hi, 1, shift)
        else:
            scatter_tap_axpy(dst, one, block.reshape((oh, ow)), i * dh, j * dw, sh, sw, ph, pw)


@njit(parallel=True, cache=True)
def col2im(col, x_grad, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Fold ``col`` (C*kh*kw, N*oh*ow) into ``x_grad`` (N, C, H, W), which is overwritten.

    The adjoint of :func:`im2col`: each input pixel gets the sum of every col entry im2col copied
    from it, 0 if no window covers it::

        x_grad[n, c, h, w] = sum of col[(c*kh + i)*kw + j, (n*oh + y)*ow + z]
                             over all (i, j, y, z) with h = y*sh - ph + i*dh, w = z*sw - pw + j*dw

    Gather form: a task owns one (n, c) plane of ``x_grad`` and collects into it the col entries
    of every window that covers it, tap by tap in the fixed order (i, j). No task writes outside
    its own plane, so there are no races and the result does not depend on the thread count.
    ``col`` is scratch: entries that im2col would have set to zero (padding) may be zeroed.
    """
    for nc in prange(x_grad.shape[0] * x_grad.shape[1]):
        _fold_plane(col, x_grad, nc, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


@njit(nogil=True, cache=True)
def col2im_serial(col, x_grad, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """:func:`col2im` on the calling thread alone, without holding the GIL (see im2col_serial)."""
    for nc in range(x_grad.shape[0] * x_grad.shape[1]):
        _fold_plane(col, x_grad, nc, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


@njit(inline="always", cache=True)
def _phase_geometry(h, w, kh, kw, sh, sw, ph, pw, oh, ow):
    """(q, component rows, rows of x that a tap reaches, columns of x that a tap reaches) of the
    polyphase layout. The components get one spare row, which the dummies of the last tap's
    block run into."""
    q = ow + (kw - 1) // sw
    rows = oh + (kh - 1) // sh + 1
    return q, rows, min(h, sh * rows - ph), min(w, sw * q - pw)


@njit(inline="always", cache=True)
def _row_phase_slot(r, ph, sh, sw, q):
    """(row phase a, offset) of x's row ``r`` in the padded plane laid out by row phase:
    ``by_row[a][y*sw*q + col] = padded[y*sh + a, col]``."""
    padded_row = r + ph
    return padded_row % sh, (padded_row // sh) * sw * q


@njit(nogil=True, cache=True)
def im2col_phases(x, col, kh, kw, sh, sw, ph, pw, oh, ow):
    """Unfold ``x`` (N, C, H, W) into ``col`` (C*kh*kw, N*oh*q), q = ow + (kw - 1) // sw, for a
    conv with both strides > 1 and no dilation: ``col[(c*kh + i)*kw + j, (n*oh + y)*q + z] =
    x[n, c, y*sh - ph + i, z*sw - pw + j]`` (0 outside x) for z < ow; the columns z >= ow are
    finite and unspecified. Runs on the calling thread without the GIL.

    A plane is first laid out by row phase (``by_row[a]``: the padded rows ``y*sh + a``, each
    ``sw*q`` wide), so that component (a, b) is every sw-th entry of ``by_row[a]`` from ``b`` on:
    one loop over the whole component rather than one per row."""
    n_img, channels, h, w = x.shape
    q, rows, h_in, w_in = _phase_geometry(h, w, kh, kw, sh, sw, ph, pw, oh, ow)
    plane, size = oh * q, rows * q
    by_row = np.zeros((sh, rows * sw * q), x.dtype)  # padding stays zero for every plane
    phases = np.empty((sh * sw, size), x.dtype)
    for n in range(n_img):
        for c in range(channels):
            for r in range(h_in):
                a, offset = _row_phase_slot(r, ph, sh, sw, q)
                copy_row(by_row[a, offset + pw:offset + pw + w_in], x[n, c, r], 0, w_in, 1, 0)
            for a in range(sh):
                for b in range(sw):
                    copy_row(phases[a * sw + b], by_row[a], 0, size, sw, b)
            for tap in range(kh * kw):
                i, j = tap // kw, tap % kw
                start = (i // sh) * q + j // sw
                copy_row(col[c * kh * kw + tap, n * plane:(n + 1) * plane],
                         phases[(i % sh) * sw + j % sw], 0, plane, 1, start)


@njit(nogil=True, cache=True)
def col2im_phases(col, x_grad, kh, kw, sh, sw, ph, pw, oh, ow):
    """The adjoint of :func:`im2col_phases` on its real columns: fold ``col`` (C*kh*kw,
    N*oh*q), whose dummy columns must be zero, into ``x_grad`` (N, C, H, W), which is
    overwritten. Each tap's block is added into its polyphase component in one run, taps in
    (i, j) order, then the components are interleaved back into the plane laid out by row phase."""
    n_img, channels, h, w = x_grad.shape
    q, rows, h_in, w_in = _phase_geometry(h, w, kh, kw, sh, sw, ph, pw, oh, ow)
    plane, size = oh * q, rows * q
    one = col.dtype.type(1)
    phases = np.empty((sh * sw, size), col.dtype)
    by_row = np.empty((sh, rows * sw * q), col.dtype)
    for n in range(n_img):
        for c in range(channels):
            zero(phases.reshape(phases.size))
            for tap in range(kh * kw):
                i, j = tap // kw, tap % kw
                start = (i // sh) * q + j // sw
                scatter_row_axpy(phases[(i % sh) * sw + j % sw], one,
                                 col[c * kh * kw + tap, n * plane:(n + 1) * plane], 0, plane, 1, start)
            for a in range(sh):
                for b in range(sw):
                    src, dst = phases[a * sw + b], by_row[a, b:]
                    for k in range(size):
                        dst[k * sw] = src[k]
            for r in range(h):
                dst = x_grad[n, c, r]
                if r >= h_in:  # no tap reaches this row
                    zero(dst)
                    continue
                a, offset = _row_phase_slot(r, ph, sh, sw, q)
                copy_row(dst, by_row[a], 0, w_in, 1, offset + pw)
                zero(dst[w_in:])  # nor these columns
