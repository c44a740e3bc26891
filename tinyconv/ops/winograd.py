"""3x3 stride-1 convolution by Winograd's F(2x2, 3x3): 2.25x fewer multiplies than im2col.

Each 2x2 output tile is ``A^T [(G g G^T) * (B^T d B)] A`` (the matrices and tile kernels are in
``kernels/cpu/winograd.py``). Over a batch this is three steps, each a linear map:

    V[xi] = input transform of x            (16, C, tiles)
    M[xi] = U[xi] @ V[xi],  U = G w G^T      (16, O, C) @ (16, C, tiles), 16 GEMMs
    y     = output transform of M

and the backward pass runs their adjoints:

    dx = the same three steps on gy, with w flipped and transposed (a stride-1 conv's input
         gradient is the full correlation of gy with the rotated kernel, padding 2 - p);
    dU[xi] = dM[xi] @ V[xi]^T with dM = output-transform adjoint of gy;  dw = G^T dU G
             (V as forward computed it: kept from forward for few channels, else again).

Every step is exact in exact arithmetic, so this computes the same function as ``Conv2d``; in
float32 it rounds differently (relative differences ~1e-6). The GEMMs take K = C and run near
BLAS peak, and the transforms move 4x the activations where im2col moved 9x: on the 2-core
host, ResNet-20 trains 1.2x faster than with im2col, 1.4x on one core.
"""
import numpy as np

from tinyconv import backend
from tinyconv.backend import array_module
from tinyconv.ops.conv import Conv2d, _batch_chunk, _sum_in_chunk_order

# Rows of G: the 4 combinations of a 3-tap filter that the 16 products use.
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
KRON = np.kron(G, G)  # (16, 9): vec(G g G^T) = kron(G, G) vec(g) for row-major vec

# Below this many input channels the 16 GEMMs have too little work (K = C) to pay for the
# transforms: ResNet-20's first layer (3 -> 16 channels at 32x32) took 4.6 ms forward this
# way and 2.7 ms through im2col.
MIN_CHANNELS = 8


def supports(kernel, stride, dilation, groups, padding, in_channels):
    """Whether a conv can take the Winograd path: 3x3, stride 1, undilated, one group, padding
    0-2 (the input gradient pads by 2 - p), and enough input channels to be worth it."""
    return (kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1) and groups == 1
            and max(padding) <= 2 and in_channels >= MIN_CHANNELS)


def _tiles(size):
    return (size + 1) // 2


# From this many tiles per tile row, the CPU lays each tile row out with a dummy tile at its end,
# which lets the input transform and its adjoint run a whole plane per loop
# (kernels/cpu/winograd.py). Measured per image on one core, row at a time -> whole plane:
# 32x32 planes (16 tiles a row) input transform 40 -> 20 us, output adjoint 26 -> 16 at 16
# channels; 16x16 planes (8 a row) 23 -> 17 and 27 -> 11 at 32; the GEMMs grow by 1/tw.
# A GPU runs a thread per tile either way and keeps the tight layout.
WHOLE_PLANE_MIN_TILES = 8


def _pitch(tw, xp):
    """Tile columns per tile row in the transformed layout: ``tw``, or ``tw + 1`` with a dummy."""
    return tw + 1 if xp is np and tw >= WHOLE_PLANE_MIN_TILES else tw


# The weight transforms are GEMMs too small for BLAS's threads, whose idle workers then spin on
# a core that the chunk threads need; hence single_threaded_blas (a no-op for cuBLAS).

def weight_transform(w):
    """``U = G w G^T`` for w (O, C, 3, 3), laid out (16, O, C) for the 16 GEMMs: one GEMM with
    ``kron(G, G)``, whose row ``4i + j`` maps a filter to the product term ``xi = 4i + j``."""
    xp, (o, c) = array_module(w), w.shape[:2]
    with backend.single_threaded_blas():
        return (xp.asarray(KRON, dtype=w.dtype) @ w.reshape(o * c, 9).T).reshape(16, o, c)


def weight_transform_adjoint(du):
    """``dw = G^T dU G``: du (16, O, C) back to (O, C, 3, 3)."""
    xp, (o, c) = array_module(du), du.shape[1:]
    with backend.single_threaded_blas():
        return (du.reshape(16, o * c).T @ xp.asarray(KRON, dtype=du.dtype)).reshape(o, c, 3, 3)


# Up to this many input channels, a training forward keeps its transformed input V for the
# weight gradient instead of backward transforming x again. Measured fwd+bwd at batch 128 on the
# 2-core host, recomputing -> keeping: 16 channels at 32x32 37.5 -> 32.8 ms, 32 at 16x16 28.4 ->
# 27.1, 64 at 8x8 19.5 -> 20.5 (reading V back from memory costs more than the cheap transform
# of a small plane). V is 4x the input's size: ResNet-20 keeps ~200 MB for its 16-channel stage.
KEEP_MAX_CHANNELS = 16


