"""Batches for training: shuffling, normalisation, the paper's augmentation, background prefetch.

Everything here works on plain numpy arrays: images are uint8 NCHW, batches come out as float32
NCHW plus int64 labels. Nothing here knows about autograd; the training loop wraps the arrays.

Augmentation (He et al. 2016, sec. 4.2, after Lee et al.): pad 4 pixels on each side, take a random
32x32 crop, flip horizontally with probability 1/2. The padding is applied to the *normalised*
image, as in the paper (which pads the mean-subtracted image): the padded border is 0 after
normalisation, i.e. it equals the mean colour (the per-pixel mean, when a (C, H, W) mean is used).
torchvision's usual recipe pads the raw pixels with 0 (black) before ``ToTensor``/``Normalize``
instead; the difference in accuracy is negligible, but this is the one documented here.
With ``mean=None`` there is no mean to subtract, so the border is 0.0, i.e. black.
"""
from __future__ import annotations

import copy
import queue
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "DataLoader",
    "channel_stats",
    "pixel_mean",
    "train_val_split",
    "crop_flip",
    "random_crop_flip",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
]

# Per-channel mean and (population) std of the 50,000 CIFAR-10 training images, in [0, 1] units,
# computed with channel_stats() from data_batch_1..5 (R, G, B). tests/test_data.py re-derives them
# from the real files.
CIFAR10_MEAN = (0.49139968, 0.48215841, 0.44653091)
CIFAR10_STD = (0.24703223, 0.24348513, 0.26158784)


# --------------------------------------------------------------------------------------------------
# Statistics and splits
# --------------------------------------------------------------------------------------------------
def _as_unit(x: np.ndarray) -> float:
    """The divisor that takes these images to [0, 1]: 255 for uint8, 1 for floats."""
    return 255.0 if x.dtype == np.uint8 else 1.0


