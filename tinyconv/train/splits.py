"""Which images a run trains, validates and tests on, and the loaders that serve them."""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from tinyconv.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD, DataLoader
from tinyconv.train.config import ConfigError, TrainConfig


@dataclass
class Arrays:
    """Images and labels of a training set and a test set: uint8 (N, C, H, W) and int (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@dataclass
class Splits:
    """Row indices into ``arrays``: training rows, validation rows (maybe empty), test rows."""

    arrays: Arrays
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def fingerprint(self) -> int:
        """CRC-32 of the training images and labels used: a resume on other data is refused."""
        a, crc = self.arrays, 0
        for i in range(0, len(self.train), 4096):  # in chunks: never a second copy of the train set
            rows = self.train[i:i + 4096]
            crc = zlib.crc32(np.ascontiguousarray(a.train_images[rows]).data, crc)
            crc = zlib.crc32(np.ascontiguousarray(a.train_labels[rows], dtype=np.int64).data, crc)
        return crc


def load_cifar10(data_dir=None) -> Arrays:
    """CIFAR-10 train (50,000) and test (10,000) from ``data_dir`` (else ``$TINYCONV_DATA``)."""
    train, test = CIFAR10(data_dir, train=True), CIFAR10(data_dir, train=False)
    return Arrays(train.data, train.targets, test.data, test.targets)


def make_splits(arrays: Arrays, config: TrainConfig) -> Splits:
    """Hold out the LAST ``val_split`` training images, then train on the first ``subset`` of the rest.

    The held-out images are the same whatever ``subset`` is, so validation errors of quick and full
    runs compare. The test set is its first ``test_subset`` rows (all of it by default).
    """
    n = len(arrays.train_images)
    if config.val_split >= n:
        raise ConfigError(f"--val-split {config.val_split} leaves no training images (there are {n})")
    usable = n - config.val_split
    count = usable if config.subset is None else config.subset
    if count > usable:
        raise ConfigError(f"--subset {config.subset} is more than the {usable} training images left "
                         f"after --val-split {config.val_split}")
    n_test = len(arrays.test_images)
    n_test = n_test if config.test_subset is None else min(config.test_subset, n_test)
    return Splits(arrays, train=np.arange(count), val=np.arange(usable, n), test=np.arange(n_test))


def train_loader(splits: Splits, config: TrainConfig) -> DataLoader:
    """Shuffled, augmented (unless ``augment`` is off), normalised training batches.

    Seeded from ``config.seed``; its generator state goes into every checkpoint.
    """
    a = splits.arrays
    return DataLoader(a.train_images, a.train_labels, batch_size=config.batch_size, shuffle=True,
                      augment=config.augment, mean=CIFAR10_MEAN, std=CIFAR10_STD, seed=config.seed,
                      prefetch=config.workers > 0, prefetch_depth=max(config.workers, 1),
                      indices=splits.train)


def eval_loader(images, labels, rows, config: TrainConfig) -> DataLoader:
    """Batches of ``rows`` in order (so row i of the results is image ``rows[i]``), not augmented."""
    return DataLoader(images, labels, batch_size=config.eval_batch_size, shuffle=False, augment=False,
                      mean=CIFAR10_MEAN, std=CIFAR10_STD, prefetch=config.workers > 0,
                      prefetch_depth=max(config.workers, 1), indices=rows)
