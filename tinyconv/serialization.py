"""save / load of state dicts and checkpoints as ``.npz`` files, without pickle.

A file is an ordinary NumPy ``.npz`` archive: one ``.npy`` member per array, plus a member
``__tinyconv__`` holding a UTF-8 JSON manifest (as a uint8 array) that records the structure of the
saved object. A flat state dict ``{'conv1.weight': array, ...}`` stores each array under its own key,
so ``np.load(path)['conv1.weight']`` works with plain NumPy; nested containers (an optimizer's
state, a whole checkpoint) store arrays under their key path joined with '/'.

Supported values: numpy arrays and Tensors (saved as arrays), numpy scalars, dicts (str or int
keys, order kept), lists, tuples, str, int, float, bool and None. Everything else is refused: no
pickle is written or read, so loading a file can never run code.

``save`` writes to a temporary file in the target's directory and renames it over the target
(``os.replace``, atomic on POSIX and Windows), so a crash or error mid-write leaves any old file intact.
"""
import json
import os
import secrets
import zipfile

import numpy as np

from tinyconv.backend import is_cupy_array
from tinyconv.tensor import Tensor

MANIFEST = "__tinyconv__"
FORMAT = "tinyconv"
VERSION = 1
SEPARATOR = "/"


class SerializationError(ValueError):
    """A file is missing its manifest, corrupt, or was not written by ``tinyconv.save``."""


# ---- encoding: object tree -> (JSON node, named arrays) ----

def _encode(value, path, arrays):
    """The JSON node for ``value``; arrays go into ``arrays`` (name -> ndarray) as a side effect."""
    if isinstance(value, Tensor):
        value = value.data
    if is_cupy_array(value):
        value = value.get()
    if isinstance(value, (np.ndarray, np.generic)):
        kind = "array" if isinstance(value, np.ndarray) else "scalar"
        value = np.asarray(value)
        where = SEPARATOR.join(map(str, path)) or "array"
        if value.dtype.hasobject:
            raise TypeError(f"tinyconv.save: {where!r} is an object array, which only pickle can store")
        if where == MANIFEST or where in arrays:
            raise ValueError(f"tinyconv.save: two values would be stored under the name {where!r} "
                             f"(keys containing {SEPARATOR!r} can collide with nested keys)")
        arrays[where] = value
        return {kind: where}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"tinyconv.save: dict keys must be str or int, got {key!r} "
                                f"under {SEPARATOR.join(map(str, path)) or 'the top level'}")
            items.append([key, _encode(item, path + (key,), arrays)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        nodes = [_encode(item, path + (i,), arrays) for i, item in enumerate(value)]
        return {"list" if isinstance(value, list) else "tuple": nodes}
    where = SEPARATOR.join(map(str, path)) or "the top level"
    raise TypeError(f"tinyconv.save: cannot store a {type(value).__name__} (at {where}); supported are "
                    "arrays, Tensors, numpy scalars, dict, list, tuple, str, int, float, bool, None")


def _decode(node, arrays):
    """Inverse of ``_encode``; raises KeyError/ValueError/TypeError on a malformed manifest."""
    (kind, body), = node.items()
    if kind == "array":
        return arrays[body]
    if kind == "scalar":
        return arrays[body][()]
    if kind == "value":
        return body
    if kind == "dict":
        return {key: _decode(item, arrays) for key, item in body}
    if kind in ("list", "tuple"):
        items = [_decode(item, arrays) for item in body]
        return items if kind == "list" else tuple(items)
    raise ValueError(f"unknown node kind {kind!r}")


# ---- files ----

def _write_npz(file, manifest, arrays):
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in [(MANIFEST, manifest), *arrays.items()]:
            with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def save(obj, path):
    """Write ``obj`` (a state dict or a nested checkpoint, see the module docs) to ``path``, atomically.

    The file is written exactly at ``path`` (no suffix is added); '.npz' is the customary extension.
    """
    path = os.fspath(path)
    arrays = {}
    tree = _encode(obj, (), arrays)
    text = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree})
    manifest = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    directory, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"tinyconv.save: directory {directory!r} does not exist")
    # A unique name in the same directory (same filesystem, so the rename is atomic); created with
    # open(..., 'xb') so it gets the usual permissions (mkstemp would make it owner-only).
    temp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temp, "xb") as f:
            _write_npz(f, manifest, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    if os.name == "posix":
        # Make the rename itself durable: flush the directory entry too.
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load(path):
    """Read a file written by ``save``; arrays come back as numpy arrays, containers as dict/list/tuple.

    Raises FileNotFoundError for a missing file and SerializationError (naming the file) for one
    that is not a readable tinyconv archive. Pickled content is never loaded.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"tinyconv.load: no such file: {path!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SerializationError(f"tinyconv.load: {path!r} is not a tinyconv file "
                                 f"(not a readable .npz archive: {e})") from e
    if isinstance(archive, np.ndarray):
        raise SerializationError(f"tinyconv.load: {path!r} is a single .npy array, not a tinyconv file")
    with archive:
        if MANIFEST not in archive.files:
            raise SerializationError(f"tinyconv.load: {path!r} is an .npz archive without a tinyconv "
                                     f"manifest (not written by tinyconv.save)")
        try:
            header = json.loads(archive[MANIFEST].tobytes().decode("utf-8"))
            if header.get("format") != FORMAT:
                raise ValueError(f"format is {header.get('format')!r}")
            if header.get("version") != VERSION:
                raise ValueError(f"format version {header.get('version')!r} is not supported "
                                 f"(this tinyconv reads version {VERSION})")
            arrays = {name: archive[name] for name in archive.files if name != MANIFEST}
            return _decode(header["tree"], arrays)
        except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as e:
            raise SerializationError(f"tinyconv.load: {path!r} is corrupt or not a tinyconv file: "
                                     f"{type(e).__name__}: {e}") from e
