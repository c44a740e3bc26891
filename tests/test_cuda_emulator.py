"""The CPU emulator for CUDA kernels (tinyconv.testing.cuda.EmulatedModule) proven on small kernels.

Every CUDA kernel's CI test runs through this harness, so it must compute what a GPU computes,
set the index variables as CUDA does, and refuse the mistakes a GPU punishes silently.
"""
import time
from pathlib import Path

import numpy as np
import pytest

from tinyconv.testing import cuda
from tinyconv.testing.cuda import CudaCompileError, EmulatedModule, KernelMemoryError

CUDA_DIR = Path(__file__).resolve().parents[1] / "kernels" / "cuda"

KERNELS = r"""
extern "C" __global__ void saxpy(int n, float a, const float* __restrict__ x, float* __restrict__ y) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + y[i];
}

// One output per thread of a 3-D launch: the thread's global (z, y, x) coordinates.
extern "C" __global__ void coordinates(int* out, long long width, long long height) {
    unsigned int x = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int y = blockIdx.y * blockDim.y + threadIdx.y;
    unsigned int z = blockIdx.z * blockDim.z + threadIdx.z;
    long long i = 3 * ((z * height + y) * width + x);
    out[i] = z;
    out[i + 1] = y;
    out[i + 2] = x;
}

// Reads its index, works a while, reads it again: a launch long enough for others to overlap it.
extern "C" __global__ void index_after_work(int* out, int n, int work) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    volatile int sink = 0;
    for (int k = 0; k < work; ++k) sink = sink + k;
    if (i < n) out[i] = blockIdx.x * blockDim.x + threadIdx.x;
}

extern "C" __global__ void write_one_past_end(int n, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) y[i] = 1.0f;
}

extern "C" __global__ void write_before_start(float* y) {
    int i = threadIdx.x;  // an int: threadIdx.x - 1 would wrap to 4294967295, far out of reach
    y[i - 1] = 1.0f;
}

extern "C" __global__ void write_through_const(const float* x, float* y) {
    y[0] = x[0];
    const_cast<float*>(x)[1] = 0.0f;
}

extern "C" __global__ void scale_in_place(int n, const double* x, double* y, double factor) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * factor;
}

// Device math, bit casts, max/min overloads and atomics as kernels in this project use them.
extern "C" __global__ void device_library(const float* x, float* out, unsigned int* count) {
    const float inf = __int_as_float(0x7f800000);
    float m = -inf;
    for (int i = 0; i < 4; ++i) m = max(m, x[i]);
    out[0] = m;
    out[1] = fmaxf(sqrtf(x[3]), expf(0.0f)) + rsqrtf(4.0f);
    out[2] = (float)min(3, 7u);
    out[3] = __longlong_as_double(__double_as_longlong(2.5));
    atomicAdd(count, 1u);
}
"""


@pytest.fixture(scope="module")
def module():
    return EmulatedModule(KERNELS, name="harness.cu")


@pytest.mark.parametrize("n", [1, 127, 128, 129, 1000])
@pytest.mark.parametrize("grid", [1, 3, None])
def test_grid_stride_loop_covers_ragged_sizes(module, n, grid):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    expected = np.float32(1.5) * x + y
    grid = grid or (n + 127) // 128
    module.get_function("saxpy")((grid,), (128,), (np.int32(n), np.float32(1.5), x, y))
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("grid, block", [((3,), (5,)), ((2, 3), (4, 2)), ((2, 3, 2), (3, 2, 4)), (4, 8)])
def test_index_variables_follow_the_launch_shape(module, grid, block):
    grid = grid if isinstance(grid, tuple) else (grid,)
    block = block if isinstance(block, tuple) else (block,)
    grid, block = grid + (1,) * (3 - len(grid)), block + (1,) * (3 - len(block))
    depth, height, width = (g * b for g, b in zip(grid[::-1], block[::-1]))
    out = np.full((depth, height, width, 3), -1, np.int32)
    module.get_function("coordinates")(grid, block, (out, np.int64(width), np.int64(height)))
    z, y, x = np.meshgrid(np.arange(depth), np.arange(height), np.arange(width), indexing="ij")
    np.testing.assert_array_equal(out, np.stack([z, y, x], axis=-1))