def _tile_rows(name, rows, tiles, dtype, xp, keep=False):
    """Workspace for 16 transformed matrices of (rows, tiles): a (16, L) array for the kernels
    and its (16, rows, tiles) view for the GEMMs. On the CPU, L is padded to 64 bytes past a
    multiple of 4 KiB, so that the transforms' 16 concurrent streams, unpadded often a power of
    two apart, do not all map to the same cache sets: ResNet-20 trained at 350-360 img/s with
    the padding, 326-339 without (alternating fresh processes). ``keep``: a new array, which the
    caller may hold past this op, instead of the shared workspace."""
    length = rows * tiles
    if xp is np:
        itemsize = np.dtype(dtype).itemsize
        length = -(-length // (4096 // itemsize)) * (4096 // itemsize) + 64 // itemsize
    flat = xp.empty((16, length), dtype) if keep else backend.workspace.get(name, (16, length), dtype, xp)
    return flat, flat[:, :rows * tiles].reshape(16, rows, tiles)


def _convolve(kernels, x, u, y, ph, pw, keep=False):
    """One chunk of y = conv(x), given the transformed weights u (16, O, C): input transform,
    16 GEMMs, output transform. Returns the transformed input (v, its GEMM view), in a new
    array if ``keep``."""
    xp = array_module(x)
    (th, tw), (o, c) = (_tiles(size) for size in y.shape[2:]), u.shape[1:]
    pitch = _pitch(tw, xp)
    tiles = x.shape[0] * th * pitch
    v, v_mats = _tile_rows("winograd_v", c, tiles, x.dtype, xp, keep)
    m, m_mats = _tile_rows("winograd_m", o, tiles, x.dtype, xp)
    kernels.winograd_input(x, v, ph, pw, th, tw, pitch)
    xp.matmul(u, v_mats, out=m_mats)
    kernels.winograd_output(m, y, th, tw, pitch)
    return v, v_mats


class WinogradConv2d(Conv2d):
    """Conv2d for 3x3 stride-1 kernels through F(2x2, 3x3); x (N, C, H, W), w (O, C, 3, 3)."""

    def _chunk(self, x, w, planes):
        """Images per chunk: the transformed tiles of a chunk stay within the workspace limit."""
        xp = array_module(x)
        tiles = max(_tiles(h) * _pitch(_tiles(w_), xp) for h, w_ in planes)
        return _batch_chunk(x.shape[0], 16 * sum(w.shape[:2]) * tiles * x.itemsize, xp)

    def forward(self, x, w, b=None):
        xp = array_module(x)
        kernels = backend.kernels(xp)
        x = xp.ascontiguousarray(x)
        self.x, self.w = x, w
        _, _, *_, oh, ow = self._geometry(x, w)
        y = xp.empty((x.shape[0], w.shape[0], oh, ow), dtype=x.dtype)
        u = weight_transform(w)
        # A GPU keeps its memory: transforming x again there is cheap.
        keep = xp is np and self.needs_input_grad[1] and x.shape[1] <= KEEP_MAX_CHANNELS
        self.kept_tiles = {}  # (first image, images) of a chunk -> its V, for backward

        def forward_chunk(n0, nb, alone):
            v = _convolve(kernels, x[n0:n0 + nb], u, y[n0:n0 + nb], *self.padding, keep=keep)
            if keep:
                self.kept_tiles[n0, nb] = v

        # Backward's chunks, so that they find what forward kept.
        backend.map_chunks(forward_chunk, x.shape[0], self._chunk(x, w, [(oh, ow), x.shape[2:]]), xp)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    def backward(self, gy):
        xp = array_module(gy)
        kernels = backend.kernels(xp)
        x, w = self.x, self.w
        gy = xp.ascontiguousarray(gy)
        need_x, need_w = self.needs_input_grad[:2]
        (ph, pw), (o, c), (oh, ow) = self.padding, w.shape[:2], gy.shape[2:]
        th, tw = _tiles(oh), _tiles(ow)
        pitch = _pitch(tw, xp)
        gx = xp.empty(x.shape, dtype=x.dtype) if need_x else None
        # dx is the forward conv of gy with the flipped, transposed kernel, padded by 2 - p.
        u_flipped = weight_transform(xp.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])) if need_x else None

        def backward_chunk(n0, nb, alone):
            du = None
            if need_w:  # dU[xi] = dM[xi] V[xi]^T over this chunk's tiles
                dm, dm_mats = _tile_rows("winograd_m", o, nb * th * pitch, x.dtype, xp)
                if (n0, nb) in self.kept_tiles:
                    v, v_mats = self.kept_tiles.pop((n0, nb))
                else:
                    v, v_mats = _tile_rows("winograd_v", c, nb * th * pitch, x.dtype, xp)
                    kernels.winograd_input(x[n0:n0 + nb], v, ph, pw, th, tw, pitch)
                kernels.winograd_output_adjoint(gy[n0:n0 + nb], dm, th, tw, pitch)
                du = xp.matmul(dm_mats, v_mats.transpose(0, 2, 1))
            if need_x:
                _convolve(kernels, gy[n0:n0 + nb], u_flipped, gx[n0:n0 + nb], 2 - ph, 2 - pw)
            return du

        du_parts = backend.map_chunks(backward_chunk, x.shape[0], self._chunk(x, w, [(oh, ow), x.shape[2:]]), xp)
        gw = weight_transform_adjoint(_sum_in_chunk_order(du_parts)) if need_w else None
        return self._gradients(gx, gw, gy)
