"""3x3 stride-1 convolution by Winograd's minimal filtering: F(2x2, 3x3) or F(4x4, 3x3).

F(m x m, 3x3) computes each m x m output tile from an (m+2) x (m+2) input tile ``d`` as
``A^T [(G g G^T) * (B^T d B)] A`` (the matrices and tile kernels are in ``kernels/cpu/winograd.py``
for m = 2 and ``kernels/cpu/winograd4.py`` for m = 4). With ``P = (m+2)^2`` products per tile,
over a batch this is three steps, each a linear map:

    V[xi] = input transform of x            (P, C, tiles)
    M[xi] = U[xi] @ V[xi],  U = G w G^T      (P, O, C) @ (P, C, tiles), P GEMMs
    y     = output transform of M

and the backward pass runs their adjoints:

    dx = the same three steps on gy, with w flipped and transposed (a stride-1 conv's input
         gradient is the full correlation of gy with the rotated kernel, padding 2 - p);
    dU[xi] = dM[xi] @ V[xi]^T with dM = output-transform adjoint of gy;  dw = G^T dU G
             (V as forward computed it: kept from forward for few channels, else again).

Every step is exact in exact arithmetic, so this computes the same function as ``Conv2d``; in
float32 it rounds differently (relative differences ~1e-6). The GEMMs take K = C and run near
BLAS peak. F(2x2) does 2.25x fewer multiplies than im2col and moves 4x the activations where
im2col moved 9x; F(4x4) does 4x fewer and moves 2.25x, but a plane narrower than two of its
tiles is mostly padding (see ``F4_MIN_TILES``).
"""
import numpy as np

from tinyconv import backend
from tinyconv.backend import array_module
from tinyconv.ops.conv import Conv2d, _batch_chunk, _sum_in_chunk_order

# Below this many input channels the GEMMs have too little work (K = C) to pay for the
# transforms: ResNet-20's first layer (3 -> 16 channels at 32x32) took 4.6 ms forward through
# F(2x2) and 2.7 ms through im2col.
MIN_CHANNELS = 8


def supports(kernel, stride, dilation, groups, padding, in_channels):
    """Whether a conv can take the Winograd path: 3x3, stride 1, undilated, one group, padding
    0-2 (the input gradient pads by 2 - p), and enough input channels to be worth it."""
    return (kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1) and groups == 1
            and max(padding) <= 2 and in_channels >= MIN_CHANNELS)


class Tiling:
    """One of the two algorithms, F(m x m, 3x3): output tiles of m x m, ``products`` GEMMs, the
    kernels ``<prefix>_input``, ``<prefix>_output`` and ``<prefix>_output_adjoint``, and
    ``kron = kron(G, G)`` (products, 9), which maps a row-major filter to ``vec(G g G^T)``."""

    def __init__(self, m, g, prefix):
        self.m, self.products, self.prefix = m, (m + 2) ** 2, prefix
        self.kron = np.kron(g, g)

    def tiles(self, size):
        """Tiles along an output axis of ``size``."""
        return -(-size // self.m)

    def kernel(self, kernels, step):
        return getattr(kernels, f"{self.prefix}_{step}")

    def pitch(self, tw, xp):
        """Tile columns per tile row in the transformed layout: ``tw``, or ``tw + 1`` with a
        dummy tile ending each row, which the CPU's F(4x4) transforms need to run unit-stride
        loops over whole planes (kernels/cpu/winograd4.py). A GPU runs a thread per tile and
        keeps the tight layout, and so does the CPU's F(2x2), which only gets planes of 4
        pixels or fewer across."""
        return tw + 1 if xp is np and self.m == 4 else tw


F2 = Tiling(2, np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]]), "winograd")
F4 = Tiling(4, np.array([[1 / 4, 0.0, 0.0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0.0, 0.0, 1.0]]), "winograd4")

# F(4x4) for planes of at least this many 4-wide tiles a row, F(2x2) below. Measured fwd+bwd at
# batch 128 on the 2-core host, F(2x2) -> F(4x4): 16 channels at 32x32 34.3 -> 24.4 ms, 32 at
# 16x16 27.8 -> 22.0, 64 at 8x8 24.0 -> 20.7, 128 at 8x8 54.9 -> 47.3; but 256 at 4x4
# 55 -> 83 and 512 at 2x2 86 -> 362: one 4x4 tile (and its dummy) per plane is all padding.
F4_MIN_TILES = 2

