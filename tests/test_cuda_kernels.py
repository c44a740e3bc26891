"""The CUDA C kernels against their Numba twins, run by the CPU emulator and, on a machine where
CuPy sees a GPU, also by CuPy (those cases carry the ``gpu`` marker).

Both kernel sets have the same names, arguments and semantics, so each test gives one CPU kernel
and its CUDA twin the same inputs. Where the CUDA kernel performs the CPU kernel's floating-point
operations in the same order (copies, maxima, and the gather-form sums of col2im and pooling),
results must be bit-identical; where it sums in another order or the GPU compiler may fuse a
multiply-add (depthwise, batch norm), they must agree to a tolerance set per dtype.

The kernels launch with 32-thread blocks and at most 3 blocks, so hypothesis' ragged sizes leave
partial last blocks and make the grid-stride loops wrap; one test uses the default launch.
Outputs start as NaN, so an entry a kernel forgets to write shows up.
"""
import inspect
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyconv import backend
from tinyconv.kernels import cpu
from tinyconv.kernels.cuda import OPTIONS, SOURCES, CudaKernels, source
from tinyconv.ops.params import window_output_size
from tinyconv.testing import conv_params, pool_params
from tinyconv.testing.cuda import CXX, EmulatedModule

pytestmark = pytest.mark.skipif(shutil.which(CXX) is None,
                                reason=f"the CUDA emulator needs a host C++ compiler ({CXX})")

DTYPES = (np.float32, np.float64)
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
SETTINGS = settings(max_examples=25, deadline=None)
KERNEL_NAMES = [name for name in cpu.__all__ if name != "choose_threading_layer"]


# Launches small enough that hypothesis' sizes leave partial blocks and make the loops wrap.
SMALL_LAUNCH = dict(block=32, max_blocks=3)


class OnDevice:
    """A CuPy kernel set called with NumPy arrays: each array argument is copied to the GPU
    (an array passed twice stays one device array), and all are copied back after the call."""

    def __init__(self, kernels, cupy):
        self._kernels, self._cupy = kernels, cupy

    def __getattr__(self, name):
        kernel = getattr(self._kernels, name)

        def run(*args):
            device = {id(a): self._cupy.asarray(a) for a in args if isinstance(a, np.ndarray)}
            kernel(*(device.get(id(a), a) for a in args))
            for a in args:
                if isinstance(a, np.ndarray):
                    a[...] = device[id(a)].get()

        return run


@pytest.fixture(scope="module")
def emulated():
    """The CUDA kernel set run by the CPU emulator."""
    return CudaKernels(EmulatedModule, **SMALL_LAUNCH)


@pytest.fixture(scope="module", params=["emulated", pytest.param("cupy", marks=pytest.mark.gpu)])
def gpu(request, emulated):
    """The CUDA kernel set on the emulator and, where CuPy sees a GPU, on the GPU."""
    if request.param == "emulated":
        return emulated
    cupy = pytest.importorskip("cupy")
    if not backend.cuda_is_available():
        pytest.skip("CuPy finds no CUDA GPU")

    def load_module(code):
        return cupy.RawModule(code=code, options=OPTIONS)

    return OnDevice(CudaKernels(load_module, **SMALL_LAUNCH), cupy)


def random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def unwritten(shape, dtype):
    return np.full(shape, np.nan, dtype)


def conv_geometry(p):
    """(kh, kw, sh, sw, ph, pw, dh, dw, oh, ow) of a conv_params draw."""
    oh = window_output_size(p["h"], p["kh"], p["stride"][0], p["padding"][0], p["dilation"][0])
    ow = window_output_size(p["w"], p["kw"], p["stride"][1], p["padding"][1], p["dilation"][1])
    return (p["kh"], p["kw"], *p["stride"], *p["padding"], *p["dilation"], oh, ow)


def pool_geometry(p):
    """((kh, kw, sh, sw, ph, pw), (oh, ow)) of a pool_params draw."""
    axes = zip((p["h"], p["w"]), p["kernel"], p["stride"], p["padding"])
    out = tuple(window_output_size(size, k, s, pad, 1, p["ceil_mode"]) for size, k, s, pad in axes)
    return (*p["kernel"], *p["stride"], *p["padding"]), out


dtypes = st.sampled_from(DTYPES)
seeds = st.integers(0, 2**32 - 1)


# --- the API and the sources ---------------------------------------------------------------

