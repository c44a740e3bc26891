"""CIFAR-10 in the canonical "python version" layout: locate, download, verify, parse.

Layout on disk (what the official archive unpacks to)::

    <data dir>/cifar-10-batches-py/
        data_batch_1 .. data_batch_5   training images, 10,000 each
        test_batch                     test images, 10,000
        batches.meta                   label names

Each batch is a Python-2 protocol-2 pickle of a dict with ``data`` (uint8 array, shape
(10000, 3072): the R, G and B planes of a 32x32 image, each row-major) and ``labels`` (10000 ints in
0..9). Pickles can run arbitrary code when loaded, so the batches are read with
:class:`RestrictedUnpickler`, which admits only the few globals that numpy array reconstruction needs.

This module is pure numpy; it knows nothing of autograd.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath

import numpy as np

__all__ = [
    "CIFAR10",
    "RestrictedUnpickler",
    "resolve_data_dir",
    "load_batch",
    "safe_extract",
    "download_and_extract",
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "BASE_FOLDER",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
BASE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
ENV_VAR = "TINYCONV_DATA"


# --------------------------------------------------------------------------------------------------
# Where the data lives
# --------------------------------------------------------------------------------------------------
def resolve_data_dir(data: str | os.PathLike | None = None) -> Path:
    """Return the directory that CONTAINS ``cifar-10-batches-py/``.

    Order: the explicit ``data`` argument (e.g. a ``--data DIR`` flag), else the environment
    variable ``TINYCONV_DATA`` (ignored when empty), else a per-user cache directory,
    ``$XDG_CACHE_HOME/tinyconv`` or ``~/.cache/tinyconv``. The directory need not exist yet.
    """
    if data is not None and str(data) != "":
        return Path(data).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    cache = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return cache / "tinyconv"


def _where_to_put_files(folder: Path, names) -> str:
    """The part of every 'files missing' message that says how to fix it."""
    return (
        f"Put the CIFAR-10 python batches ({', '.join(names)}) in {folder.resolve()} "
        f"(that is what {CIFAR10_URL} unpacks to), or point tinyconv at the folder that contains "
        f"'{BASE_FOLDER}/' with --data DIR or the environment variable {ENV_VAR}=DIR."
    )


# --------------------------------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------------------------------
def _numpy_reconstruct():
    # numpy 2 moved numpy.core to numpy._core; importing numpy.core.multiarray now warns, so take
    # the function from wherever this numpy keeps it. Both names in a pickle map to the same one.
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 1.26
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _safe_dtype(*args, **kwargs):
    """``numpy.dtype`` that refuses object dtypes: an object array would unpickle arbitrary items."""
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise pickle.UnpicklingError(f"refused dtype {dt!r}: object arrays are not allowed")
    return dt


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that admits only what CIFAR batches contain.

    Plain containers, bytes, str, ints, bools and None need no globals at all. The only globals
    admitted are the three that rebuild a numpy array: ``numpy.core.multiarray._reconstruct``
    (also spelled ``numpy._core.multiarray._reconstruct``), ``numpy.ndarray`` and ``numpy.dtype``
    (object dtypes refused). ``_codecs.encode`` is NOT admitted: the CIFAR files are Python-2
    pickles whose array bytes are BINSTRING opcodes, so they never need it. Any other global raises
    :class:`pickle.UnpicklingError` naming the file and the global, before anything is called.
    """

    def __init__(self, file, *, filename: str = "<stream>", encoding: str = "bytes"):
        super().__init__(file, encoding=encoding)
        self.filename = filename
        reconstruct = _numpy_reconstruct()
        self._allowed = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): _safe_dtype,
        }

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            hint = ""
            if (module, name) == ("_codecs", "encode"):
                hint = (" (_codecs.encode appears when Python 3 writes bytes with pickle protocol 2; "
                        "the original CIFAR files are Python 2 pickles and never need it)")
            raise pickle.UnpicklingError(
                f"{self.filename}: refused to load global '{module}.{name}'; a CIFAR batch may only "
                f"contain containers, bytes, ints and numpy arrays (numpy.core.multiarray._reconstruct, "
                f"numpy.ndarray, numpy.dtype). The file is not a CIFAR batch or has been tampered with."
                + hint
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"{self.filename}: refused persistent id {pid!r}")


def _str_keys(d: dict, filename) -> dict:
    """Accept both key styles: b'data' (encoding='bytes') and 'data' (encoding='latin1')."""
    out = {}
    for k, v in d.items():
        if isinstance(k, bytes):
            k = k.decode("latin1")
        if not isinstance(k, str):
            raise ValueError(f"{filename}: expected str or bytes dict keys, found {type(k).__name__}")
        out[k] = v
    return out


