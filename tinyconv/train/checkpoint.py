"""Training checkpoints: everything a run needs to continue exactly, in one atomic, pickle-free file.

A checkpoint is written with :func:`tinyconv.save` (an .npz written to a temporary file and renamed
into place, so a crash or a full disk mid-write leaves the previous checkpoint whole). It holds:

- ``model``, ``optimizer``, ``scheduler``: their ``state_dict()``;
- ``epoch`` (epochs completed), ``iteration`` (optimizer steps taken), ``wall_time`` (seconds);
- ``rng``: the states of the tinyconv generator, numpy's global generator and the training
  loader's generator (the loader draws a whole epoch's shuffle and crops when the epoch starts, so
  its state after an epoch describes the next one exactly);
- ``history``: the per-epoch metrics so far, so the CSV and plot survive a resume;
- ``config``: the run's settings, ``model_name``, ``data_fingerprint``: checked on resume.
"""
from __future__ import annotations

import copy
import os

import numpy as np

import tinyconv
import tinyconv.random
from tinyconv.serialization import SerializationError
from tinyconv.train.config import TRAJECTORY_FIELDS

FORMAT = "tinyconv.train checkpoint"
VERSION = 1
FILENAME = "checkpoint.npz"

_REQUIRED = ("format", "version", "model_name", "model", "optimizer", "scheduler", "epoch", "iteration",
             "wall_time", "rng", "history", "config", "data_fingerprint")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that belongs to another run."""


# --------------------------------------------------------------------------------------------------
# Random state
# --------------------------------------------------------------------------------------------------
def capture_rng(loader) -> dict:
    """The tinyconv, numpy-global and ``loader`` generator states (nested dicts, ints, arrays)."""
    return {"tinyconv": tinyconv.random.get_rng_state(),
            "numpy": np.random.get_state(legacy=False),
            "loader": loader.state_dict()}


def restore_rng(rng: dict, loader) -> None:
    """Inverse of :func:`capture_rng`."""
    tinyconv.random.set_rng_state(rng["tinyconv"])
    np.random.set_state(rng["numpy"])
    loader.load_state_dict(rng["loader"])


# --------------------------------------------------------------------------------------------------
# Writing and reading
# --------------------------------------------------------------------------------------------------
def make_checkpoint(*, model_name, model, optimizer, scheduler, loader, epoch, iteration, wall_time,
                    history, config, data_fingerprint) -> dict:
    """The checkpoint of the current state. Holds copies: later training does not alter it."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_name": model_name,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": copy.deepcopy(scheduler.state_dict()),
        "epoch": int(epoch),
        "iteration": int(iteration),
        "wall_time": float(wall_time),
        "rng": capture_rng(loader),
        "history": copy.deepcopy(history),
        "config": config.to_dict(),
        "data_fingerprint": int(data_fingerprint),
    }


def save_checkpoint(checkpoint: dict, path) -> None:
    """Write ``checkpoint`` to ``path`` atomically (see the module doc)."""
    tinyconv.save(checkpoint, os.fspath(path))


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; ``CheckpointError`` if it is not one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}; run without --resume to start a new run")
    try:
        ckpt = tinyconv.load(path)
    except (SerializationError, OSError) as e:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(e).__name__}: {e}). It is damaged or not a "
            f"tinyconv checkpoint; delete it to start over, or pass another --out") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tinyconv.train checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is incomplete: missing {', '.join(missing)}")
    if int(ckpt["version"]) != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt['version']}; this tinyconv reads "
                              f"version {VERSION}")
    return ckpt


def check_compatible(ckpt: dict, *, path, model_name, model, config, data_fingerprint) -> None:
    """Refuse to resume from a checkpoint of another model, other settings or other data.

    Compares the model name, every parameter/buffer name and shape, the settings that shape the
    weights (:data:`~tinyconv.train.config.TRAJECTORY_FIELDS`) and the training-data fingerprint;
    raises ``CheckpointError`` listing every difference.
    """
    problems = []
    if ckpt["model_name"] != model_name:
        problems.append(f"model: checkpoint has {ckpt['model_name']!r}, this run builds {model_name!r}")
    else:
        saved = ckpt["model"]
        ours = {k: v.shape for k, v in model.state_dict().items()}
        for k in ours.keys() - saved.keys():
            problems.append(f"model state: {k!r} missing from the checkpoint")
        for k in saved.keys() - ours.keys():
            problems.append(f"model state: unexpected {k!r} in the checkpoint")
        for k in ours.keys() & saved.keys():
            if tuple(np.shape(saved[k])) != tuple(ours[k]):
                problems.append(f"model state: {k!r} has shape {np.shape(saved[k])} in the checkpoint, "
                                f"{ours[k]} in the model")
    saved_config = ckpt["config"]
    now = config.to_dict()
    for field in TRAJECTORY_FIELDS:
        if saved_config.get(field) != now[field]:
            flag = "--" + field.replace("_", "-")
            problems.append(f"{flag}: checkpoint has {saved_config.get(field)!r}, this run has {now[field]!r}")
    if int(ckpt["data_fingerprint"]) != int(data_fingerprint):
        problems.append("training data: the images/labels differ from the ones the checkpoint was "
                        "trained on (another --data copy or a changed dataset)")
    if problems:
        raise CheckpointError(
            f"cannot resume from {path}: it belongs to a different run.\n  " + "\n  ".join(sorted(problems))
            + "\nResume with the checkpoint's settings, or start a new run with another --out.")