def channel_stats(images: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std of ``images`` (N, C, H, W), in [0, 1] units.

    uint8 images are divided by 255; float images are taken as already in [0, 1]. Returns two
    float64 arrays of shape (C,). Works in chunks of ``chunk`` images so the 50k CIFAR train set
    is never copied whole; for uint8 the sums are exact integers, so the result does not depend on
    the chunking.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"channel_stats expects (N, C, H, W) images, found shape {images.shape}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("channel_stats needs at least one image")
    acc = np.int64 if images.dtype == np.uint8 else np.float64
    s = np.zeros(c, dtype=acc)
    s2 = np.zeros(c, dtype=acc)
    for i in range(0, n, chunk):
        x = images[i:i + chunk].astype(acc)
        s += x.sum(axis=(0, 2, 3))
        s2 += np.einsum("nchw,nchw->c", x, x)
    count = n * h * w
    mean = s / count
    var = np.maximum(s2 / count - mean * mean, 0.0)
    unit = _as_unit(images)
    return mean / unit, np.sqrt(var) / unit


def pixel_mean(images: np.ndarray) -> np.ndarray:
    """The paper's per-pixel mean: float32 array of shape (C, H, W), in [0, 1] units.

    Pass it as ``DataLoader(..., mean=pixel_mean(train_images), std=None)``.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"pixel_mean expects (N, C, H, W) images, found shape {images.shape}")
    return (images.mean(axis=0, dtype=np.float64) / _as_unit(images)).astype(np.float32)


def train_val_split(n: int, val_size: int = 5000, seed: int | None = None):
    """Split ``range(n)`` into ``(train_idx, val_idx)``, two sorted int64 arrays.

    With ``seed=None`` (the default) the held-out set is deterministic: the LAST ``val_size``
    indices. For CIFAR-10 train that is the last 5,000 images of data_batch_5, whose pixels are
    exact (see the data README), giving the 45k/5k split of He et al. With an integer seed the
    held-out indices are a random (seeded) subset instead.
    """
    n, val_size = int(n), int(val_size)
    if not 0 <= val_size <= n:
        raise ValueError(f"val_size must be in [0, {n}], found {val_size}")
    if seed is None:
        return np.arange(n - val_size, dtype=np.int64), np.arange(n - val_size, n, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n - val_size]).astype(np.int64), np.sort(perm[n - val_size:]).astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------------
def _crop_flip_padded(padded: np.ndarray, h: int, w: int, oy, ox, flip) -> np.ndarray:
    """Crop an (h, w) window at (oy[i], ox[i]) from each padded image, mirror where flip[i].

    ``padded`` is (B, C, h + 2p, w + 2p). One gather for the whole batch: the sliding-window view
    is (B, C, 2p+1, 2p+1, h, w) with no copy, and indexing it with (arange(B), :, oy, ox) picks one
    window per image. Because the advanced indices are split by a slice, numpy puts the batch axis
    first, giving (B, C, h, w). Measured 0.24 ms for a 128-image CIFAR batch (a 4-array fancy
    gather took 1.8 ms).
    """
    b = padded.shape[0]
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))
    out = windows[np.arange(b), :, oy, ox]
    if flip is not None:
        flip = np.asarray(flip, dtype=bool)
        if flip.any():
            out[flip] = out[flip, :, :, ::-1]
    return np.ascontiguousarray(out)


def _check_offsets(oy, ox, flip, b, pad):
    oy = np.asarray(oy, dtype=np.intp)
    ox = np.asarray(ox, dtype=np.intp)
    if oy.shape != (b,) or ox.shape != (b,):
        raise ValueError(f"expected oy, ox of shape ({b},), found {oy.shape} and {ox.shape}")
    for name, o in (("oy", oy), ("ox", ox)):
        if b and (o.min() < 0 or o.max() > 2 * pad):
            raise ValueError(f"{name} must be in [0, {2 * pad}] for pad={pad}, "
                             f"found range {o.min()}..{o.max()}")
    if flip is not None and np.shape(flip) != (b,):
        raise ValueError(f"expected flip of shape ({b},), found {np.shape(flip)}")
    return oy, ox


def crop_flip(x: np.ndarray, oy, ox, flip=None, pad: int = 4) -> np.ndarray:
    """Deterministic pad + crop + flip of a batch ``x`` of shape (B, C, H, W).

    Each image is zero-padded by ``pad`` pixels on every side, the (H, W) window whose top-left
    corner is at row ``oy[i]``, column ``ox[i]`` of the padded image is taken (offsets in
    [0, 2*pad]; ``pad, pad`` is the identity crop) and, where ``flip[i]`` is true, mirrored left to
    right. Returns a new array of x's dtype and shape. Vectorised: no per-image Python loop.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"crop_flip expects a (B, C, H, W) batch, found shape {x.shape}")
    b, c, h, w = x.shape
    oy, ox = _check_offsets(oy, ox, flip, b, pad)
    padded = np.zeros((b, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    return _crop_flip_padded(padded, h, w, oy, ox, flip)


def random_crop_flip(x: np.ndarray, rng: np.random.Generator, pad: int = 4, flip: bool = True):
    """The paper's augmentation with random parameters drawn from ``rng``.

    Returns ``(out, oy, ox, flipped)``: ``out`` as :func:`crop_flip`, the crop offsets (each
    uniform on 0..2*pad) and the boolean flip mask (each true with probability 1/2; all false
    when ``flip=False``).
    """
    b = np.shape(x)[0]
    oy = rng.integers(0, 2 * pad + 1, size=b)
    ox = rng.integers(0, 2 * pad + 1, size=b)
    flipped = rng.random(b) < 0.5 if flip else np.zeros(b, dtype=bool)
    return crop_flip(x, oy, ox, flipped, pad), oy, ox, flipped


# --------------------------------------------------------------------------------------------------
# Prefetch
# --------------------------------------------------------------------------------------------------
_END = object()


class _WorkerError:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put into a bounded queue, giving up once ``stop`` is set. Returns whether it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _worker(batches, q: queue.Queue, stop: threading.Event) -> None:
    # The worker holds the batch generator, the queue and the event, never the iterator object:
    # so when the consumer drops the iterator its __del__ runs and stops this thread.
    try:
        for item in batches:
            if not _put(q, item, stop):
                return
        _put(q, _END, stop)
    except BaseException as e:  # re-raised in the consumer by _PrefetchIterator.__next__
        _put(q, _WorkerError(e), stop)
    finally:
        batches.close()


class _PrefetchIterator:
    """Runs a batch generator in a daemon thread, at most ``depth`` batches ahead.

    Stops the thread when exhausted, on :meth:`close`, on ``with`` exit, or when garbage
    collected (a ``for`` loop left by ``break`` or an exception drops its iterator at once in
    CPython). An exception in the worker is re-raised by ``__next__``.
    """

    def __init__(self, batches, depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self.thread = threading.Thread(target=_worker, args=(batches, self._queue, self._stop),
                                       name="tinyconv-prefetch", daemon=True)
        self.thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _WorkerError):
            self.close()
            raise item.exc
        return item

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker thread and wait for it (idempotent)."""
        self._done = True
        self._stop.set()
        # Empty the queue so a worker blocked in put() sees the stop flag within one timeout.
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close(timeout=1.0)
        except Exception:  # interpreter shutdown: modules may already be gone
            pass


# --------------------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------------------
def _as_param(v, c: int, h: int, w: int, name: str):
    """Turn a mean/std given as scalar, (C,) or (C, H, W) into a float64 array broadcasting to CHW."""
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1, 1)
    if a.shape == (c,):
        return a.reshape(c, 1, 1)
    if a.shape == (c, h, w):
        return a
    raise ValueError(f"{name} must be a scalar, shape ({c},) per channel or ({c}, {h}, {w}) per pixel; "
                     f"found shape {a.shape}")


class DataLoader:
    """Iterate over ``(x, y)`` mini-batches of uint8 NCHW images.

    Parameters
    ----------
    images : uint8 array (N, C, H, W), or a dataset with ``.data`` and ``.targets`` (e.g.
        :class:`~tinyconv.data.CIFAR10`; then ``labels`` must be None).
    labels : int array (N,).
    batch_size : images per batch; the last batch is smaller unless ``drop_last``.
    shuffle : a new seeded permutation every epoch.
    augment : the paper's 4-pixel pad + random crop + random horizontal flip (see the module doc:
        the border is padded after normalisation, so it is the mean).
    mean, std : normalisation in [0, 1] units: ``x = (img / 255 - mean) / std``. Each may be a
        scalar, per channel (C,) such as :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`, or per pixel
        (C, H, W) such as :func:`pixel_mean` (the paper: per-pixel mean, ``std=None``). ``None``
        means 0 for the mean and 1 for the std.
    drop_last : drop the final incomplete batch.
    seed : seeds the loader's ``numpy.random.Generator`` (PCG64).
    prefetch : build batches in a background thread, ``prefetch_depth`` batches ahead.
    pad : padding for the augmentation crop (crop offsets are in 0..2*pad).
    indices : optional int array selecting a subset of the images (e.g. from
        :func:`train_val_split`) without copying them.

    Iterating yields ``x`` float32 (B, C, H, W), C-contiguous, and ``y`` int64 (B,).
    ``len(loader)`` is the number of batches per epoch.

    Reproducibility: all the randomness of an epoch (permutation, crop offsets, flips) is drawn
    from the generator in the calling thread when iteration starts, so the batches do not depend
    on prefetch or timing, and :meth:`state_dict` taken at any point after an epoch has started
    (e.g. in a checkpoint written at the end of the epoch) describes the NEXT epoch exactly.
    """

    def __init__(self, images, labels=None, batch_size: int = 128, shuffle: bool = False,
                 augment: bool = False, mean=None, std=None, drop_last: bool = False, seed=0,
                 prefetch: bool = True, *, pad: int = 4, indices=None, prefetch_depth: int = 2):
        if hasattr(images, "data") and hasattr(images, "targets") and not isinstance(images, np.ndarray):
            if labels is not None:
                raise ValueError("pass either a dataset object or (images, labels), not both")
            images, labels = images.data, images.targets
        images = np.asarray(images)
        if labels is None:
            raise ValueError("labels are required when images is an array")
        labels = np.asarray(labels)
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 of shape (N, C, H, W), "
                             f"found {images.dtype} of shape {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},) to match the images, "
                             f"found {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, found {labels.dtype}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, found {batch_size}")
        if int(pad) < 0:
            raise ValueError(f"pad must be >= 0, found {pad}")
        if int(prefetch_depth) < 1:
            raise ValueError(f"prefetch_depth must be >= 1, found {prefetch_depth}")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        if indices is not None:
            indices = np.asarray(indices, dtype=np.int64)
            if indices.ndim != 1:
                raise ValueError(f"indices must be 1-D, found shape {indices.shape}")
            if indices.size and (indices.min() < 0 or indices.max() >= len(images)):
                raise ValueError(f"indices must be in [0, {len(images)}), "
                                 f"found range {indices.min()}..{indices.max()}")
        self.indices = indices
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.augment = bool(augment)
        self.drop_last = bool(drop_last)
        self.prefetch = bool(prefetch)
        self.prefetch_depth = int(prefetch_depth)
        self.pad = int(pad)
        self.seed = seed
        self.epoch = 0  # epochs started so far
        self._rng = np.random.default_rng(seed)

        _, c, h, w = images.shape
        m = _as_param(0.0 if mean is None else mean, c, h, w, "mean")
        s = _as_param(1.0 if std is None else std, c, h, w, "std")
        if np.any(s <= 0):
            raise ValueError("std must be positive")
        self.mean, self.std = m, s
        # x = (img/255 - mean)/std  ==  img*scale - shift: one multiply and one subtract per pixel.
        self._scale = (1.0 / (255.0 * s)).astype(np.float32)
        self._shift = (m / s).astype(np.float32)

    # ---- size -------------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Images per epoch (before ``drop_last``)."""
        return len(self.images) if self.indices is None else len(self.indices)

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    # ---- RNG state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{'rng': bit-generator state, 'epoch': epochs started}``: a deep copy, picklable."""
        return {"rng": copy.deepcopy(self._rng.bit_generator.state), "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned; the next epoch then repeats exactly."""
        try:
            self._rng.bit_generator.state = copy.deepcopy(state["rng"])
            self.epoch = int(state["epoch"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a DataLoader state dict (expected keys 'rng' and 'epoch'): {e}") from e

    # ---- batches ------------------------------------------------------------------------------------
    def normalize(self, images_uint8: np.ndarray) -> np.ndarray:
        """uint8 (B, C, H, W) -> float32 (B, C, H, W), ``(img/255 - mean)/std``."""
        x = np.multiply(images_uint8, self._scale, dtype=np.float32)
        x -= self._shift
        return x

    def _plan_epoch(self):
        """Draw ALL of the epoch's randomness now, in the caller's thread (see class doc)."""
        n = self.num_samples
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        if self.augment:
            k = 2 * self.pad + 1
            oy = self._rng.integers(0, k, size=n)
            ox = self._rng.integers(0, k, size=n)
            flip = self._rng.random(n) < 0.5
            aug = (oy, ox, flip)
        else:
            aug = None
        return order, aug

    def _batches(self, order, aug):
        _, c, h, w = self.images.shape
        p = self.pad
        padded = None
        if aug is not None:
            # One padded buffer per epoch, reused: only its interior is rewritten, the border stays
            # 0, which after normalisation is the mean. (Fresh 2.5 MB buffers per batch cost page
            # faults; see design.md.)
            padded = np.zeros((min(self.batch_size, len(order)), c, h + 2 * p, w + 2 * p), np.float32)
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            pos = order[sl]
            src = pos if self.indices is None else self.indices[pos]
            imgs = self.images[src]
            y = self.labels[src]
            if aug is None:
                x = self.normalize(imgs)
            else:
                b = len(src)
                buf = padded[:b]
                inner = buf[:, :, p:p + h, p:p + w]
                np.multiply(imgs, self._scale, out=inner, dtype=np.float32)
                inner -= self._shift
                oy, ox, flip = aug
                x = _crop_flip_padded(buf, h, w, oy[sl], ox[sl], flip[sl])
            yield x, y

    def __iter__(self):
        order, aug = self._plan_epoch()
        self.epoch += 1
        batches = self._batches(order, aug)
        if not self.prefetch:
            return batches
        return _PrefetchIterator(batches, self.prefetch_depth)

    def __repr__(self) -> str:
        return (f"DataLoader(n={self.num_samples}, batch_size={self.batch_size}, batches={len(self)}, "
                f"shuffle={self.shuffle}, augment={self.augment}, prefetch={self.prefetch})")