def tiling(out_width):
    """The algorithm for output planes ``out_width`` wide."""
    return F4 if F4.tiles(out_width) >= F4_MIN_TILES else F2


# The weight transforms are GEMMs too small for BLAS's threads, whose idle workers then spin on
# a core that the chunk threads need; hence single_threaded_blas (a no-op for cuBLAS).

def weight_transform(w, tiling):
    """``U = G w G^T`` for w (O, C, 3, 3), laid out (P, O, C) for the P GEMMs: one GEMM with
    ``tiling.kron``, whose row ``xi`` maps a filter to the product term ``xi``."""
    xp, (o, c) = array_module(w), w.shape[:2]
    with backend.single_threaded_blas():
        return (xp.asarray(tiling.kron, dtype=w.dtype) @ w.reshape(o * c, 9).T).reshape(tiling.products, o, c)


def weight_transform_adjoint(du, tiling):
    """``dw = G^T dU G``: du (P, O, C) back to (O, C, 3, 3)."""
    xp, (o, c) = array_module(du), du.shape[1:]
    with backend.single_threaded_blas():
        return (du.reshape(tiling.products, o * c).T @ xp.asarray(tiling.kron, dtype=du.dtype)).reshape(o, c, 3, 3)


# Up to this many input channels, a training forward keeps its transformed input V for the
# weight gradient instead of backward transforming x again. Measured fwd+bwd at batch 128 on the
# 2-core host (F(2x2) everywhere), recomputing -> keeping: 16 channels at 32x32 37.5 -> 32.8 ms,
# 32 at 16x16 28.4 -> 27.1, 64 at 8x8 19.5 -> 20.5 (reading V back from memory costs more than
# the cheap transform of a small plane). V is 2.25-4x the input's size.
KEEP_MAX_CHANNELS = 16