def test_concurrent_launches_from_two_modules_of_one_source(module):
    """Modules built from the same source share one loaded library, and with it the index
    globals: launches from several threads and module objects must still not interleave."""
    import concurrent.futures
    twin = EmulatedModule(KERNELS, name="harness.cu")
    kernels = [module.get_function("index_after_work"), twin.get_function("index_after_work")]

    def launch(k):
        out = np.full(2048, -1, np.int32)
        kernels[k % 2]((16,), (128,), (out, np.int32(out.size), np.int32(2000)))
        return out

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(launch, range(8)))
    for out in results:
        np.testing.assert_array_equal(out, np.arange(out.size))


def test_write_past_the_end_is_caught(module):
    y = np.zeros(10, np.float32)
    with pytest.raises(KernelMemoryError, match=r"write_one_past_end.*\by\b.*element 10\b"):
        module.get_function("write_one_past_end")((1,), (32,), (np.int32(10), y))
    assert not y.any(), "a failed launch must leave the caller's arrays alone"


def test_write_before_the_start_is_caught(module):
    with pytest.raises(KernelMemoryError, match=r"write_before_start.*\by\b.*element -1\b"):
        module.get_function("write_before_start")(1, 4, (np.zeros(4, np.float32),))


def test_write_through_const_pointer_is_caught(module):
    x = np.ones(2, np.float32)
    with pytest.raises(KernelMemoryError, match=r"write_through_const.*const.*\bx\b.*element 1\b"):
        module.get_function("write_through_const")(1, 1, (x, np.zeros(1, np.float32)))


def test_same_array_twice_is_one_buffer(module):
    y = np.arange(5, dtype=np.float64)
    module.get_function("scale_in_place")(1, 8, (np.int32(5), y, y, np.float64(2.0)))
    np.testing.assert_array_equal(y, 2 * np.arange(5))


def test_device_library(module):
    x = np.array([1.0, -2.0, 5.0, 16.0], np.float32)
    out = np.zeros(4, np.float32)
    count = np.zeros(1, np.uint32)
    module.get_function("device_library")((2,), (3,), (x, out, count))
    np.testing.assert_array_equal(out, [16.0, 4.5, 3.0, 2.5])
    assert count[0] == 6


@pytest.mark.parametrize("value", [10, 10.0])
def test_python_scalars_are_refused_with_the_64_bit_reason(module, value):
    y = np.zeros(10, np.float32)
    with pytest.raises(TypeError, match=r"saxpy.*\bn\b.*np\.int32.*64-bit"):
        module.get_function("saxpy")(1, 32, (value, np.float32(1), y, y))


def test_scalar_of_the_wrong_width_is_refused(module):
    y = np.zeros(10, np.float32)
    with pytest.raises(TypeError, match=r"saxpy.*float a.*np\.float32.*np\.float64"):
        module.get_function("saxpy")(1, 32, (np.int32(10), np.float64(1), y, y))


@pytest.mark.parametrize("bad, reason", [
    (np.zeros(10, np.float64), "float32.*float64"),
    (np.zeros(20, np.float32)[::2], "C-contiguous"),
    ([0.0] * 10, "NumPy array.*list"),
])
def test_pointer_arguments_are_checked(module, bad, reason):
    y = np.zeros(10, np.float32)
    with pytest.raises(TypeError, match=rf"saxpy.*const float\* x.*{reason}"):
        module.get_function("saxpy")(1, 32, (np.int32(10), np.float32(1), bad, y))


