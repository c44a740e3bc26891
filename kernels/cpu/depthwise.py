"""Depthwise convolution (groups == C_in) as direct kernels, without im2col.

Output channel ``o`` reads input channel ``o // m``, where ``m = C_out // C_in`` is the channel
multiplier; weights are (C_in*m, 1, kh, kw) and padding is zero::

    y[n, o, y_, z] = sum_{i,j} w[o, 0, i, j] * x[n, o // m, y_*sh - ph + i*dh, z*sw - pw + j*dw]

Each plane is first copied into a zero-padded flat scratch buffer (``_taps.flat_layout``), after
which every tap is one long multiply-add with no bounds inside. On planes of at most
``CHANNELS_LAST_MAX_PLANE`` pixels (MobileNet's 4x4 and 2x2 stages) even those loops are a
handful of values long, too short to vectorise; there, with one output channel per input
channel, each image is transposed to channels-last instead and every tap of every pixel is one
multiply-add over all channels. Measured on the 2-core host at batch 128 (plane-wise ->
channels-last, kernels alternating in one process): 512 channels at 4x4, forward 3.2 -> 1.9 ms,
input gradient 3.7 -> 1.8, weight gradient 5.5 -> 2.5; 1024 at 2x2, 3.9 -> 1.3, 6.2 -> 1.3,
4.6 -> 2.6; at 8x8 the plane-wise kernels were ahead (forward 3.0 against 4.6 ms).
"""
import numpy as np
from numba import njit, prange

from ._taps import (dot_row, flat_layout, gather_row_axpy, load_rows, scatter_row_axpy, store_rows,
                    zero)


CHANNELS_LAST_MAX_PLANE = 16

# Planes are handed out in this many chunks, each with its own scratch buffers: enough to balance
# a few threads, few enough that allocating scratch stays negligible. (numba.get_num_threads()
# would make the kernels uncacheable.)
_CHUNKS = 32


@njit(parallel=True, cache=True)
def _depthwise_forward_planes(x, w, y, sh, sw, ph, pw, dh, dw):
    """:func:`depthwise_forward` a plane at a time."""
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
def _depthwise_backward_input_planes(gy, w, gx, sh, sw, ph, pw, dh, dw):
    """:func:`depthwise_backward_input`, a task owning one (n, c) plane of ``gx`` and collecting
    the windows covering it in the order (k, i, j)."""
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
def _depthwise_backward_weight_planes(gy, x, gw, sh, sw, ph, pw, dh, dw):
    """:func:`depthwise_backward_weight`, a task owning one output channel. Each image's dot
    product is summed in the input dtype (vectorised, which is what ``reassoc`` permits), the
    per-image sums in float64."""
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


@njit(inline="always", cache=True)
def _load_channels_last(planes, dst, row0, col0):
    """``dst[row0 + r, col0 + q, c] = planes[c, r, q]``: (C, R, Q) into a (rows, cols, C) buffer."""
    for c in range(planes.shape[0]):
        for r in range(planes.shape[1]):
            for q in range(planes.shape[2]):
                dst[row0 + r, col0 + q, c] = planes[c, r, q]


@njit(inline="always", cache=True)
def _store_channels_last(src, row0, col0, planes):
    """The inverse of :func:`_load_channels_last`: overwrite ``planes`` (C, R, Q) from ``src``."""
    for c in range(planes.shape[0]):
        for r in range(planes.shape[1]):
            for q in range(planes.shape[2]):
                planes[c, r, q] = src[row0 + r, col0 + q, c]


@njit(inline="always", cache=True)
def _taps_channels_last(w):
    """The weights (C, 1, kh, kw) as (kh, kw, C): each tap's weights over all channels."""
    c, _, kh, kw = w.shape
    taps = np.empty((kh, kw, c), w.dtype)
    for i in range(kh):
        for j in range(kw):
            for ch in range(c):
                taps[i, j, ch] = w[ch, 0, i, j]
    return taps