def _tile_rows(name, products, rows, tiles, dtype, xp, keep=False):
    """Workspace for ``products`` transformed matrices of (rows, tiles): a (products, L) array for
    the kernels and its (products, rows, tiles) view for the GEMMs. On the CPU, L is padded to 64
    bytes past a multiple of 4 KiB, so that the transforms' concurrent streams, unpadded often a
    power of two apart, do not all map to the same cache sets: ResNet-20 trained at 350-360 img/s
    with the padding, 326-339 without (alternating fresh processes). ``keep``: a new array, which
    the caller may hold past this op, instead of the shared workspace."""
    length = rows * tiles
    if xp is np:
        itemsize = np.dtype(dtype).itemsize
        length = -(-length // (4096 // itemsize)) * (4096 // itemsize) + 64 // itemsize
    shape = (products, length)
    flat = xp.empty(shape, dtype) if keep else backend.workspace.get(name, shape, dtype, xp)
    return flat, flat[:, :rows * tiles].reshape(products, rows, tiles)


def _layout(plane, xp):
    """(tiling, th, tw, pitch) for output planes of ``plane`` = (height, width)."""
    scheme = tiling(plane[1])
    th, tw = scheme.tiles(plane[0]), scheme.tiles(plane[1])
    return scheme, th, tw, scheme.pitch(tw, xp)


def _convolve(kernels, x, u, y, ph, pw, keep=False):
    """One chunk of y = conv(x), given the transformed weights u (P, O, C) of y's tiling: input
    transform, P GEMMs, output transform. Returns the transformed input (v, its GEMM view), in a
    new array if ``keep``."""
    xp = array_module(x)
    (scheme, th, tw, pitch), (o, c) = _layout(y.shape[2:], xp), u.shape[1:]
    tiles = x.shape[0] * th * pitch
    v, v_mats = _tile_rows("winograd_v", scheme.products, c, tiles, x.dtype, xp, keep)
    m, m_mats = _tile_rows("winograd_m", scheme.products, o, tiles, x.dtype, xp)
    scheme.kernel(kernels, "input")(x, v, ph, pw, th, tw, pitch)
    xp.matmul(u, v_mats, out=m_mats)
    scheme.kernel(kernels, "output")(m, y, th, tw, pitch)
    return v, v_mats


class WinogradConv2d(Conv2d):
    """Conv2d for 3x3 stride-1 kernels through F(2x2, 3x3) or F(4x4, 3x3), chosen by the width
    of each output plane (y's, and x's for the input gradient); x (N, C, H, W), w (O, C, 3, 3)."""

    def _chunk(self, x, w, planes):
        """Images per chunk: the transformed tiles of a chunk stay within the workspace limit."""
        xp = array_module(x)
        per_image = max(scheme.products * th * pitch for scheme, th, _, pitch in (_layout(p, xp) for p in planes))
        return _batch_chunk(x.shape[0], sum(w.shape[:2]) * per_image * x.itemsize, xp)

    def forward(self, x, w, b=None):
        xp = array_module(x)
        kernels = backend.kernels(xp)
        x = xp.ascontiguousarray(x)
        self.x, self.w = x, w
        _, _, *_, oh, ow = self._geometry(x, w)
        y = xp.empty((x.shape[0], w.shape[0], oh, ow), dtype=x.dtype)
        u = weight_transform(w, tiling(ow))
        # A GPU keeps its memory: transforming x again there is cheap.
        keep = xp is np and self.needs_input_grad[1] and x.shape[1] <= KEEP_MAX_CHANNELS
        self.kept_tiles = {}  # (first image, images) of a chunk -> its V, for backward

        def forward_chunk(n0, nb, alone):
            v = _convolve(kernels, x[n0:n0 + nb], u, y[n0:n0 + nb], *self.padding, keep=keep)
            if keep:
                self.kept_tiles[n0, nb] = v
            self._finish(y[n0:n0 + nb], b, n0)

        # Backward's chunks, so that they find what forward kept.
        backend.map_chunks(forward_chunk, x.shape[0], self._chunk(x, w, [(oh, ow), x.shape[2:]]), xp)
        self.y = y if self.relu else None
        return y

    def backward(self, gy):
        xp = array_module(gy)
        kernels = backend.kernels(xp)
        x, w = self.x, self.w
        gy = xp.ascontiguousarray(self._output_gradient(gy, self.y))
        need_x, need_w = self.needs_input_grad[:2]
        (ph, pw), (o, c), (oh, ow) = self.padding, w.shape[:2], gy.shape[2:]
        scheme, th, tw, pitch = _layout((oh, ow), xp)
        gx = xp.empty(x.shape, dtype=x.dtype) if need_x else None
        # dx is the forward conv of gy with the flipped, transposed kernel, padded by 2 - p.
        flipped = xp.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]) if need_x else None
        u_flipped = weight_transform(flipped, tiling(x.shape[3])) if need_x else None

        def backward_chunk(n0, nb, alone):
            du = None
            if need_w:  # dU[xi] = dM[xi] V[xi]^T over this chunk's tiles
                dm, dm_mats = _tile_rows("winograd_m", scheme.products, o, nb * th * pitch, x.dtype, xp)
                if (n0, nb) in self.kept_tiles:
                    v, v_mats = self.kept_tiles.pop((n0, nb))
                else:
                    v, v_mats = _tile_rows("winograd_v", scheme.products, c, nb * th * pitch, x.dtype, xp)
                    scheme.kernel(kernels, "input")(x[n0:n0 + nb], v, ph, pw, th, tw, pitch)
                scheme.kernel(kernels, "output_adjoint")(gy[n0:n0 + nb], dm, th, tw, pitch)
                du = xp.matmul(dm_mats, v_mats.transpose(0, 2, 1))
            if need_x:
                _convolve(kernels, gy[n0:n0 + nb], u_flipped, gx[n0:n0 + nb], 2 - ph, 2 - pw)
            return du

        du_parts = backend.map_chunks(backward_chunk, x.shape[0], self._chunk(x, w, [(oh, ow), x.shape[2:]]), xp)
        gw = weight_transform_adjoint(_sum_in_chunk_order(du_parts), scheme) if need_w else None
        return self._gradients(gx, gw, gy)
