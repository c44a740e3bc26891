"""One training run assembled from a :class:`TrainConfig`: data, model, optimizer, schedule, trainer."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import tinyconv.random
from tinyconv import backend
from tinyconv.models import CIFAR_MODELS
from tinyconv.train import splits as splits_mod
from tinyconv.train.checkpoint import FILENAME, CheckpointError
from tinyconv.train.config import ConfigError, TrainConfig
from tinyconv.train.loop import FitResult, Trainer, message
from tinyconv.train.recipe import make_optimizer, make_scheduler, plan_run


def train(config: TrainConfig, *, model_fn=None, arrays=None, on_iteration=None) -> FitResult:
    """Train as ``config`` says; returns the :class:`~tinyconv.train.loop.FitResult`.

    model_fn : a callable returning a fresh Module; default ``CIFAR_MODELS[config.model]``. It is
        called after the generators are seeded, so the initial weights depend on ``config.seed`` only.
        With a custom ``model_fn``, ``config.model`` is just the name recorded in the checkpoint.
    arrays : :class:`~tinyconv.train.splits.Arrays` to train and test on; default CIFAR-10 from
        ``config.data`` (else ``$TINYCONV_DATA``).
    on_iteration : ``callback(trainer)`` after every optimizer step.

    Without ``config.resume`` an existing checkpoint in ``config.out`` is an error (a finished or
    long run is never overwritten by accident); with it, the run continues from that checkpoint.
    """
    backend.retain_freed_memory()
    if model_fn is None:
        if config.model not in CIFAR_MODELS:
            raise ConfigError(f"unknown model {config.model!r}; choose one of {', '.join(CIFAR_MODELS)}")
        model_fn = CIFAR_MODELS[config.model]
    checkpoint_path = Path(config.out) / FILENAME
    try:
        device = tinyconv.device(config.device)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(str(exc)) from exc
    if config.resume and not checkpoint_path.is_file():  # say so before spending time on the data
        raise CheckpointError(f"no checkpoint at {checkpoint_path}; run without --resume to start a new run")
    if arrays is None:
        arrays = splits_mod.load_cifar10(config.data)
    splits = splits_mod.make_splits(arrays, config)

    tinyconv.random.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = model_fn().to(device)
    loader = splits_mod.train_loader(splits, config)
    plan = plan_run(config, len(loader))
    optimizer = make_optimizer(model.parameters(), config)
    scheduler = make_scheduler(optimizer, config, plan)
    val_loader = None
    if len(splits.val):
        val_loader = splits_mod.eval_loader(arrays.train_images, arrays.train_labels, splits.val, config)
    trainer = Trainer(model, optimizer, scheduler, loader, plan, config, model_name=config.model,
                      test_loader=splits_mod.eval_loader(arrays.test_images, arrays.test_labels,
                                                         splits.test, config),
                      val_loader=val_loader, data_fingerprint=splits.fingerprint(),
                      on_iteration=on_iteration)
    if config.resume:
        trainer.resume()
    elif trainer.checkpoint_path.exists():
        raise CheckpointError(f"{trainer.checkpoint_path} already exists: pass --resume to continue that "
                              f"run, or choose another --out (or delete it) to start a new one")
    message(_describe(config, model, splits, plan, trainer))
    return trainer.fit()


def _describe(config, model, splits, plan, trainer) -> str:
    """One paragraph saying what this run does."""
    schedule = {"paper": f"lr {config.lr:g}, /10 at iterations {', '.join(map(str, plan.milestones))}",
                "cosine": f"lr {config.lr:g} cosine to 0",
                "onecycle": f"one-cycle up to lr {config.lr:g}"}[config.schedule]
    text = (f"{config.model}: {model.num_parameters():,} parameters | {len(splits.train)} train, "
            f"{len(splits.val)} val, {len(splits.test)} test images | batch {config.batch_size}, "
            f"{plan.iterations_per_epoch} it/epoch, {plan.epochs} epochs = {plan.total_iterations} it | "
            f"SGD momentum {config.momentum:g}, wd {config.weight_decay:g}, {schedule} | out {config.out}")
    if config.resume:
        text += f"\nresuming after epoch {trainer.epoch} (iteration {trainer.iteration})"
    return text