@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_every_cpu_kernel_has_a_cuda_twin_with_its_signature(name):
    cuda_signature = inspect.signature(getattr(CudaKernels, name))
    parameters = list(cuda_signature.parameters.values())[1:]  # without self
    kernel = getattr(cpu, name)  # a Numba dispatcher, or a Python function choosing between two
    assert parameters == list(inspect.signature(getattr(kernel, "py_func", kernel)).parameters.values())


@pytest.mark.parametrize("name", SOURCES)
def test_sources_are_self_contained(name):
    text = source(name)
    assert not re.search(r"^\s*#\s*include", text, re.MULTILINE)
    assert "#define GRID_STRIDE_LOOP" in text
    assert '#line 1 "common.cuh"' in text


def test_importing_the_cuda_kernels_does_not_import_cupy():
    code = "import sys, tinyconv.kernels.cuda; sys.exit('cupy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- im2col / col2im ----------------------------------------------------------------------

@SETTINGS
@given(conv_params(groups=False), dtypes, seeds)
def test_im2col_and_col2im_match_the_cpu_exactly(gpu, p, dtype, seed):
    geometry = conv_geometry(p)
    kh, kw, *_, oh, ow = geometry
    rng = np.random.default_rng(seed)
    x = random(rng, (p["n"], p["c_in"], p["h"], p["w"]), dtype)
    col_shape = (p["c_in"] * kh * kw, p["n"] * oh * ow)
    col, expected = unwritten(col_shape, dtype), unwritten(col_shape, dtype)
    gpu.im2col(x, col, *geometry)
    cpu.im2col(x, expected, *geometry)
    np.testing.assert_array_equal(col, expected)

    col = random(rng, col_shape, dtype)
    x_grad, expected = unwritten(x.shape, dtype), unwritten(x.shape, dtype)
    gpu.col2im(col, x_grad, *geometry)
    cpu.col2im(col.copy(), expected, *geometry)  # the CPU kernel may zero col's padding entries
    np.testing.assert_array_equal(x_grad, expected)


