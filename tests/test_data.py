"""Tests for tinyconv.data: CIFAR-10 parsing (real files when TINYCONV_DATA is set), the restricted
unpickler, download/extract with a local fake archive, and the DataLoader."""
import gc
import hashlib
import io
import os
import pickle
import tarfile
import threading
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from tinyconv.data import (
    BASE_FOLDER,
    CIFAR10,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DataLoader,
    channel_stats,
    crop_flip,
    download_and_extract,
    load_batch,
    pixel_mean,
    random_crop_flip,
    resolve_data_dir,
    safe_extract,
    train_val_split,
)
from tinyconv.data import cifar as cifar_mod

# --------------------------------------------------------------------------------------------------
# Real data (skipped with a reason when TINYCONV_DATA is unset or does not hold the batches)
# --------------------------------------------------------------------------------------------------
_ENV = os.environ.get("TINYCONV_DATA", "")
if not _ENV:
    _SKIP_REASON = "TINYCONV_DATA is not set (it should name the folder containing cifar-10-batches-py/)"
elif not (Path(_ENV) / BASE_FOLDER / "data_batch_1").is_file():
    _SKIP_REASON = f"TINYCONV_DATA={_ENV!r} has no {BASE_FOLDER}/data_batch_1"
else:
    _SKIP_REASON = ""
needs_data = pytest.mark.skipif(bool(_SKIP_REASON), reason=_SKIP_REASON or "data present")


@pytest.fixture(scope="module")
def real_train():
    return CIFAR10(train=True)


@pytest.fixture(scope="module")
def real_test():
    return CIFAR10(train=False)


@needs_data
def test_real_train_shapes_and_spot_values(real_train):
    ds = real_train
    assert len(ds) == 50000
    assert ds.data.shape == (50000, 3, 32, 32) and ds.data.dtype == np.uint8
    assert ds.targets.shape == (50000,) and ds.targets.dtype == np.int64
    assert ds.classes == ["airplane", "automobile", "bird", "cat", "deer",
                          "dog", "frog", "horse", "ship", "truck"]
    first = ds.data[0].reshape(-1)  # R plane first, row-major
    assert first[:5].tolist() == [59, 43, 50, 68, 98]
    assert first[-3:].tolist() == [140, 84, 72]
    img, label = ds[0]
    assert img.shape == (3, 32, 32) and img.dtype == np.uint8 and isinstance(label, int)
    assert np.bincount(ds.targets, minlength=10).tolist() == [5000] * 10
    # data_batch_1 class counts from the data README
    assert np.bincount(ds.targets[:10000], minlength=10).tolist() == [
        1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]


@needs_data
def test_real_test_split(real_test):
    ds = real_test
    assert len(ds) == 10000 and ds.data.shape == (10000, 3, 32, 32)
    assert np.bincount(ds.targets, minlength=10).tolist() == [1000] * 10


@needs_data
def test_real_channel_stats_match_constants(real_train):
    mean, std = channel_stats(real_train.data)
    np.testing.assert_allclose(mean, CIFAR10_MEAN, atol=1e-7)
    np.testing.assert_allclose(std, CIFAR10_STD, atol=1e-7)


@needs_data
def test_real_both_pickle_encodings_agree():
    path = Path(_ENV) / BASE_FOLDER / "data_batch_1"
    d1, l1 = load_batch(path, encoding="bytes")
    d2, l2 = load_batch(path, encoding="latin1")
    assert np.array_equal(d1, d2) and np.array_equal(l1, l2)


@needs_data
def test_real_loader_first_batch_is_normalised(real_train):
    loader = DataLoader(real_train, batch_size=512, shuffle=True, augment=True,
                        mean=CIFAR10_MEAN, std=CIFAR10_STD, seed=0)
    x, y = next(iter(loader))
    assert x.shape == (512, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.all(np.abs(x.mean(axis=(0, 2, 3))) < 0.15)
    assert np.all(np.abs(x.std(axis=(0, 2, 3)) - 1) < 0.15)


# --------------------------------------------------------------------------------------------------
# Fake CIFAR folders and archives
# --------------------------------------------------------------------------------------------------
ROWS = 4  # images per fake batch


class TinyCIFAR(CIFAR10):
    rows_per_batch = ROWS


def _fake_batch(seed, rows=ROWS):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"fake batch",
        b"labels": [int(v) for v in rng.integers(0, 10, rows)],
        b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
        b"filenames": [b"f%d.png" % i for i in range(rows)],
    }


