"""End to end on real data: a small CNN must memorise 512 CIFAR-10 training images.

Reaching >= 95 % training accuracy within a fixed budget needs every layer's gradient right:
a wrong conv, pool, batch-norm, linear or loss gradient stalls it well below that.
"""
import os
from pathlib import Path

import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv import nn, optim

DATA = os.environ.get("TINYCONV_DATA", "")
pytestmark = pytest.mark.skipif(
    not (DATA and (Path(DATA) / "cifar-10-batches-py" / "data_batch_1").exists()),
    reason="real CIFAR-10 needed: set TINYCONV_DATA to the folder containing cifar-10-batches-py/")


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


def test_small_cnn_memorises_512_real_images():
    from tinyconv.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD

    train = CIFAR10(DATA, train=True)
    images = train.data[:512].astype(np.float32) / 255
    images = (images - np.array(CIFAR10_MEAN, np.float32)[:, None, None]) / np.array(CIFAR10_STD, np.float32)[:, None, None]
    labels = train.targets[:512]
    tinyconv.random.manual_seed(0)
    model = small_cnn()
    opt = optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for epoch in range(25):
        order = rng.permutation(512)
        for start in range(0, 512, 64):
            batch = order[start:start + 64]
            opt.zero_grad()
            loss = F.cross_entropy(model(tinyconv.tensor(images[batch])), labels[batch])
            loss.backward()
            opt.step()
    model.eval()
    with tinyconv.no_grad():
        predictions = model(tinyconv.tensor(images)).data.argmax(axis=1)
    accuracy = (predictions == labels).mean()
    assert accuracy >= 0.95, f"training accuracy {accuracy:.3f} after 200 steps"