@SETTINGS
@given(conv_params(groups=False), dtypes, seeds)
def test_polyphase_im2col_and_col2im_match_the_cpu_exactly(gpu, p, dtype, seed):
    """Real columns only: what the dummies hold is unspecified, and col2im takes them as zero."""
    sh, sw = (s + 1 for s in p["stride"])  # both > 1
    kh, kw, ph, pw = p["kh"], p["kw"], *p["padding"]
    oh, ow = ((p[a] + 2 * pad - k) // s + 1 for a, pad, k, s in (("h", ph, kh, sh), ("w", pw, kw, sw)))
    q, rows = ow + (kw - 1) // sw, p["c_in"] * kh * kw
    geometry = (kh, kw, sh, sw, ph, pw, oh, ow)
    rng = np.random.default_rng(seed)
    x = random(rng, (p["n"], p["c_in"], p["h"], p["w"]), dtype)
    col, expected = unwritten((rows, p["n"] * oh * q), dtype), unwritten((rows, p["n"] * oh * q), dtype)
    gpu.im2col_phases(x, col, *geometry)
    cpu.im2col_phases(x, expected, *geometry)
    real = [a.reshape(rows, p["n"], oh, q)[..., :ow] for a in (col, expected)]
    np.testing.assert_array_equal(*real)

    col = np.zeros((rows, p["n"], oh, q), dtype)
    col[..., :ow] = random(rng, (rows, p["n"], oh, ow), dtype)
    col = col.reshape(rows, -1)
    x_grad, expected = unwritten(x.shape, dtype), unwritten(x.shape, dtype)
    gpu.col2im_phases(col, x_grad, *geometry)
    cpu.col2im_phases(col, expected, *geometry)
    np.testing.assert_array_equal(x_grad, expected)


def test_serial_twins_are_the_same_kernels():
    assert CudaKernels.im2col_serial is CudaKernels.im2col
    assert CudaKernels.col2im_serial is CudaKernels.col2im


# --- Winograd tile transforms ---------------------------------------------------------------

@st.composite
def winograd_cases(draw, m):
    """(n, c, h, w, ph, pw, th, tw, pitch): a 3x3 stride-1 conv with at least one output in
    m x m tiles, its tile rows laid out tight or with a dummy tile at their end."""
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h, w = draw(st.integers(max(1, 3 - 2 * ph), 13)), draw(st.integers(max(1, 3 - 2 * pw), 13))
    th, tw = -(-(h + 2 * ph - 2) // m), -(-(w + 2 * pw - 2) // m)
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w, ph, pw, th, tw, tw + draw(st.integers(0, 1)))


def real_tiles(rows, tiles_shape, tw):
    """The entries of real tiles in a transformed layout, as (P, C*N*th, tw)."""
    return rows[:, :np.prod(tiles_shape)].reshape(rows.shape[0], -1, tiles_shape[-1])[:, :, :tw]


@pytest.mark.parametrize("prefix, m", [("winograd", 2), ("winograd4", 4)], ids=["F2x2", "F4x4"])
@SETTINGS
@given(data=st.data(), dtype=dtypes, seed=seeds)
def test_winograd_transforms_match_the_cpu_exactly(gpu, prefix, m, data, dtype, seed):
    """Each kernel computes every tile with the same operations in the same order; the rows of
    the (P, L) layout are longer than the tiles, and the tail must stay untouched. What the
    input transform writes into dummy tiles is left unspecified, so only real tiles compare.
    The CPU's F(4x4) kernels always take a dummy tile and its F(2x2) ones never do: GPU layouts
    of either pitch compare with their real tiles."""
    n, c, h, w, ph, pw, th, tw, pitch = data.draw(winograd_cases(m))
    cpu_pitch = tw + 1 if m == 4 else tw
    rng = np.random.default_rng(seed)
    x = random(rng, (n, c, h, w), dtype)
    gy = random(rng, (n, c, h + 2 * ph - 2, w + 2 * pw - 2), dtype)
    products = (m + 2) ** 2
    length, cpu_length = c * n * th * pitch, c * n * th * cpu_pitch
    m_real = random(rng, (products, c * n * th, tw), dtype)  # the output transform's input

    def layout(p):  # m_real in a layout of pitch p, dummies random, 5 entries of tail
        rows = random(rng, (products, c * n * th * p + 5), dtype)
        rows[:, :c * n * th * p].reshape(products, c * n * th, p)[:, :, :tw] = m_real
        return rows

    for step, inputs, cpu_inputs, shape, cpu_shape in (
            ("input", (x,), (x,), (products, length + 5), (products, cpu_length + 5)),
            ("output_adjoint", (gy,), (gy,), (products, length + 5), (products, cpu_length + 5)),
            ("output", (layout(pitch),), (layout(cpu_pitch),), gy.shape, gy.shape)):
        kernel = f"{prefix}_{step}"
        out, expected = unwritten(shape, dtype), unwritten(cpu_shape, dtype)
        padding = (ph, pw) if step == "input" else ()
        getattr(gpu, kernel)(*inputs, out, *padding, th, tw, pitch)
        getattr(cpu, kernel)(*cpu_inputs, expected, *padding, th, tw, cpu_pitch)
        if step == "output":
            np.testing.assert_array_equal(out, expected, err_msg=kernel)
            continue
        np.testing.assert_array_equal(real_tiles(out, (c * n * th, pitch), tw),
                                      real_tiles(expected, (c * n * th, cpu_pitch), tw), err_msg=kernel)
        for array, tiles_length in ((out, length), (expected, cpu_length)):
            np.testing.assert_array_equal(array[:, tiles_length:], unwritten(shape, dtype)[:, -5:], err_msg=kernel)
            dummies = array[:, :tiles_length].reshape(products, c * n * th, -1)[:, :, tw:]
            assert np.isfinite(dummies).all(), kernel
            if step == "output_adjoint":
                assert not dummies.any(), kernel


# --- depthwise ----------------------------------------------------------------------------

@SETTINGS
@given(conv_params(depthwise=True), dtypes, seeds)
def test_depthwise_kernels_match_the_cpu(gpu, p, dtype, seed):
    kh, kw, *window, oh, ow = conv_geometry(p)
    n, c_in, c_out = p["n"], p["c_in"], p["c_out"]
    rng = np.random.default_rng(seed)
    x = random(rng, (n, c_in, p["h"], p["w"]), dtype)
    w = random(rng, (c_out, 1, kh, kw), dtype)
    gy = random(rng, (n, c_out, oh, ow), dtype)
    for kernel, inputs, out_shape in (("depthwise_forward", (x, w), gy.shape),
                                      ("depthwise_backward_input", (gy, w), x.shape),
                                      ("depthwise_backward_weight", (gy, x), w.shape)):
        out, expected = unwritten(out_shape, dtype), unwritten(out_shape, dtype)
        getattr(gpu, kernel)(*inputs, out, *window)
        getattr(cpu, kernel)(*inputs, expected, *window)
        np.testing.assert_allclose(out, expected, **TOL[dtype], err_msg=kernel)


# --- pooling ------------------------------------------------------------------------------

@SETTINGS
@given(pool_params(), dtypes, seeds, st.sampled_from([None, np.nan, -np.inf]))
def test_max_pool_matches_the_cpu_exactly_with_ties_and_specials(gpu, p, dtype, seed, special):
    window, (oh, ow) = pool_geometry(p)
    rng = np.random.default_rng(seed)
    # Few distinct values: most windows hold ties, which the first maximum must win.
    x = rng.integers(-2, 3, (p["n"], p["c"], p["h"], p["w"])).astype(dtype)
    if special is not None:
        x[rng.random(x.shape) < 0.2] = special
    y_shape = (p["n"], p["c"], oh, ow)
    y, y_expected = unwritten(y_shape, dtype), unwritten(y_shape, dtype)
    argmax, argmax_expected = np.full(y_shape, -7, np.int32), np.full(y_shape, -7, np.int32)
    gpu.max_pool_forward(x, y, argmax, *window)
    cpu.max_pool_forward(x, y_expected, argmax_expected, *window)
    np.testing.assert_array_equal(y, y_expected)
    np.testing.assert_array_equal(argmax, argmax_expected)

    gy = random(rng, y_shape, dtype)
    gx, gx_expected = unwritten(x.shape, dtype), unwritten(x.shape, dtype)
    gpu.max_pool_backward(gy, argmax, gx)
    cpu.max_pool_backward(gy, argmax, gx_expected)
    np.testing.assert_array_equal(gx, gx_expected)


def test_max_pool_ties_and_nan_follow_pytorch(gpu):
    x = np.array([[[[1.0, 3.0, 3.0, np.nan, 2.0, np.nan]]]])
    y, argmax = unwritten((1, 1, 1, 2), np.float64), np.full((1, 1, 1, 2), -7, np.int32)
    gpu.max_pool_forward(x, y, argmax, 1, 3, 1, 3, 0, 0)
    assert y[0, 0, 0, 0] == 3.0 and argmax[0, 0, 0, 0] == 1  # first maximum wins a tie
    assert np.isnan(y[0, 0, 0, 1]) and argmax[0, 0, 0, 1] == 5  # NaN wins, the last one


@SETTINGS
@given(pool_params(), st.booleans(), dtypes, seeds)
def test_avg_pool_matches_the_cpu_exactly(gpu, p, count_include_pad, dtype, seed):
    window, (oh, ow) = pool_geometry(p)
    rng = np.random.default_rng(seed)
    x = random(rng, (p["n"], p["c"], p["h"], p["w"]), dtype)
    y_shape = (p["n"], p["c"], oh, ow)
    y, y_expected = unwritten(y_shape, dtype), unwritten(y_shape, dtype)
    gpu.avg_pool_forward(x, y, *window, count_include_pad)
    cpu.avg_pool_forward(x, y_expected, *window, count_include_pad)
    np.testing.assert_array_equal(y, y_expected)

    gy = random(rng, y_shape, dtype)
    gx, gx_expected = unwritten(x.shape, dtype), unwritten(x.shape, dtype)
    gpu.avg_pool_backward(gy, gx, *window, count_include_pad)
    cpu.avg_pool_backward(gy, gx_expected, *window, count_include_pad)
    np.testing.assert_array_equal(gx, gx_expected)


# --- residual -----------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple)


@SETTINGS
@given(shapes, dtypes, seeds)
def test_add_relu_and_relu_backward_match_the_cpu_exactly(gpu, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b, gy = (random(rng, shape, dtype) for _ in range(3))
    a[rng.random(shape) < 0.1] = np.nan  # propagates, as in np.maximum
    out, expected = unwritten(shape, dtype), unwritten(shape, dtype)
    gpu.add_relu(a, b, out)
    cpu.add_relu(a, b, expected)
    np.testing.assert_array_equal(out, expected)
    gx, gx_expected = unwritten(shape, dtype), unwritten(shape, dtype)
    gpu.relu_backward(gy, out, gx)
    cpu.relu_backward(gy, out, gx_expected)
    np.testing.assert_array_equal(gx, gx_expected)
    gpu.add_relu(a, b, a)  # in place
    np.testing.assert_array_equal(a, expected)


# --- the conv epilogue -------------------------------------------------------------------

@SETTINGS
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 40), dtypes, seeds, st.booleans(), st.booleans())
def test_conv_epilogue_matches_the_cpu_exactly(gpu, n, c, length, dtype, seed, relu, with_residual):
    rng = np.random.default_rng(seed)
    y, bias = random(rng, (n, c, length), dtype), random(rng, c, dtype)
    y[rng.random(y.shape) < 0.1] = np.nan  # propagates, as in np.maximum
    residual = random(rng, y.shape, dtype) if with_residual else np.empty((0, 0, 0), dtype)
    expected = y.copy()
    gpu.conv_epilogue(y, bias, residual, relu)
    cpu.conv_epilogue(expected, bias, residual, relu)
    np.testing.assert_array_equal(y, expected)