def _meta():
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
             b"dog", b"frog", b"horse", b"ship", b"truck"]
    return {b"num_cases_per_batch": ROWS, b"label_names": names, b"num_vis": 3072}


def _write_pickle(path, obj):
    # Protocol 4: numpy 2 names numpy._core.multiarray._reconstruct (the real files use the
    # numpy.core spelling), so both spellings get exercised.
    Path(path).write_bytes(pickle.dumps(obj, protocol=4))


def make_fake_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        _write_pickle(folder / f"data_batch_{i}", _fake_batch(i))
    _write_pickle(folder / "test_batch", _fake_batch(99))
    _write_pickle(folder / "batches.meta", _meta())
    return folder


def make_fake_archive(tmp_path: Path, extra=None) -> Path:
    src = make_fake_folder(tmp_path / "src" / BASE_FOLDER)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=BASE_FOLDER)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_fake_folder_loads(tmp_path):
    make_fake_folder(tmp_path / BASE_FOLDER)
    ds = TinyCIFAR(tmp_path)
    assert ds.data.shape == (5 * ROWS, 3, 32, 32) and ds.targets.shape == (5 * ROWS,)
    b1 = _fake_batch(1)
    assert np.array_equal(ds.data[:ROWS].reshape(ROWS, -1), b1[b"data"])
    assert ds.targets[:ROWS].tolist() == b1[b"labels"]
    assert ds.classes[0] == "airplane"
    test = TinyCIFAR(tmp_path, train=False)
    assert len(test) == ROWS
    # pointing at the batches folder itself works too
    assert len(TinyCIFAR(tmp_path / BASE_FOLDER)) == 5 * ROWS


def test_latin1_keys_accepted(tmp_path):
    # A pickle written with str keys (what encoding='latin1' would give) loads the same way.
    batch = {k.decode(): v for k, v in _fake_batch(3).items()}
    _write_pickle(tmp_path / "b", batch)
    data, labels = load_batch(tmp_path / "b", rows=ROWS)
    assert np.array_equal(data, batch["data"]) and labels.tolist() == batch["labels"]


# --------------------------------------------------------------------------------------------------
# Security and corruption
# --------------------------------------------------------------------------------------------------
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "MARKER"
    folder = make_fake_folder(tmp_path / BASE_FOLDER)
    batch = _fake_batch(1)
    batch[b"data"] = _Evil(marker)
    # protocol 4: with protocol 2 Python 3 pickles bytes via _codecs.encode, refused even earlier
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(pickle.UnpicklingError) as ei:
        TinyCIFAR(tmp_path)
    msg = str(ei.value)
    assert "data_batch_1" in msg and "system" in msg
    assert not marker.exists()
    # a bare evil top-level object as well, in every protocol
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        (folder / "data_batch_1").write_bytes(pickle.dumps(_Evil(marker), protocol=proto))
        with pytest.raises(pickle.UnpicklingError, match="refused to load global '(posix|os).system'"):
            load_batch(folder / "data_batch_1", rows=ROWS)
    assert not marker.exists()


