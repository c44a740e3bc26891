"""tinyconv: a from-scratch deep-learning engine (autograd + Numba/CUDA kernels) for classic CNNs."""
from setuptools import setup

setup(
    name="tinyconv",
    version="0.1.0",
    description="A from-scratch deep-learning engine for classic CNNs: autograd over NumPy/CuPy, "
                "hand-written Numba and CUDA kernels.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # kernels/ lives at the top of the repository but is installed as tinyconv.kernels.
    packages=[
        "tinyconv", "tinyconv.ops", "tinyconv.nn", "tinyconv.optim", "tinyconv.data",
        "tinyconv.models", "tinyconv.train", "tinyconv.testing",
        "tinyconv.kernels", "tinyconv.kernels.cpu", "tinyconv.kernels.cuda",
    ],
    package_dir={"tinyconv.kernels": "kernels"},
    package_data={"tinyconv.kernels.cuda": ["*.cu", "*.cuh"], "tinyconv.testing": ["*.h"]},
    # tbb gives numba a threading layer that does not spin against OpenBLAS (kernels/cpu/__init__.py).
    install_requires=["numpy>=1.24", "numba>=0.58", "tqdm>=4.60", "threadpoolctl>=3",
                      "tbb; platform_system == 'Linux' and platform_machine == 'x86_64'"],
    extras_require={
        # NVRTC (~90 MB) compiles the CUDA kernels in CI without a GPU (tests/test_cuda_compile.py).
        "test": ["pytest>=7", "hypothesis>=6.80", "matplotlib>=3.5",
                 "nvidia-cuda-nvrtc-cu12; platform_system == 'Linux' and platform_machine == 'x86_64'"],
        "plot": ["matplotlib>=3.5"],
        "cuda": ["cupy-cuda12x>=13"],
    },
)