def _unpickle(path: Path, encoding: str = "bytes") -> dict:
    """Read one CIFAR pickle with :class:`RestrictedUnpickler`; return a dict with str keys.

    Any failure (truncated file, garbage bytes, refused global) becomes an error naming the file.
    """
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, filename=str(path), encoding=encoding).load()
    except pickle.UnpicklingError as e:
        msg = str(e)
        if str(path) not in msg:
            msg = f"{path}: corrupt or truncated pickle ({msg})"
        raise pickle.UnpicklingError(msg) from e
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            OverflowError, MemoryError, UnicodeDecodeError, RecursionError) as e:
        # A truncated pickle ends in EOFError; garbage bytes give all sorts of errors.
        raise ValueError(
            f"{path}: corrupt or truncated CIFAR batch ({type(e).__name__}: {e}); "
            f"delete it and download/copy it again"
        ) from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return _str_keys(obj, path)


def load_batch(path: str | os.PathLike, rows: int = 10000, encoding: str = "bytes"):
    """Load and validate one CIFAR-10 batch file.

    Returns ``(data, labels)``: ``data`` uint8 of shape (rows, 3072) (R, G, B planes, row-major
    32x32) and ``labels`` int64 of shape (rows,), all in 0..9. Raises ``ValueError`` (or
    ``pickle.UnpicklingError``) naming the file when it is truncated, corrupt or not a CIFAR batch.
    """
    path = Path(path)
    d = _unpickle(path, encoding)
    for key in ("data", "labels"):
        if key not in d:
            raise ValueError(f"{path}: missing key '{key}'; found keys {sorted(d)}")
    data, labels = d["data"], d["labels"]
    if not isinstance(data, np.ndarray):
        raise ValueError(f"{path}: 'data' should be a numpy array, found {type(data).__name__}")
    if data.dtype != np.uint8 or data.shape != (rows, 3072):
        raise ValueError(
            f"{path}: 'data' should be uint8 of shape ({rows}, 3072), "
            f"found {data.dtype} of shape {data.shape}"
        )
    if not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError(f"{path}: 'labels' should be a list, found {type(labels).__name__}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{path}: 'labels' should be a list of ints ({e})") from e
    if labels.shape != (rows,):
        raise ValueError(f"{path}: expected {rows} labels, found shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"{path}: labels should be in 0..9, found range {labels.min()}..{labels.max()}"
        )
    return data, labels


def _load_meta(path: Path, encoding: str = "bytes") -> list[str]:
    d = _unpickle(path, encoding)
    names = d.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise ValueError(f"{path}: expected 'label_names' to be a list of 10 names, found {names!r}")
    out = []
    for n in names:
        if isinstance(n, bytes):
            n = n.decode("utf-8")
        if not isinstance(n, str):
            raise ValueError(f"{path}: label names should be strings, found {type(n).__name__}")
        out.append(n)
    return out


# --------------------------------------------------------------------------------------------------
# Download, verify, extract
# --------------------------------------------------------------------------------------------------
def _member_path(name: str) -> PurePosixPath:
    """Validate an archive member name; return it as a relative path, or raise ValueError."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"refusing to extract absolute path {name!r}")
    if ".." in p.parts:
        raise ValueError(f"refusing to extract path with '..': {name!r}")
    return p


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Extract a .tar.gz into ``dest`` refusing anything but plain files and directories.

    Every member is checked before anything is written: absolute names, ``..`` components, links,
    devices and fifos raise ``ValueError``. Files are written by copying their bytes (no
    permissions, owners or times from the archive are applied).
    """
    dest = Path(dest)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            _member_path(m.name)
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"refusing to extract {m.name!r}: not a regular file or directory")
        root = dest.resolve()
        for m in members:
            target = (dest / _member_path(m.name)).resolve()
            if target != root and root not in target.parents:
                raise ValueError(f"refusing to extract {m.name!r}: it lands outside {dest}")
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _fetch(url: str, dest: Path, progress: bool, timeout: float = 60.0) -> str:
    """Stream ``url`` into ``dest`` with a tqdm bar; return the md5 hex digest of what was written."""
    from tqdm.auto import tqdm  # imported lazily: only downloads need it

    h = hashlib.md5(usedforsecurity=False)  # a checksum, not security: FIPS builds allow this
    with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as f:
        length = r.headers.get("Content-Length") if getattr(r, "headers", None) else None
        total = int(length) if length and str(length).isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=os.path.basename(url) or "download", disable=not progress) as bar:
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
    return h.hexdigest()


