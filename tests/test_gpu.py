"""The CUDA path for real: every op with a hand-written kernel, run on CuPy arrays, against the same
op on the CPU; a ResNet-20 training step; training with ``device="cuda"``. Marked ``gpu`` (run with
``make test-gpu``) and skipped with the reason on machines without a CUDA GPU."""
import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
import tinyconv.optim
import tinyconv.random
from tinyconv import nn
from tinyconv.models import resnet20

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not tinyconv.cuda_is_available(),
                       reason="needs CuPy and a CUDA GPU (pip install '.[cuda]' on a GPU machine)"),
]

# (name, function of the input tensors, input shapes); each runs forward and backward on both devices.
CASES = [
    ("conv3x3", lambda x, w: F.conv2d(x, w, padding=1), [(4, 16, 12, 12), (32, 16, 3, 3)]),
    ("conv_strided_dilated", lambda x, w: F.conv2d(x, w, stride=2, padding=2, dilation=2),
     [(3, 5, 13, 11), (7, 5, 3, 3)]),
    ("conv_grouped", lambda x, w: F.conv2d(x, w, padding=1, groups=2), [(2, 8, 9, 9), (6, 4, 3, 3)]),
    ("conv1x1", lambda x, w: F.conv2d(x, w), [(2, 8, 7, 7), (12, 8, 1, 1)]),
    ("depthwise", lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=8), [(2, 8, 15, 15), (8, 1, 3, 3)]),
    ("max_pool", lambda x: F.max_pool2d(x, 3, stride=2, padding=1), [(2, 4, 11, 11)]),
    ("max_pool_ceil", lambda x: F.max_pool2d(x, 3, stride=2, ceil_mode=True), [(2, 4, 10, 10)]),
    ("avg_pool", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), [(2, 4, 9, 9)]),
    ("global_avg_pool", F.global_avg_pool2d, [(2, 4, 5, 5)]),
    ("add_relu", F.add_relu, [(2, 3, 4, 4), (2, 3, 4, 4)]),
    ("relu", F.relu, [(5, 7)]),
    ("lrn", lambda x: F.local_response_norm(x, 5), [(2, 8, 4, 4)]),
    ("upsample", F.upsample_nearest, [(2, 3, 4, 4)]),
    ("softmax", lambda x: F.softmax(x, axis=1), [(6, 10)]),
]


def run_case(fn, arrays, device):
    inputs = [tinyconv.tensor(a, requires_grad=True, device=device) for a in arrays]
    y = fn(*inputs)
    weights = tinyconv.tensor(np.linspace(-1, 1, y.size).reshape(y.shape).astype(y.dtype), device=device)
    (y * weights).sum().backward()
    return y.numpy(), [t.grad.get() if device != "cpu" else t.grad for t in inputs]


@pytest.mark.parametrize("name, fn, shapes", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_on_cuda_equals_cpu(name, fn, shapes, dtype):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    y_cpu, grads_cpu = run_case(fn, arrays, "cpu")
    y_gpu, grads_gpu = run_case(fn, arrays, "cuda")
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y_gpu, y_cpu, **tol, err_msg=f"{name} forward")
    for i, (g_gpu, g_cpu) in enumerate(zip(grads_gpu, grads_cpu)):
        np.testing.assert_allclose(g_gpu, g_cpu, **tol, err_msg=f"{name} gradient of input {i}")


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_on_cuda_equals_cpu(training):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 6, 5, 5)).astype(np.float32) * 3 + 1
    results = []
    for device in ("cpu", "cuda"):
        bn = nn.BatchNorm2d(6).to(device).train(training)
        xt = tinyconv.tensor(x, requires_grad=True, device=device)
        y = bn(xt)
        (y * y).sum().backward()
        results.append((y.numpy(), xt.grad if device == "cpu" else xt.grad.get(), bn.state_dict()))
    (y0, g0, s0), (y1, g1, s1) = results
    np.testing.assert_allclose(y1, y0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g1, g0, rtol=1e-3, atol=1e-4)
    for key in s0:
        np.testing.assert_allclose(s1[key], s0[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_resnet20_training_step_on_cuda_equals_cpu():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    tinyconv.random.manual_seed(0)
    state = resnet20().state_dict()
    losses, weights = [], []
    for device in ("cpu", "cuda"):
        model = resnet20()
        model.load_state_dict(state)
        model.to(device)
        optimizer = tinyconv.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        for _ in range(2):
            loss = F.cross_entropy(model(tinyconv.tensor(x, device=device)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
        weights.append(model.state_dict())
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    for key in weights[0]:
        np.testing.assert_allclose(weights[1][key], weights[0][key], rtol=1e-3, atol=1e-4, err_msg=key)


def test_tensor_round_trip_and_gradient_across_devices():
    x = tinyconv.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    y = x.cuda()
    assert y.device == "cuda:0" and y.device.type == "cuda"
    (y * y).sum().backward()
    assert x.device == "cpu" and isinstance(x.grad, np.ndarray)
    np.testing.assert_array_equal(x.grad, 2 * x.data)
    model = nn.Linear(3, 2).cuda()
    assert model.weight.device == "cuda:0"
    assert isinstance(model.state_dict()["weight"], np.ndarray)


def test_training_with_device_cuda(tmp_path):
    from tinyconv.train import Arrays, TrainConfig, train
    rng = np.random.default_rng(3)
    arrays = Arrays(rng.integers(0, 256, (128, 3, 16, 16), dtype=np.uint8), rng.integers(0, 10, 128),
                    rng.integers(0, 256, (64, 3, 16, 16), dtype=np.uint8), rng.integers(0, 10, 64))

    def small_net():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.MaxPool2d(2), nn.GlobalAvgPool2d(), nn.Linear(8, 10))

    config = TrainConfig(model="small", epochs=2, batch_size=32, out=str(tmp_path / "a"), progress=False,
                         device="cuda")
    result = train(config, model_fn=small_net, arrays=arrays)
    assert result.status == "complete"
    resumed = train(TrainConfig(**{**config.to_dict(), "resume": True}), model_fn=small_net, arrays=arrays)
    assert resumed.status == "complete"
