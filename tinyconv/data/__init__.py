"""Data: CIFAR-10 (locate, download, verify, parse) and the batch loader. Pure numpy, no autograd."""
from .cifar import (
    BASE_FOLDER,
    CIFAR10,
    CIFAR10_MD5,
    CIFAR10_URL,
    RestrictedUnpickler,
    download_and_extract,
    load_batch,
    resolve_data_dir,
    safe_extract,
)
from .loader import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DataLoader,
    channel_stats,
    crop_flip,
    pixel_mean,
    random_crop_flip,
    train_val_split,
)

__all__ = [
    "CIFAR10",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "BASE_FOLDER",
    "DataLoader",
    "RestrictedUnpickler",
    "channel_stats",
    "crop_flip",
    "download_and_extract",
    "load_batch",
    "pixel_mean",
    "random_crop_flip",
    "resolve_data_dir",
    "safe_extract",
    "train_val_split",
]