def download_and_extract(root: str | os.PathLike, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5,
                         progress: bool = True) -> Path:
    """Download the CIFAR-10 archive into ``root`` and unpack ``cifar-10-batches-py/`` there.

    The archive is streamed to a temporary file in ``root``, its md5 is checked BEFORE anything is
    extracted (mismatch: ``ValueError``, nothing extracted, the temporary file removed), then it is
    extracted with :func:`safe_extract` into a temporary directory in ``root`` and renamed into
    place (``os.rename`` within one filesystem is atomic, so a reader never sees half a folder). If
    ``root/cifar-10-batches-py`` already exists, only the files it lacks are moved in. Network and
    I/O errors propagate (``urllib.error.URLError`` is an ``OSError``). Returns the batches folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / BASE_FOLDER
    fd, tmp_archive = tempfile.mkstemp(prefix=".cifar-10-python.", suffix=".tar.gz.part", dir=root)
    os.close(fd)
    tmp_dir = None
    try:
        got = _fetch(url, Path(tmp_archive), progress)
        if got.lower() != md5.lower():
            raise ValueError(
                f"md5 mismatch for {url}: expected {md5}, got {got}; the download is corrupt or not "
                f"the official archive, refusing to extract it. "
                + _where_to_put_files(final, TRAIN_FILES + TEST_FILES + (META_FILE,))
            )
        tmp_dir = tempfile.mkdtemp(prefix=".cifar-10-extract.", dir=root)
        safe_extract(tmp_archive, tmp_dir)
        src = Path(tmp_dir) / BASE_FOLDER
        if not src.is_dir():
            raise ValueError(f"{url}: the archive has no '{BASE_FOLDER}/' folder")
        if not final.exists():
            os.rename(src, final)
        else:
            for f in src.iterdir():
                if not (final / f.name).exists():
                    os.replace(f, final / f.name)
    finally:
        if os.path.exists(tmp_archive):
            os.remove(tmp_archive)
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------
class CIFAR10:
    """CIFAR-10 held in memory as numpy arrays.

    Parameters
    ----------
    root : the folder that CONTAINS ``cifar-10-batches-py/`` (resolved with
        :func:`resolve_data_dir`: argument, else ``$TINYCONV_DATA``, else the user cache). A path
        that is itself the batches folder is accepted too.
    train : True for ``data_batch_1..5`` (50,000 images), False for ``test_batch`` (10,000).
    download : fetch the official archive when files are missing. Offline, or with
        ``download=False``, missing files raise ``FileNotFoundError`` saying where to put them.
    url, md5 : the archive to fetch and its md5 (defaults: the official ones; overridable for tests
        and mirrors).
    progress : show a tqdm bar while downloading.

    Attributes
    ----------
    data : uint8 array, shape (N, 3, 32, 32), NCHW, channels R, G, B.
    targets : int64 array, shape (N,), class indices in 0..9.
    classes : the 10 class names from ``batches.meta``.
    folder : the ``cifar-10-batches-py`` folder read.

    ``ds[i]`` returns ``(image, label)``: a uint8 (3, 32, 32) view and an int.
    """

    url = CIFAR10_URL
    md5 = CIFAR10_MD5
    rows_per_batch = 10000  # images in each batch file; tests with tiny fake batches override it
    train_files = TRAIN_FILES
    test_files = TEST_FILES
    meta_file = META_FILE

    def __init__(self, root=None, train: bool = True, download: bool = False, *,
                 url: str | None = None, md5: str | None = None, progress: bool = True):
        if url is not None:
            self.url = url
        if md5 is not None:
            self.md5 = md5
        self.train = bool(train)
        self.root = resolve_data_dir(root)
        files = self.train_files if self.train else self.test_files
        needed = tuple(files) + (self.meta_file,)
        self.folder = self._find_folder(needed)
        missing = [n for n in needed if not (self.folder / n).is_file()]
        if missing and download:
            try:
                download_and_extract(self.root, self.url, self.md5, progress=progress)
            except OSError as e:  # offline, DNS, HTTP error, disk full...
                raise FileNotFoundError(
                    f"CIFAR-10 is missing ({', '.join(missing)} not in {self.folder.resolve()}) and "
                    f"the download from {self.url} failed ({type(e).__name__}: {e}). "
                    + _where_to_put_files(self.root / BASE_FOLDER, needed)
                ) from e
            self.folder = self.root / BASE_FOLDER
            missing = [n for n in needed if not (self.folder / n).is_file()]
        if missing:
            hint = "" if download else " (pass download=True to fetch it when online)"
            raise FileNotFoundError(
                f"CIFAR-10 files missing: {', '.join(missing)} not found in "
                f"{self.folder.resolve()}{hint}. " + _where_to_put_files(self.folder, needed)
            )

        self.classes = _load_meta(self.folder / self.meta_file)
        n = self.rows_per_batch
        # One preallocated block instead of a concatenate: the train set is 150 MB, don't hold it twice.
        flat = np.empty((n * len(files), 3072), dtype=np.uint8)
        targets = np.empty(n * len(files), dtype=np.int64)
        for i, name in enumerate(files):
            d, lab = load_batch(self.folder / name, rows=n)
            flat[i * n:(i + 1) * n] = d
            targets[i * n:(i + 1) * n] = lab
        # Each row is the R plane, then G, then B, each row-major 32x32: exactly NCHW.
        self.data = flat.reshape(-1, 3, 32, 32)
        self.targets = targets

    def _find_folder(self, needed) -> Path:
        nested = self.root / BASE_FOLDER
        if nested.is_dir() or not self.root.is_dir():
            return nested
        # The user pointed at the batches folder itself: accept it when it holds the files.
        if all((self.root / n).is_file() for n in needed):
            return self.root
        return nested

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return self.data[i], int(self.targets[i])

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"CIFAR10(split={split}, n={len(self)}, folder={str(self.folder)!r})"
