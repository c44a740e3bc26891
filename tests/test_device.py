"""Devices without a GPU: the CPU device, the errors that say what CUDA needs, and that importing
tinyconv never imports CuPy. (The CUDA path itself runs in tests/test_gpu.py on a GPU machine, and
its kernels under emulation in tests/test_cuda_kernels.py.)"""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import tinyconv
from tinyconv import backend, nn
from tinyconv.train import ConfigError, TrainConfig, train

HAS_CUDA = tinyconv.cuda_is_available()
needs_no_gpu = pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU; the error paths "
                                                   "tested here cannot occur")


def test_device_parsing_and_equality():
    cpu = tinyconv.device("cpu")
    assert cpu == "cpu" and cpu == tinyconv.device(cpu) and str(cpu) == "cpu"
    assert tinyconv.device(" CPU ") == cpu
    assert hash(cpu) == hash(tinyconv.device("cpu"))
    for bad in ("gpu", "cuda:x", "cpu:0", ""):
        with pytest.raises(ValueError, match="expected 'cpu', 'cuda' or 'cuda:<index>'"):
            tinyconv.device(bad)
    with pytest.raises(TypeError, match="device"):
        tinyconv.device(0)
    # Comparing with a spelling never needs CUDA to be there.
    assert cpu != "cuda" and cpu != "cuda:1" and cpu != "gpu"


@needs_no_gpu
def test_cuda_without_a_gpu_says_what_is_missing():
    assert tinyconv.cuda_is_available() is False
    expected = "finds no CUDA GPU" if importlib.util.find_spec("cupy") else r"pip install 'tinyconv\[cuda\]'"
    with pytest.raises(RuntimeError, match=expected):
        tinyconv.device("cuda")
    with pytest.raises(RuntimeError, match=expected):
        tinyconv.tensor([1.0]).to("cuda")
    with pytest.raises(RuntimeError, match=expected):
        nn.Linear(2, 2).cuda()


@needs_no_gpu
def test_training_on_cuda_without_a_gpu_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="CUDA|CuPy"):
        train(TrainConfig(out=str(tmp_path), device="cuda", progress=False), model_fn=lambda: nn.Linear(2, 2))
    assert not any(tmp_path.iterdir()), "nothing is written before the device is known to work"


def test_tensor_and_module_stay_put_on_their_device():
    x = tinyconv.tensor(np.ones((2, 3)), requires_grad=True)
    assert x.device == "cpu" and x.to("cpu") is x and x.cpu() is x
    y = tinyconv.tensor([1.0, 2.0], device="cpu")
    assert y.device == "cpu" and y.dtype == np.float32
    model = nn.Linear(3, 2)
    weight = model.weight.data
    assert model.to("cpu") is model and model.weight.data is weight


def test_unknown_array_library_is_refused():
    class FakeModule:
        __name__ = "jax.numpy"
    with pytest.raises(TypeError, match="numpy .CPU. or cupy .CUDA."):
        backend.kernels(FakeModule())


def test_import_does_not_import_cupy():
    code = "import sys, tinyconv, tinyconv.nn, tinyconv.models, tinyconv.train; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
