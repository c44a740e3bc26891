"""2-D convolution (cross-correlation, as in every DL framework), NCHW, PyTorch weight layout.

    y[n, o, p, q] = b[o] + sum_{c in group(o), i, j} w[o, c', i, j] * x[n, c, p*sh - ph + i*dh, q*sw - pw + j*dw]

General convs run as im2col -> GEMM: unfold the input into ``col`` (C*kh*kw, N*oh*ow) and
multiply by W (O, C/g*kh*kw), one GEMM per group. Backward reuses the same layout:
dW = gy_mat col^T, dcol = W^T gy_mat, dx = col2im(dcol). The batch is processed in chunks so the
``col`` workspace stays under ``backend.workspace_limit`` bytes however large the layer.
Depthwise convs (groups == C_in) have too little work per column for a GEMM and use direct kernels;
1x1 convs need no im2col at all (``PointwiseConv2d``); 3x3 stride-1 convs use Winograd's
algorithm (``tinyconv/ops/winograd.py``).
"""
import numpy as np

from tinyconv import backend
from tinyconv.autograd import Function, is_grad_enabled
from tinyconv.backend import array_module
from tinyconv.ops.params import check_input, check_same_dtype, pair, window_output_size
from tinyconv.tensor import Tensor


def _groups(matrix, groups):
    """The row blocks of a 2-D array, one per group; each is a contiguous 2-D view for BLAS
    (numpy's stacked 3-D matmul does not reach BLAS for the transposed operands of backward)."""
    rows = matrix.shape[0] // groups
    return [matrix[i * rows:(i + 1) * rows] for i in range(groups)]