def test_other_globals_and_object_arrays_refused(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({"data": eval}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="(builtins|__builtin__).eval"):
        load_batch(p)
    batch = _fake_batch(1)
    batch[b"data"] = np.array([1, "x"], dtype=object)
    p.write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(pickle.UnpicklingError, match="object"):
        load_batch(p, rows=ROWS)


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    folder = make_fake_folder(tmp_path / BASE_FOLDER)
    path = folder / "data_batch_3"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises((ValueError, pickle.UnpicklingError), match="data_batch_3") as ei:
        TinyCIFAR(tmp_path)
    assert "truncated" in str(ei.value) or "corrupt" in str(ei.value)
    path.write_bytes(b"\x00garbage that is not a pickle at all" * 10)
    with pytest.raises((ValueError, pickle.UnpicklingError), match="data_batch_3"):
        TinyCIFAR(tmp_path)
    path.write_bytes(b"")
    with pytest.raises((ValueError, pickle.UnpicklingError), match="data_batch_3"):
        TinyCIFAR(tmp_path)


@pytest.mark.parametrize("field, value, pattern", [
    (b"data", np.zeros((ROWS, 3071), np.uint8), r"uint8 of shape \(4, 3072\).*\(4, 3071\)"),
    (b"data", np.zeros((ROWS, 3072), np.float32), "float32"),
    (b"labels", [0] * (ROWS - 1), "expected 4 labels"),
    (b"labels", [0, 1, 2, 10], r"0\.\.9"),
])
def test_invalid_batch_contents(tmp_path, field, value, pattern):
    batch = _fake_batch(1)
    batch[field] = value
    _write_pickle(tmp_path / "data_batch_1", batch)
    with pytest.raises(ValueError, match=pattern) as ei:
        load_batch(tmp_path / "data_batch_1", rows=ROWS)
    assert "data_batch_1" in str(ei.value)


# --------------------------------------------------------------------------------------------------
# Locating the data; missing files
# --------------------------------------------------------------------------------------------------
def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCONV_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.setenv("TINYCONV_DATA", "")
    assert resolve_data_dir() == tmp_path / "xdg" / "tinyconv"
    monkeypatch.delenv("TINYCONV_DATA")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "tinyconv"


def test_missing_files_message_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCONV_DATA", str(tmp_path / "nowhere"))
    expected = str((tmp_path / "nowhere" / BASE_FOLDER).resolve())
    with pytest.raises(FileNotFoundError) as ei:
        CIFAR10()
    msg = str(ei.value)
    assert expected in msg and "--data" in msg and "TINYCONV_DATA" in msg
    assert "data_batch_1" in msg


def test_download_failure_offline_says_where(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(cifar_mod.urllib.request, "urlopen", offline)
    root = tmp_path / "root"
    with pytest.raises(FileNotFoundError) as ei:
        TinyCIFAR(root, download=True, progress=False)
    msg = str(ei.value)
    assert str((root / BASE_FOLDER).resolve()) in msg and "TINYCONV_DATA" in msg
    assert "no network" in msg
    assert not (root / BASE_FOLDER).exists()
    assert [p.name for p in root.iterdir()] == []  # the partial download was removed


# --------------------------------------------------------------------------------------------------
# Download with a local fake archive
# --------------------------------------------------------------------------------------------------
def test_download_from_local_archive(tmp_path):
    archive = make_fake_archive(tmp_path)
    root = tmp_path / "root"
    ds = TinyCIFAR(root, download=True, url=archive.as_uri(), md5=_md5(archive), progress=True)
    assert ds.data.shape == (5 * ROWS, 3, 32, 32)
    assert np.array_equal(ds.data[:ROWS].reshape(ROWS, -1), _fake_batch(1)[b"data"])
    # only the final folder is left: no temporary archive or extraction dir
    assert sorted(p.name for p in root.iterdir()) == [BASE_FOLDER]
    # second time: files present, no download attempted (a bogus URL would fail)
    ds2 = TinyCIFAR(root, download=True, url="file:///nonexistent/x.tar.gz", progress=False)
    assert np.array_equal(ds2.data, ds.data)


def test_download_fills_in_partially_present_folder(tmp_path):
    archive = make_fake_archive(tmp_path)
    root = tmp_path / "root"
    (root / BASE_FOLDER).mkdir(parents=True)
    _write_pickle(root / BASE_FOLDER / "batches.meta", _meta())
    ds = TinyCIFAR(root, train=False, download=True, url=archive.as_uri(), md5=_md5(archive),
                   progress=False)
    assert len(ds) == ROWS and (root / BASE_FOLDER / "data_batch_5").is_file()


def test_md5_mismatch_refuses_to_extract(tmp_path):
    archive = make_fake_archive(tmp_path)
    root = tmp_path / "root"
    with pytest.raises(ValueError, match="md5 mismatch") as ei:
        TinyCIFAR(root, download=True, url=archive.as_uri(), md5="0" * 32, progress=False)
    assert _md5(archive) in str(ei.value)
    assert not (root / BASE_FOLDER).exists()
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/tinyconv_evil_abs.txt",
                                  f"{BASE_FOLDER}/../../evil.txt"])