@njit(parallel=True, cache=True)
def _depthwise_forward_channels_last(x, w, y, sh, sw, ph, pw, dh, dw):
    """:func:`depthwise_forward` for one output channel per input channel, an image at a time
    in channels-last layout."""
    n_in, c, h_in, w_in = x.shape
    kh, kw, oh, ow = w.shape[2], w.shape[3], y.shape[2], y.shape[3]
    taps = _taps_channels_last(w)
    chunks = min(n_in, _CHUNKS)
    for chunk in prange(chunks):
        padded = np.zeros((h_in + 2 * ph, w_in + 2 * pw, c), x.dtype)  # the border stays zero
        acc = np.empty((oh, ow, c), y.dtype)
        for n in range(chunk * n_in // chunks, (chunk + 1) * n_in // chunks):
            _load_channels_last(x[n], padded, ph, pw)
            for r in range(oh):
                for q in range(ow):
                    out = acc[r, q]
                    zero(out)
                    for i in range(kh):
                        for j in range(kw):
                            src, tap = padded[r * sh + i * dh, q * sw + j * dw], taps[i, j]
                            for ch in range(c):
                                out[ch] += tap[ch] * src[ch]
            _store_channels_last(acc, 0, 0, y[n])


@njit(parallel=True, cache=True)
def _depthwise_backward_input_channels_last(gy, w, gx, sh, sw, ph, pw, dh, dw):
    """:func:`depthwise_backward_input` for one output channel per input channel: each image's
    gradient collected channels-last, the windows in the fixed order (y_, z, i, j)."""
    n_in, c, h_in, w_in = gx.shape
    kh, kw, oh, ow = w.shape[2], w.shape[3], gy.shape[2], gy.shape[3]
    taps = _taps_channels_last(w)
    chunks = min(n_in, _CHUNKS)
    for chunk in prange(chunks):
        g = np.empty((oh, ow, c), gy.dtype)
        acc = np.empty((h_in + 2 * ph, w_in + 2 * pw, c), gx.dtype)
        for n in range(chunk * n_in // chunks, (chunk + 1) * n_in // chunks):
            _load_channels_last(gy[n], g, 0, 0)
            acc[:] = 0
            for r in range(oh):
                for q in range(ow):
                    grad = g[r, q]
                    for i in range(kh):
                        for j in range(kw):
                            dst, tap = acc[r * sh + i * dh, q * sw + j * dw], taps[i, j]
                            for ch in range(c):
                                dst[ch] += tap[ch] * grad[ch]
            _store_channels_last(acc, ph, pw, gx[n])


@njit(parallel=True, cache=True)
def _depthwise_backward_weight_channels_last(gy, x, gw, sh, sw, ph, pw, dh, dw):
    """:func:`depthwise_backward_weight` for one output channel per input channel: each image's
    sums over its pixels in the input dtype, vectorised over channels; the images' sums added
    in float64 per chunk of images, and the chunks' in chunk order."""
    n_in, c, h_in, w_in = x.shape
    kh, kw, oh, ow = gw.shape[2], gw.shape[3], gy.shape[2], gy.shape[3]
    chunks = min(n_in, _CHUNKS)
    totals = np.zeros((chunks, kh, kw, c))
    for chunk in prange(chunks):
        padded = np.zeros((h_in + 2 * ph, w_in + 2 * pw, c), x.dtype)
        g = np.empty((oh, ow, c), gy.dtype)
        image = np.empty((kh, kw, c), gy.dtype)
        total = totals[chunk]
        for n in range(chunk * n_in // chunks, (chunk + 1) * n_in // chunks):
            _load_channels_last(x[n], padded, ph, pw)
            _load_channels_last(gy[n], g, 0, 0)
            image[:] = 0
            for r in range(oh):
                for q in range(ow):
                    grad = g[r, q]
                    for i in range(kh):
                        for j in range(kw):
                            src, sums = padded[r * sh + i * dh, q * sw + j * dw], image[i, j]
                            for ch in range(c):
                                sums[ch] += grad[ch] * src[ch]
            for i in range(kh):
                for j in range(kw):
                    for ch in range(c):
                        total[i, j, ch] += image[i, j, ch]
    for i in range(kh):
        for j in range(kw):
            for ch in range(c):
                s = 0.0
                for chunk in range(chunks):
                    s += totals[chunk, i, j, ch]
                gw[ch, 0, i, j] = s


def _channels_last(x_shape, out_channels):
    """Whether a depthwise problem with input ``x_shape`` takes the channels-last kernels."""
    _, c_in, h, w = x_shape
    return out_channels == c_in and h * w <= CHANNELS_LAST_MAX_PLANE


def depthwise_forward(x, w, y, sh, sw, ph, pw, dh, dw):
    """``y`` (N, C*m, oh, ow) = depthwise convolution of ``x`` (N, C, H, W) with ``w``
    (C*m, 1, kh, kw), overwritten; formula in the module docstring."""
    kernel = _depthwise_forward_channels_last if _channels_last(x.shape, w.shape[0]) else _depthwise_forward_planes
    kernel(x, w, y, sh, sw, ph, pw, dh, dw)


def depthwise_backward_input(gy, w, gx, sh, sw, ph, pw, dh, dw):
    """``gx`` (N, C, H, W), overwritten, = dL/dx given ``gy`` = dL/dy (N, C*m, oh, ow)::

        gx[n, c, h, w_] = sum over k < m and (i, j, y_, z) with h = y_*sh - ph + i*dh,
                          w_ = z*sw - pw + j*dw of w[c*m + k, 0, i, j] * gy[n, c*m + k, y_, z]

    Gather form: a task owns one (n, c) plane (or one image) of ``gx`` and collects the
    contributions of the windows covering it in a fixed order: race-free and deterministic.
    """
    kernel = (_depthwise_backward_input_channels_last if _channels_last(gx.shape, w.shape[0])
              else _depthwise_backward_input_planes)
    kernel(gy, w, gx, sh, sw, ph, pw, dh, dw)


def depthwise_backward_weight(gy, x, gw, sh, sw, ph, pw, dh, dw):
    """``gw`` (C*m, 1, kh, kw), overwritten, = dL/dw given ``gy`` = dL/dy (N, C*m, oh, ow)::

        gw[o, 0, i, j] = sum_{n, y_, z} gy[n, o, y_, z] * x[n, o // m, y_*sh - ph + i*dh, z*sw - pw + j*dw]

    Summed per image in the input dtype (vectorised), across images in float64, in an order
    that does not depend on the thread count.
    """
    kernel = (_depthwise_backward_weight_channels_last if _channels_last(x.shape, gw.shape[0])
              else _depthwise_backward_weight_planes)
    kernel(gy, x, gw, sh, sw, ph, pw, dh, dw)
