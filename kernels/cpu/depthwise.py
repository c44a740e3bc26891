"""Depthwise convolution (groups == C_in) as direct kernels, without im2col.

Output channel ``o`` reads input channel ``o // m``, where ``m = C_out // C_in`` is the channel
multiplier; weights are (C_in*m, 1, kh, kw) and padding is zero::

    y[n, o, y_, z] = sum_{i,j} w[o, 0, i, j] * x[n, o // m, y_*sh - ph + i*dh, z*sw - pw + j*dw]

Each plane is first copied into a zero-padded flat scratch buffer (``_taps.flat_layout``), after
which every tap is one long multiply-add with no bounds inside.
"""
import numpy as np
from numba import njit, prange

from ._taps import (dot_row, flat_layout, gather_row_axpy, load_rows, scatter_row_axpy, store_rows,
                    zero)


# Planes are handed out in this many chunks, each with its own scratch buffers: enough to balance
# a few threads, few enough that allocating scratch stays negligible. (numba.get_num_threads()
# would make the kernels uncacheable.)
_CHUNKS = 32


@njit(parallel=True, cache=True)
def depthwise_forward(x, w, y, sh, sw, ph, pw, dh, dw):
    """``y`` (N, C*m, oh, ow) = depthwise convolution of ``x`` (N, C, H, W) with ``w``
    (C*m, 1, kh, kw), overwritten; formula in the module docstring."""
    n_in, c_in, h_in, w_in = x.shape
    c_out, _, kh, kw = w.shape
    oh = y.shape[2]
    m = c_out // c_in
    wp, wo, in_size, n_out = flat_layout(h_in, w_in, oh, kh, kw, sh, sw, ph, pw, dh, dw)
    tasks = n_in * c_out
    chunks = min(tasks, _CHUNKS)
    for chunk in prange(chunks):
        padded = np.zeros(in_size, x.dtype)  # the border stays zero; load_rows fills the inside
        acc = np.empty(n_out, y.dtype)
        for no in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            n = no // c_out
            o = no - n * c_out
            load_rows(padded, x[n, o // m], ph, pw, wp)
            zero(acc)
            for i in range(kh):
                for j in range(kw):
                    gather_row_axpy(acc, w[o, 0, i, j], padded, 0, n_out, sw, i * dh * wp + j * dw)
            store_rows(y[n, o], acc, 0, 0, wo)


@njit(parallel=True, cache=True)
def depthwise_backward_input(gy, w, gx, sh, sw, ph, pw, dh, dw):
    """``gx`` (N, C, H, W), overwritten, = dL/dx given ``gy`` = dL/dy (N, C*m, oh, ow)::

        gx[n, c, h, w_] = sum over k < m and (i, j, y_, z) with h = y_*sh - ph + i*dh,
                          w_ = z*sw - pw + j*dw of w[c*m + k, 0, i, j] * gy[n, c*m + k, y_, z]

    Gather form: a task owns one (n, c) plane of ``gx`` and collects the contributions of the
    windows covering it in the fixed order (k, i, j): race-free and deterministic.
    """
    n_in, c_in, h_in, w_in = gx.shape
    c_out, _, kh, kw = w.shape
    oh = gy.shape[2]
    m = c_out // c_in
    wp, wo, in_size, n_out = flat_layout(h_in, w_in, oh, kh, kw, sh, sw, ph, pw, dh, dw)
    tasks = n_in * c_in
    chunks = min(tasks, _CHUNKS)
    for chunk in prange(chunks):
        padded = np.empty(in_size, gx.dtype)
        g = np.zeros(n_out, gy.dtype)  # columns past ow stay zero, so they add nothing
        for nc in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            n = nc // c_in
            c = nc - n * c_in
            zero(padded)
            for o in range(c * m, (c + 1) * m):
                load_rows(g, gy[n, o], 0, 0, wo)
                for i in range(kh):
                    for j in range(kw):
                        scatter_row_axpy(padded, w[o, 0, i, j], g, 0, n_out, sw, i * dh * wp + j * dw)
            store_rows(gx[n, c], padded, ph, pw, wp)


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def depthwise_backward_weight(gy, x, gw, sh, sw, ph, pw, dh, dw):
    """``gw`` (C*m, 1, kh, kw), overwritten, = dL/dw given ``gy`` = dL/dy (N, C*m, oh, ow)::

        gw[o, 0, i, j] = sum_{n, y_, z} gy[n, o, y_, z] * x[n, o // m, y_*sh - ph + i*dh, z*sw - pw + j*dw]

    A task owns one output channel. Each image's dot product is summed in the input dtype
    (vectorised, which is what ``reassoc`` permits), the per-image sums in float64.
    """
    n_in, c_in, h_in, w_in = x.shape
    c_out, _, kh, kw = gw.shape
    oh = gy.shape[2]
    m = c_out // c_in
    wp, wo, in_size, n_out = flat_layout(h_in, w_in, oh, kh, kw, sh, sw, ph, pw, dh, dw)
    for o in prange(c_out):
        padded = np.zeros(in_size, x.dtype)
        g = np.zeros(n_out, gy.dtype)
        acc = np.zeros((kh, kw))
        for n in range(n_in):
            load_rows(padded, x[n, o // m], ph, pw, wp)
            load_rows(g, gy[n, o], 0, 0, wo)
            for i in range(kh):
                for j in range(kw):
                    acc[i, j] += dot_row(g, padded, 0, n_out, sw, i * dh * wp + j * dw)
        for i in range(kh):
            for j in range(kw):
                gw[o, 0, i, j] = acc[i, j]