def test_unsafe_archive_members_rejected(tmp_path, name):
    archive = make_fake_archive(tmp_path, extra={name: b"pwned"})
    root = tmp_path / "root"
    with pytest.raises(ValueError, match="refusing"):
        download_and_extract(root, archive.as_uri(), _md5(archive), progress=False)
    assert not (root / BASE_FOLDER).exists()
    assert not (tmp_path / "evil.txt").exists() and not (root.parent / "evil.txt").exists()
    assert not Path("/tmp/tinyconv_evil_abs.txt").exists()


def test_symlink_members_rejected(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"{BASE_FOLDER}/data_batch_1")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="not a regular file"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / BASE_FOLDER / "data_batch_1").exists()


# --------------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------------
def _coded_images(n):
    """uint8 (n, 3, 32, 32): channel 0 = row + 1, channel 1 = column + 1, channel 2 = image index.

    With mean=0 and std=1/255 the loader's output equals these values, and the zero padding is
    recognisable (0 is not a valid row/column code).
    """
    assert n <= 256
    imgs = np.empty((n, 3, 32, 32), np.uint8)
    imgs[:, 0] = (np.arange(32) + 1)[None, :, None]
    imgs[:, 1] = (np.arange(32) + 1)[None, None, :]
    imgs[:, 2] = np.arange(n, dtype=np.uint8)[:, None, None]
    return imgs


IDENTITY = dict(mean=0.0, std=1 / 255)


def _offsets_and_flip(x):
    """Recover (oy, ox, flipped) of each augmented coded image from its row/column codes."""
    rows, cols = x[:, 0], x[:, 1]
    oy, ox, fl = [], [], []
    for r, c in zip(rows, cols):
        # centre pixel (16, 16) always comes from inside the image: |shift| <= 4
        oy.append(int(round(r[16, 16])) - 1 - 16 + 4)
        row = c[16]
        flipped = row[17] < row[16]
        fl.append(flipped)
        # unflipped: output col j holds column j + ox - 4; flipped: column 31 - j + ox - 4
        j = 31 - 16 if flipped else 16
        ox.append(int(round(row[16])) - 1 - j + 4)
    return np.array(oy), np.array(ox), np.array(fl)


def _epoch(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def test_loader_shapes_lengths_and_normalisation():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 10)
    for drop_last, nb, last in ((False, 3, 2), (True, 2, 4)):
        loader = DataLoader(imgs, labels, batch_size=4, drop_last=drop_last,
                            mean=CIFAR10_MEAN, std=CIFAR10_STD)
        assert len(loader) == nb
        batches = list(loader)
        assert len(batches) == nb and batches[-1][0].shape == (last, 3, 32, 32)
        for x, y in batches:
            assert x.dtype == np.float32 and y.dtype == np.int64 and x.flags.c_contiguous
    x, y = next(iter(DataLoader(imgs, labels, batch_size=10, mean=CIFAR10_MEAN, std=CIFAR10_STD)))
    ref = (imgs / 255.0 - np.reshape(CIFAR10_MEAN, (3, 1, 1))) / np.reshape(CIFAR10_STD, (3, 1, 1))
    np.testing.assert_allclose(x, ref, rtol=1e-5, atol=1e-5)
    assert np.array_equal(y, labels)
    # the paper's per-pixel mean, no std
    pm = pixel_mean(imgs)
    assert pm.shape == (3, 32, 32)
    x, _ = next(iter(DataLoader(imgs, labels, batch_size=10, mean=pm)))
    np.testing.assert_allclose(x, imgs / 255.0 - pm, atol=1e-6)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        DataLoader(imgs, labels, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="uint8"):
        DataLoader(imgs.astype(np.float32), labels)
    with pytest.raises(ValueError, match="labels"):
        DataLoader(imgs, labels[:5])


