"""The ops layer on the CUDA kernels: every op that calls a hand-written kernel, run with
``backend.kernels`` answering with the CUDA kernel set (on the CPU emulator), must give what it
gives with the Numba kernels. This proves the calls the ops make (argument order, dtypes,
contiguity, preallocated outputs) fit the CUDA wrappers, without a GPU."""
import shutil

import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
import tinyconv.random
from tinyconv import backend
from tinyconv.kernels.cuda import CudaKernels
from tinyconv.models import mobilenet_v1_cifar, resnet20
from tinyconv.testing.cuda import EmulatedModule

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA emulator needs g++")

CASES = [
    ("conv3x3", lambda x, w: F.conv2d(x, w, padding=1), [(3, 4, 9, 9), (5, 4, 3, 3)]),
    ("conv3x3_winograd", lambda x, w: F.conv2d(x, w, padding=(2, 0)), [(3, 8, 7, 9), (5, 8, 3, 3)]),
    ("conv3x3_winograd_f4", lambda x, w: F.conv2d(x, w, padding=(2, 0)), [(2, 8, 5, 26), (3, 8, 3, 3)]),
    ("conv_bias_relu", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, relu=True),
     [(2, 3, 7, 7), (4, 3, 3, 3), (4,)]),
    ("conv_strided_dilated_grouped", lambda x, w: F.conv2d(x, w, stride=2, padding=2, dilation=2, groups=2),
     [(2, 4, 11, 10), (6, 2, 3, 3)]),
    ("depthwise", lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=4), [(2, 4, 9, 9), (8, 1, 3, 3)]),
    ("max_pool_ceil", lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), [(2, 3, 8, 8)]),
    ("avg_pool", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), [(2, 3, 7, 7)]),
    ("add_relu", F.add_relu, [(2, 3, 4, 4), (2, 3, 4, 4)]),
    ("relu", F.relu, [(4, 5)]),
]


def use_cuda_kernels(monkeypatch):
    """From here on, route every op's kernel calls to the emulated CUDA kernels."""
    emulated = CudaKernels(EmulatedModule)
    monkeypatch.setattr(backend, "kernels", lambda xp: emulated)


def forward_backward(fn, arrays):
    inputs = [tinyconv.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*inputs)
    (y * np.linspace(-1, 1, y.size).reshape(y.shape).astype(y.dtype)).sum().backward()
    return [y.data.copy()] + [t.grad for t in inputs]


@pytest.mark.parametrize("name, fn, shapes", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_on_cuda_kernels_equals_op_on_numba_kernels(name, fn, shapes, dtype, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    expected = forward_backward(fn, arrays)
    use_cuda_kernels(monkeypatch)
    got = forward_backward(fn, arrays)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for what, g, e in zip(["output"] + [f"gradient {i}" for i in range(len(arrays))], got, expected):
        np.testing.assert_allclose(g, e, **tol, err_msg=f"{name}: {what}")


@pytest.mark.parametrize("model_fn", [resnet20, mobilenet_v1_cifar], ids=["resnet20", "mobilenet_v1_cifar"])
def test_network_gradients_on_cuda_kernels_equal_numba_kernels(model_fn, monkeypatch):
    """A whole network's loss and parameter gradients (conv, depthwise, BN in training mode,
    add+ReLU, pooling), in float64: the BN and depthwise sums run in another order, and through
    27 layers with BN over a few pixels float32 rounding differences grow to ~1 %; float64 shows
    whether the kernels compute the same thing."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 3, 32, 32))
    labels = rng.integers(0, 10, 8)
    tinyconv.random.manual_seed(0)
    state = model_fn().state_dict()

    def loss_and_gradients():
        model = model_fn().double()
        model.load_state_dict(state)
        loss = F.cross_entropy(model(tinyconv.tensor(x)), labels)
        loss.backward()
        return loss.item(), {name: p.grad for name, p in model.named_parameters()}

    loss_numba, grads_numba = loss_and_gradients()
    use_cuda_kernels(monkeypatch)
    loss_cuda, grads_cuda = loss_and_gradients()
    assert loss_cuda == pytest.approx(loss_numba, rel=1e-12)
    for name, expected in grads_numba.items():
        np.testing.assert_allclose(grads_cuda[name], expected, rtol=1e-8, atol=1e-10 * np.abs(expected).max(),
                                   err_msg=name)