def test_wrong_argument_count_is_refused(module):
    with pytest.raises(TypeError, match=r"saxpy takes 4 arguments.*got 3"):
        module.get_function("saxpy")(1, 32, (np.int32(1), np.float32(1), np.zeros(1, np.float32)))


@pytest.mark.parametrize("grid, block", [(0, 32), (1, 2048), (1, (32, 32, 2)), ((1, 1, 1, 1), 1)])
def test_launch_shapes_outside_device_limits_are_refused(module, grid, block):
    y = np.zeros(1, np.float32)
    with pytest.raises((TypeError, ValueError), match="saxpy"):
        module.get_function("saxpy")(grid, block, (np.int32(1), np.float32(1), y, y))


def test_a_large_launch_is_fast(module):
    n = 100_000
    x, y = np.ones(n, np.float32), np.zeros(n, np.float32)
    start = time.perf_counter()
    module.get_function("saxpy")(((n + 255) // 256,), (256,), (np.int32(n), np.float32(2), x, y))
    assert time.perf_counter() - start < 0.5
    assert (y == 2).all()


def test_compile_error_names_file_and_line():
    code = 'extern "C" __global__ void broken(float* y) {\n    y[0] = 1.0f;\n    y[1] = undefined_name;\n}\n'
    with pytest.raises(CudaCompileError, match=r"broken\.cu:3:.*undefined_name"):
        EmulatedModule(code, name="broken.cu")


def test_syncthreads_is_refused_at_compile_time():
    code = 'extern "C" __global__ void k(float* y) {\n    y[threadIdx.x] = 1.0f;\n    __syncthreads();\n}\n'
    with pytest.raises(CudaCompileError, match=r"__syncthreads.*not supported by the CPU emulator"):
        EmulatedModule(code)


def test_infinity_macro_is_refused_as_nvrtc_does():
    with pytest.raises(CudaCompileError, match="INFINITY"):
        EmulatedModule('extern "C" __global__ void k(float* y) { y[0] = INFINITY; }')


@pytest.mark.parametrize("code", [
    "template <typename T> __global__ void k(T* y) { y[0] = 1; }",
    'extern "C" { __global__ void k(float* y) { y[0] = 1; } }',
    'extern "C" __global__ void k(float2* y) { }',
])
def test_kernels_the_emulator_cannot_launch_are_reported(code):
    with pytest.raises(CudaCompileError, match="emulator"):
        EmulatedModule(code)


def test_kernels_stamped_by_a_macro_are_found():
    code = ('#define SCALE(T, SUFFIX) extern "C" __global__ void scale_##SUFFIX(T* y, T a) '
            "{ y[threadIdx.x] *= a; }\nSCALE(float, f32)\nSCALE(double, f64)\n")
    module = EmulatedModule(code)
    assert module.kernel_names == ["scale_f32", "scale_f64"]
    y = np.ones(3)
    module.get_function("scale_f64")(1, 3, (y, np.float64(4)))
    np.testing.assert_array_equal(y, 4.0)


def test_built_modules_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCONV_CACHE", str(tmp_path))
    code = 'extern "C" __global__ void k(int* y) { y[threadIdx.x] = threadIdx.x; }'
    EmulatedModule(code)

    def compiler_must_not_run(*args):
        raise AssertionError("the cached library was rebuilt")

    monkeypatch.setattr(cuda, "_run_compiler", compiler_must_not_run)
    y = np.zeros(4, np.int32)
    EmulatedModule(code).get_function("k")(1, 4, (y,))
    np.testing.assert_array_equal(y, np.arange(4))


@pytest.mark.parametrize("source", sorted(CUDA_DIR.glob("*.cu")), ids=lambda path: path.name)
def test_project_kernel_files_build_for_emulation(source):
    module = EmulatedModule(source.read_text(), name=source.name, include_dirs=[CUDA_DIR])
    assert module.kernel_names, f"{source.name} declares no extern \"C\" __global__ kernel"
