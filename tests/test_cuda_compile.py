"""Every CUDA kernel file compiles with NVRTC, the compiler CuPy uses, for the GPUs we target.

No GPU is needed: NVRTC comes from the nvidia-cuda-nvrtc-cu12 wheel (in the test extra). These
tests skip only when that library is missing.
"""
from pathlib import Path

import pytest

from tinyconv.kernels import cuda as cuda_kernels
from tinyconv.testing import cuda
from tinyconv.testing.cuda import CudaCompileError, NvrtcNotFoundError, nvrtc_compile, nvrtc_version

CUDA_DIR = Path(__file__).resolve().parents[1] / "kernels" / "cuda"
# compute_80 PTX is what CuPy JIT-compiles for A100-class and newer cards; sm_90 (H100) proves
# the PTX also assembles to machine code.
ARCHS = ["compute_80", "sm_90"]


@pytest.fixture(scope="module")
def nvrtc():
    try:
        return nvrtc_version()
    except NvrtcNotFoundError as error:
        pytest.skip(str(error))


def test_every_kernel_file_is_loaded():
    assert sorted(cuda_kernels.SOURCES) == sorted(path.name for path in CUDA_DIR.glob("*.cu"))


@pytest.mark.usefixtures("nvrtc")
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(cuda_kernels.SOURCES))
def test_kernel_file_compiles(name, arch):
    """Exactly what CuPy's RawModule gets: the self-contained source and the loader's options."""
    nvrtc_compile(cuda_kernels.source(name), arch, name=name, options=cuda_kernels.OPTIONS)


@pytest.mark.usefixtures("nvrtc")
def test_valid_kernel_compiles_to_ptx_and_cubin():
    code = 'extern "C" __global__ void fill(float* y, float v, int n) {\n' \
           "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n    if (i < n) y[i] = v;\n}\n"
    assert b".entry fill(" in nvrtc_compile(code, "compute_80")
    assert nvrtc_compile(code, "sm_90").startswith(b"\x7fELF")


@pytest.mark.usefixtures("nvrtc")
def test_nvrtc_rejects_infinity_with_file_and_line():
    code = 'extern "C" __global__ void clamp(float* y) {\n    float lowest = -INFINITY;\n' \
           "    y[0] = fmaxf(y[0], lowest);\n}\n"
    with pytest.raises(CudaCompileError, match=r'clamp\.cu\(2\): error: identifier "INFINITY" is undefined'):
        nvrtc_compile(code, "compute_80", name="clamp.cu")


def test_missing_nvrtc_names_the_wheel_to_install(monkeypatch):
    monkeypatch.setattr(cuda, "_nvrtc_library_path", lambda: "libnvrtc-not-installed.so.12")
    cuda._nvrtc.cache_clear()
    try:
        with pytest.raises(NvrtcNotFoundError, match="pip install nvidia-cuda-nvrtc-cu12"):
            nvrtc_version()
    finally:
        cuda._nvrtc.cache_clear()  # the next caller loads the real library again