# --- batch norm ---------------------------------------------------------------------------

@SETTINGS
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 40), dtypes, seeds, st.booleans())
def test_batch_norm_kernels_match_the_cpu(gpu, n, c, length, dtype, seed, relu):
    rng = np.random.default_rng(seed)
    x, gy = random(rng, (n, c, length), dtype) + 3, random(rng, (n, c, length), dtype)
    a, b, k = (random(rng, c, dtype) for _ in range(3))
    relu_y = random(rng, x.shape, dtype) if relu else None  # the fused ReLU's output gates gy
    tol = TOL[dtype]
    for kernel, inputs, outs in (("channel_mean_var", (x,), (c, c)),
                                 ("channel_grad_sums", (gy, x, relu_y), (c, c))):
        results = [unwritten(size, np.float64) for size in outs]
        expected = [unwritten(size, np.float64) for size in outs]
        getattr(gpu, kernel)(*inputs, *results)
        getattr(cpu, kernel)(*inputs, *expected)
        for result, reference in zip(results, expected):
            np.testing.assert_allclose(result, reference, **tol, err_msg=kernel)
    for kernel, inputs in (("channel_affine", (x - 3, a, b, relu)), ("channel_affine2", (gy, x, relu_y, a, b, k))):
        out, expected = unwritten(x.shape, dtype), unwritten(x.shape, dtype)
        getattr(gpu, kernel)(*inputs, out)
        getattr(cpu, kernel)(*inputs, expected)
        np.testing.assert_allclose(out, expected, **tol, err_msg=kernel)