def _per_thread(n, xp):
    """Images per chunk that give every CPU thread one chunk (a GPU takes the batch whole)."""
    return -(-n // backend.cpu_threads()) if xp is np else n


def _batch_chunk(n, bytes_per_sample, xp):
    """Images per chunk: at most the workspace limit's worth, at least one chunk per CPU thread,
    and on the CPU as many chunks as make a multiple of the thread count, of equal size (128
    images in chunks of up to 27 would be 5 chunks, one thread working 3 of them while the other
    waits; 6 chunks of 22 share evenly). ResNet-20 training step: 1.04x."""
    limit = backend.workspace_limit if xp is np else backend.gpu_workspace_limit
    largest = max(1, min(_per_thread(n, xp), limit // max(bytes_per_sample, 1)))
    if xp is not np:
        return largest
    threads = backend.cpu_threads()
    chunks = -(-n // largest)
    chunks = -(-chunks // threads) * threads
    return -(-n // chunks)


def _sum_in_chunk_order(parts):
    """The chunks' partial sums (e.g. of dW) added in chunk order: the same result whatever the
    thread count."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


class Conv2d(Function):
    """im2col + GEMM convolution; inputs x (N, C, H, W), w (O, C/g, kh, kw), optional b (O,)."""

    def __init__(self, stride, padding, dilation, groups, relu=False, residual=None):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.relu = relu  # y = relu(conv + b); backward then takes gy where y > 0
        self.residual = residual  # an array added before the ReLU, at inference only

    def _finish(self, y, b, first=0):
        """Add the bias (and the residual's images from ``first`` on) and apply the ReLU, in
        place, on a chunk of the output just computed (N, O, ...), while it is still in the
        cache: no pass of their own over the output."""
        if b is None and not self.relu and self.residual is None:
            return
        xp = array_module(y)
        y3 = y.reshape(y.shape[0], y.shape[1], -1)
        bias = b if b is not None else xp.zeros(y.shape[1], dtype=y.dtype)
        residual = (xp.empty((0, 0, 0), y.dtype) if self.residual is None
                    else self.residual[first:first + y.shape[0]].reshape(y3.shape))
        backend.kernels(xp).conv_epilogue(y3, bias, residual, self.relu)

    def _output_gradient(self, gy, y):
        """gy as the conv itself sees it: through the ReLU's gate when there is one."""
        if not self.relu:
            return gy
        xp = array_module(gy)
        gy, gated = xp.ascontiguousarray(gy), xp.empty(y.shape, dtype=y.dtype)
        backend.kernels(xp).relu_backward(gy, y, gated)
        return gated

    def _geometry(self, x, w):
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        oh = window_output_size(h, kh, self.stride[0], self.padding[0], self.dilation[0])
        ow = window_output_size(wd, kw, self.stride[1], self.padding[1], self.dilation[1])
        return (kh, kw, *self.stride, *self.padding, *self.dilation, oh, ow)

    def _layout(self, x, w):
        """(geometry, rows of col, columns per output row q, columns per image, images per
        chunk). q is ow, or more in the polyphase layout of strided convs."""
        geometry = self._geometry(x, w)
        kw, sw, oh, ow = geometry[1], geometry[3], geometry[-2], geometry[-1]
        q = ow + (kw - 1) // sw if self._polyphase() else ow
        rows, plane = x.shape[1] * w.shape[2] * w.shape[3], oh * q
        return geometry, rows, q, plane, _batch_chunk(x.shape[0], rows * plane * x.itemsize, array_module(x))

    def _polyphase(self):
        """Whether col takes the polyphase layout (both strides > 1, no dilation): one copy per
        tap instead of oh rows read sw apart (kernels/cpu/im2col.py)."""
        return self.dilation == (1, 1) and min(self.stride) > 1

    def _unfolding(self, kernels, geometry, alone):
        """(im2col(x, col), col2im(col, x_grad)) for this conv's layout of col. ``alone``: the
        chunk has the machine to itself, and the plain layout's kernels may run in parallel."""
        if self._polyphase():
            kh, kw, sh, sw, ph, pw, _, _, oh, ow = geometry
            args = (kh, kw, sh, sw, ph, pw, oh, ow)
            return (lambda x, col: kernels.im2col_phases(x, col, *args),
                    lambda col, x_grad: kernels.col2im_phases(col, x_grad, *args))
        im2col = kernels.im2col if alone else kernels.im2col_serial
        col2im = kernels.col2im if alone else kernels.col2im_serial
        return (lambda x, col: im2col(x, col, *geometry), lambda col, x_grad: col2im(col, x_grad, *geometry))

    def _gradients(self, gx, gw, gy):
        """(gx, gw) plus the bias gradient, the sum of gy over all but the channel axis, when
        the conv has a bias."""
        if len(self.needs_input_grad) == 3:
            return gx, gw, gy.sum(axis=(0, 2, 3))
        return gx, gw

    def forward(self, x, w, b=None):
        xp = array_module(x)
        kernels = backend.kernels(xp)
        x = xp.ascontiguousarray(x)
        self.x, self.w = x, w
        n, o, g = x.shape[0], w.shape[0], self.groups
        geometry, rows, q, plane, chunk = self._layout(x, w)
        oh, ow = geometry[-2:]
        w_mat = w.reshape(o, rows // g)
        y = xp.empty((n, o, oh, ow), dtype=x.dtype)

        def forward_chunk(n0, nb, alone):
            im2col, _ = self._unfolding(kernels, geometry, alone)
            col = backend.workspace.get("col", (rows, nb * plane), x.dtype, xp)
            im2col(x[n0:n0 + nb], col)
            out = backend.workspace.get("gemm", (o, nb * plane), x.dtype, xp)
            for w_g, col_g, out_g in zip(_groups(w_mat, g), _groups(col, g), _groups(out, g)):
                xp.matmul(w_g, col_g, out=out_g)
            y[n0:n0 + nb] = out.reshape(o, nb, oh, q)[..., :ow].transpose(1, 0, 2, 3)
            self._finish(y[n0:n0 + nb], b, n0)

        backend.map_chunks(forward_chunk, n, chunk, xp)
        self.y = y if self.relu else None
        return y

    def backward(self, gy):
        xp = array_module(gy)
        kernels = backend.kernels(xp)
        x, w, g = self.x, self.w, self.groups
        gy = self._output_gradient(gy, self.y)
        need_x, need_w = self.needs_input_grad[:2]
        n, o = x.shape[0], w.shape[0]
        geometry, rows, q, plane, chunk = self._layout(x, w)
        oh, ow = geometry[-2:]
        w_mat = w.reshape(o, rows // g)
        gx = xp.empty(x.shape, dtype=x.dtype) if need_x else None

        def backward_chunk(n0, nb, alone):
            im2col, col2im = self._unfolding(kernels, geometry, alone)
            gy_nchw = backend.workspace.get("gemm", (o, nb, oh, q), x.dtype, xp)
            gy_nchw[..., :ow] = gy[n0:n0 + nb].transpose(1, 0, 2, 3)
            gy_nchw[..., ow:] = 0  # the dummy columns: they then add nothing to dW, and dcol is 0 there
            gy_mat = gy_nchw.reshape(o, nb * plane)
            col = backend.workspace.get("col", (rows, nb * plane), x.dtype, xp)
            gw_part = None
            if need_w:
                im2col(x[n0:n0 + nb], col)
                # dW_g = gy_g col_g^T, computed as (col_g gy_g^T)^T: OpenBLAS runs this
                # long-K product faster with the wide matrix on the left.
                gw_part = xp.concatenate([(col_g @ gy_g.T).T for gy_g, col_g in zip(_groups(gy_mat, g), _groups(col, g))])
            if need_x:
                for w_g, gy_g, col_g in zip(_groups(w_mat, g), _groups(gy_mat, g), _groups(col, g)):
                    xp.matmul(w_g.T, gy_g, out=col_g)
                col2im(col, gx[n0:n0 + nb])
            return gw_part

        gw_parts = backend.map_chunks(backward_chunk, n, chunk, xp)
        gw = _sum_in_chunk_order(gw_parts).reshape(w.shape) if need_w else None
        return self._gradients(gx, gw, gy)


# Below this many pixels per plane a 1x1 conv's per-image GEMMs are a handful of columns wide,
# re-read the whole weight matrix for every image, and sum dW through an (N, O, C) temporary.
# Measured fwd+bwd at batch 128 on the 2-core host: 1024->1024 at 2x2 took 123 ms per-image vs
# 29 ms as one GEMM over a channel-major batch chunk; at 8x8 the per-image way wins (23 vs 26).
POINTWISE_MIN_PLANE = 32


class PointwiseConv2d(Conv2d):
    """1x1 kernel, stride 1, no padding, one group: ``y[n] = W x[n]`` with x[n] viewed as
    (C, H*W), a GEMM with no im2col.

    dx[n] = W^T gy[n],  dW = sum_n gy[n] x[n]^T.

    Planes of ``POINTWISE_MIN_PLANE`` pixels or more run one GEMM per image, writing NCHW
    directly. Smaller planes are transposed a batch chunk at a time to channel-major
    (C, nb*H*W), which is all that im2col does for a 1x1 kernel (NumPy's strided copy does it
    ~9x faster than the general im2col kernel), and run as one GEMM per chunk.
    """

    def _per_image(self, x):
        """Whether x's planes are large enough for one GEMM per image."""
        return x.shape[2] * x.shape[3] >= POINTWISE_MIN_PLANE

    def _chunk(self, x, xp):
        """Images per chunk: one chunk per thread per image-GEMM; channel-major chunks within
        the workspace limit."""
        if self._per_image(x):
            return _per_thread(x.shape[0], xp)
        return _batch_chunk(x.shape[0], x.shape[1] * x.shape[2] * x.shape[3] * x.itemsize, xp)

    def forward(self, x, w, b=None):
        xp = array_module(x)
        x = xp.ascontiguousarray(x)
        self.x, self.w = x, w
        n, c, h, wd = x.shape
        o = w.shape[0]
        x3, w_mat = x.reshape(n, c, h * wd), w.reshape(o, c)
        y = xp.empty((n, o, h * wd), dtype=x.dtype)

        def forward_chunk(n0, nb, alone):
            if self._per_image(x):
                xp.matmul(w_mat, x3[n0:n0 + nb], out=y[n0:n0 + nb])
            else:
                out = backend.workspace.get("gemm", (o, nb * h * wd), x.dtype, xp)
                xp.matmul(w_mat, _channel_major(x3[n0:n0 + nb], "col", xp), out=out)
                y[n0:n0 + nb] = out.reshape(o, nb, h * wd).transpose(1, 0, 2)
            self._finish(y[n0:n0 + nb], b, n0)

        backend.map_chunks(forward_chunk, n, self._chunk(x, xp), xp)
        y = y.reshape(n, o, h, wd)
        self.y = y if self.relu else None
        return y

    def backward(self, gy):
        xp = array_module(gy)
        x, w = self.x, self.w
        need_x, need_w = self.needs_input_grad[:2]
        n, c, h, wd = x.shape
        o = w.shape[0]
        x3, w_mat = x.reshape(n, c, h * wd), w.reshape(o, c)
        gy = self._output_gradient(gy, self.y)
        gy3 = xp.ascontiguousarray(gy).reshape(n, o, h * wd)
        gx = xp.empty_like(x3) if need_x else None

        def backward_chunk(n0, nb, alone):
            if self._per_image(x):
                if need_x:
                    xp.matmul(w_mat.T, gy3[n0:n0 + nb], out=gx[n0:n0 + nb])
                if need_w:
                    return xp.matmul(gy3[n0:n0 + nb], x3[n0:n0 + nb].transpose(0, 2, 1)).sum(axis=0)
                return None
            gy_t = _channel_major(gy3[n0:n0 + nb], "gemm", xp)
            gw_part = gy_t @ _channel_major(x3[n0:n0 + nb], "col", xp).T if need_w else None
            if need_x:
                gx_t = backend.workspace.get("col", (c, nb * h * wd), x.dtype, xp)
                xp.matmul(w_mat.T, gy_t, out=gx_t)
                gx[n0:n0 + nb] = gx_t.reshape(c, nb, h * wd).transpose(1, 0, 2)
            return gw_part

        gw_parts = backend.map_chunks(backward_chunk, n, self._chunk(x, xp), xp)
        gw = _sum_in_chunk_order(gw_parts).reshape(w.shape) if need_w else None
        return self._gradients(gx.reshape(x.shape) if need_x else None, gw, gy)


def _channel_major(chunk, name, xp):
    """``chunk`` (nb, C, P) copied into workspace ``name`` as (C, nb*P)."""
    nb, c, p = chunk.shape
    out = backend.workspace.get(name, (c, nb * p), chunk.dtype, xp)
    out.reshape(c, nb, p)[...] = chunk.transpose(1, 0, 2)
    return out


class DepthwiseConv2d(Conv2d):
    """groups == C_in: output channel o convolves input channel o // m alone (m = O / C_in)."""

    def forward(self, x, w, b=None):
        xp = array_module(x)
        x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
        self.x, self.w = x, w
        kh, kw, *args, oh, ow = self._geometry(x, w)
        y = xp.empty((x.shape[0], w.shape[0], oh, ow), dtype=x.dtype)
        backend.kernels(xp).depthwise_forward(x, w, y, *args)
        self._finish(y, b)
        self.y = y if self.relu else None
        return y

    def backward(self, gy):
        xp = array_module(gy)
        kernels = backend.kernels(xp)
        gy = xp.ascontiguousarray(self._output_gradient(gy, self.y))
        _, _, *args, _, _ = self._geometry(self.x, self.w)
        need_x, need_w = self.needs_input_grad[:2]
        gx = gw = None
        if need_x:
            gx = xp.empty(self.x.shape, dtype=gy.dtype)
            kernels.depthwise_backward_input(gy, self.w, gx, *args)
        if need_w:
            gw = xp.empty(self.w.shape, dtype=gy.dtype)
            kernels.depthwise_backward_weight(gy, self.x, gw, *args)
        return self._gradients(gx, gw, gy)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, relu=False, residual=None):
    """2-D convolution of x (N, C, H, W) with weight (O, C/groups, kh, kw) and optional bias (O,).

    Output (N, O, oh, ow) with oh = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1 (same for ow).
    ``groups == C`` (and C > 1) runs the depthwise kernels. ``relu=True`` returns
    relu(conv2d(...)), the bias and the ReLU applied to each batch chunk as it is computed.
    ``residual`` (the output's shape and dtype) is added before the ReLU the same way; it takes no
    gradient, so it is for inference, inside ``no_grad()`` (in training use ``F.add_relu``).
    """
    op = "conv2d"
    x = x if isinstance(x, Tensor) else Tensor(x)
    check_input(x, op)
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (out_channels, in_channels/groups, kh, kw), "
                         f"got shape {weight.shape}")
    stride, padding = pair(stride, "stride", op, 1), pair(padding, "padding", op, 0)
    dilation = pair(dilation, "dilation", op, 1)
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    n, c, h, w = x.shape
    o, c_per_group, kh, kw = weight.shape
    if c != c_per_group * groups:
        raise ValueError(f"{op}: input has {c} channels but weight {tuple(weight.shape)} with groups={groups} "
                         f"expects {c_per_group * groups}")
    if o % groups:
        raise ValueError(f"{op}: out_channels {o} is not divisible by groups={groups}")
    if bias is not None and tuple(bias.shape) != (o,):
        raise ValueError(f"{op}: bias must have shape ({o},), got {tuple(bias.shape)}")
    check_same_dtype(op, input=x, weight=weight, bias=bias)
    for axis, size, k, p, d in (("height", h, kh, padding[0], dilation[0]), ("width", w, kw, padding[1], dilation[1])):
        if size + 2 * p < d * (k - 1) + 1:
            raise ValueError(f"{op}: kernel {kh}x{kw} (dilation {dilation}) is larger than the padded input "
                             f"{axis} {size} + 2*{p} for input shape {x.shape}")
    from tinyconv.ops import winograd  # imported here: it builds on Conv2d from this module
    if groups == c and c > 1:
        kind = DepthwiseConv2d
    elif winograd.supports((kh, kw), stride, dilation, groups, padding, c):
        kind = winograd.WinogradConv2d
    elif (kh, kw, groups) == (1, 1, 1) and stride == (1, 1) and padding == (0, 0):
        kind = PointwiseConv2d
    else:
        kind = Conv2d
    if residual is not None:
        residual = residual if isinstance(residual, Tensor) else Tensor(residual)
        if is_grad_enabled():
            raise ValueError(f"{op}: residual= takes no gradient and is for inference, inside no_grad(); "
                             "add the residual with F.add_relu or + when training")
        out_shape = (n, o, window_output_size(h, kh, stride[0], padding[0], dilation[0]),
                     window_output_size(w, kw, stride[1], padding[1], dilation[1]))
        if tuple(residual.shape) != out_shape or residual.dtype != x.dtype:
            raise ValueError(f"{op}: residual must have the output's shape {out_shape} and dtype {x.dtype}, "
                             f"got {tuple(residual.shape)} {residual.dtype}")
        residual = residual.xp.ascontiguousarray(residual.data)
    function = kind(stride, padding, dilation, groups, bool(relu), residual)
    args = (x, weight) if bias is None else (x, weight, bias)
    return function(*args)