def test_channel_stats_small():
    imgs = np.random.default_rng(1).integers(0, 256, (7, 3, 5, 5), dtype=np.uint8)
    mean, std = channel_stats(imgs, chunk=3)
    np.testing.assert_allclose(mean, imgs.mean(axis=(0, 2, 3)) / 255, rtol=1e-12)
    np.testing.assert_allclose(std, imgs.std(axis=(0, 2, 3)) / 255, rtol=1e-12)


def test_crop_flip_against_reference():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 32, 32)).astype(np.float32)
    oy = np.array([0, 8, 4, 1, 7, 4])
    ox = np.array([0, 8, 4, 5, 2, 4])
    flip = np.array([False, True, False, True, False, True])
    out = crop_flip(x, oy, ox, flip, pad=4)
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    for i in range(6):  # per-image loop only in the test's reference
        ref = padded[i, :, oy[i]:oy[i] + 32, ox[i]:ox[i] + 32]
        if flip[i]:
            ref = ref[:, :, ::-1]
        assert np.array_equal(out[i], ref), i
    assert np.array_equal(out[2], x[2])  # offset (4, 4), no flip: identity
    assert np.array_equal(out[5], x[5, :, :, ::-1])  # offset (4, 4), flip: a true mirror
    assert np.all(out[0, :, :4, :] == 0) and np.all(out[0, :, :, :4] == 0)
    with pytest.raises(ValueError, match=r"\[0, 8\]"):
        crop_flip(x, oy + 1, ox, flip)


def test_flip_really_flips_crafted_image():
    img = np.zeros((1, 1, 4, 4), np.float32)
    img[0, 0, :, 0] = 1.0  # left column lit
    out = crop_flip(img, [0], [0], [True], pad=0)
    assert out[0, 0, :, -1].tolist() == [1, 1, 1, 1] and out[0, 0, :, :-1].sum() == 0
    out, oy, ox, fl = random_crop_flip(np.zeros((100, 3, 8, 8), np.float32),
                                       np.random.default_rng(0), pad=2)
    assert out.shape == (100, 3, 8, 8) and oy.min() >= 0 and oy.max() <= 4 and 20 < fl.sum() < 80


@pytest.mark.parametrize("prefetch", [True, False])
def test_augment_offsets_flips_and_label_alignment(prefetch):
    n = 200
    imgs = _coded_images(n)
    labels = (np.arange(n) * 7) % 10
    loader = DataLoader(imgs, labels, batch_size=64, shuffle=True, augment=True, seed=3,
                        prefetch=prefetch, **IDENTITY)
    seen_idx, oys, oxs, fls = [], [], [], []
    for x, y in loader:
        assert x.shape[1:] == (3, 32, 32) and x.dtype == np.float32 and x.flags.c_contiguous
        idx = np.rint(x[:, 2, 16, 16]).astype(int)  # centre is never padding
        assert np.array_equal(y, labels[idx])  # labels travel with their images
        oy, ox, fl = _offsets_and_flip(x)
        # re-create each output from its recovered parameters: the gather is exactly a crop(+flip)
        assert np.array_equal(x, crop_flip(imgs[idx].astype(np.float32), oy, ox, fl))
        seen_idx.append(idx), oys.append(oy), oxs.append(ox), fls.append(fl)
    idx = np.concatenate(seen_idx)
    assert sorted(idx.tolist()) == list(range(n))  # each image once per epoch
    assert not np.array_equal(idx, np.arange(n))  # and shuffled
    oy, ox, fl = np.concatenate(oys), np.concatenate(oxs), np.concatenate(fls)
    assert oy.min() >= 0 and oy.max() <= 8 and ox.min() >= 0 and ox.max() <= 8
    assert set(oy.tolist()) == set(range(9)) and set(ox.tolist()) == set(range(9))
    assert 60 < fl.sum() < 140


def test_same_seed_same_batches_and_prefetch_matches_sync():
    imgs = _coded_images(100)
    labels = np.arange(100) % 10
    kw = dict(batch_size=32, shuffle=True, augment=True, **IDENTITY)
    a = DataLoader(imgs, labels, seed=5, prefetch=True, **kw)
    b = DataLoader(imgs, labels, seed=5, prefetch=False, **kw)
    c = DataLoader(imgs, labels, seed=6, **kw)
    for _ in range(2):
        ea, eb, ec = _epoch(a), _epoch(b), _epoch(c)
        assert all(np.array_equal(xa, xb) and np.array_equal(ya, yb)
                   for (xa, ya), (xb, yb) in zip(ea, eb))
        assert not all(np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(ea, ec))
    # successive epochs differ
    assert not np.array_equal(_epoch(a)[0][1], _epoch(a)[0][1])