# --- launch configuration and argument checks ----------------------------------------------

def test_default_launch_covers_arrays_larger_than_a_block():
    default = CudaKernels(EmulatedModule)
    rng = np.random.default_rng(0)
    x = random(rng, (2, 3, 19, 17), np.float32)
    y, expected = unwritten(x.shape, np.float32), unwritten(x.shape, np.float32)
    default.add_relu(x, x, y)
    cpu.add_relu(x, x, expected)
    np.testing.assert_array_equal(y, expected)
    col_shape = (3 * 3 * 3, 2 * 19 * 17)
    col, col_expected = unwritten(col_shape, np.float32), unwritten(col_shape, np.float32)
    default.im2col(x, col, 3, 3, 1, 1, 1, 1, 1, 1, 19, 17)
    cpu.im2col(x, col_expected, 3, 3, 1, 1, 1, 1, 1, 1, 19, 17)
    np.testing.assert_array_equal(col, col_expected)


def test_wrong_dtypes_raise_a_type_error_naming_the_kernel(emulated):
    floats = np.zeros((1, 1, 2, 2), np.float32)
    with pytest.raises(TypeError, match="add_relu.*float32 or float64.*int32"):
        emulated.add_relu(*(np.zeros(4, np.int32) for _ in range(3)))
    with pytest.raises(TypeError, match="relu_backward.*float16"):
        emulated.relu_backward(*(np.zeros(4, np.float16) for _ in range(3)))
    with pytest.raises(TypeError, match="avg_pool_forward.*float32, float64"):
        emulated.avg_pool_forward(floats, np.zeros((1, 1, 1, 1)), 2, 2, 2, 2, 0, 0, True)
    with pytest.raises(TypeError, match="max_pool_forward.*int32.*int64"):
        emulated.max_pool_forward(floats, np.zeros((1, 1, 1, 1), np.float32),
                                  np.zeros((1, 1, 1, 1), np.int64), 2, 2, 2, 2, 0, 0)
    with pytest.raises(TypeError, match="channel_mean_var.*float64.*float32"):
        emulated.channel_mean_var(floats.reshape(1, 1, 4), np.zeros(1, np.float32), np.zeros(1))


def test_non_contiguous_arrays_are_refused(emulated):
    a = np.zeros((4, 6), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="add_relu.*C-contiguous"):
        emulated.add_relu(a, a, np.zeros((4, 3), np.float32))