def test_resume_from_state_dict_reproduces_next_epoch():
    imgs = _coded_images(90)
    labels = np.arange(90) % 10
    kw = dict(batch_size=16, shuffle=True, augment=True, **IDENTITY)
    a = DataLoader(imgs, labels, seed=11, **kw)
    _epoch(a)
    state = pickle.loads(pickle.dumps(a.state_dict()))  # survives a checkpoint round trip
    want = _epoch(a)
    b = DataLoader(imgs, labels, seed=999, **kw)
    b.load_state_dict(state)
    assert b.epoch == 1
    got = _epoch(b)
    assert len(got) == len(want)
    assert all(np.array_equal(x1, x2) and np.array_equal(y1, y2)
               for (x1, y1), (x2, y2) in zip(want, got))
    with pytest.raises(ValueError, match="state dict"):
        b.load_state_dict({"nope": 1})


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "tinyconv-prefetch" and t.is_alive()]


def _wait_no_prefetch_threads(timeout=5.0):
    end = time.monotonic() + timeout
    while _prefetch_threads() and time.monotonic() < end:
        time.sleep(0.01)
    return _prefetch_threads()


def test_prefetch_thread_stops_on_break_close_and_consumer_error():
    imgs = _coded_images(256)
    labels = np.arange(256) % 10
    loader = DataLoader(imgs, labels, batch_size=8, shuffle=True, augment=True, prefetch=True)
    before = threading.active_count()
    for i, _ in enumerate(loader):
        if i == 1:
            break  # 32 batches, the worker is blocked on a full queue
    gc.collect()
    assert _wait_no_prefetch_threads() == []
    assert threading.active_count() == before

    it = iter(loader)
    next(it)
    assert it.thread.is_alive()
    it.close()
    assert not it.thread.is_alive()

    with pytest.raises(RuntimeError, match="consumer"):
        for _ in loader:
            raise RuntimeError("consumer failed")
    gc.collect()
    assert _wait_no_prefetch_threads() == []

    it = iter(loader)
    for _ in it:
        pass
    assert not it.thread.is_alive()  # exhausted: joined


def test_worker_exception_reraised_in_consumer():
    imgs = _coded_images(64)
    loader = DataLoader(imgs, np.zeros(64, int), batch_size=8, prefetch=True)
    calls = []
    real = loader.normalize

    def flaky(batch):
        calls.append(1)
        if len(calls) == 3:
            raise ZeroDivisionError("boom in worker")
        return real(batch)

    loader.normalize = flaky
    got = []
    with pytest.raises(ZeroDivisionError, match="boom in worker"):
        for x, y in loader:
            got.append(x)
    assert len(got) == 2
    assert _wait_no_prefetch_threads() == []


def test_dataset_object_indices_and_split(tmp_path):
    make_fake_folder(tmp_path / BASE_FOLDER)
    ds = TinyCIFAR(tmp_path)
    tr, va = train_val_split(len(ds), val_size=5)
    assert tr.tolist() == list(range(15)) and va.tolist() == list(range(15, 20))
    tr2, va2 = train_val_split(50000, val_size=5000)
    assert len(tr2) == 45000 and va2[0] == 45000 and va2[-1] == 49999
    r_tr, r_va = train_val_split(100, val_size=10, seed=0)
    assert len(r_va) == 10 and not np.intersect1d(r_tr, r_va).size and len(r_tr) == 90
    with pytest.raises(ValueError, match="val_size"):
        train_val_split(10, val_size=11)
    loader = DataLoader(ds, batch_size=2, indices=va, **IDENTITY)
    assert len(loader) == 3 and loader.num_samples == 5
    xs, ys = zip(*loader)
    assert np.array_equal(np.concatenate(xs), ds.data[va].astype(np.float32))
    assert np.array_equal(np.concatenate(ys), ds.targets[va])
