"""The training loop: epochs of SGD steps, evaluation, per-epoch checkpoints and metrics, resume, Ctrl-C."""
from __future__ import annotations

import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import tinyconv
import tinyconv.functional as F
from tinyconv.train import metrics
from tinyconv.train.checkpoint import (FILENAME, check_compatible, load_checkpoint, make_checkpoint,
                                       restore_rng, save_checkpoint)

CSV_NAME, PLOT_NAME, SUMMARY_NAME = "metrics.csv", "curves.png", "summary.json"
# test1k_*: rows 0-999 of the test set. In the shared CIFAR-10 copy they are the exact images and
# rows 1000-9999 are JPEG-decoded (see the data README), so rows 0-999 give the headline error.
HEADLINE_ROWS = 1000


def evaluate(model, loader) -> tuple[np.ndarray, np.ndarray]:
    """Score ``model`` on every batch of ``loader``, in ``eval()`` mode and without a graph.

    Returns ``(losses, correct)``: float64 (N,) cross-entropy per image and bool (N,) whether the
    top class is the label, in the loader's order. The model's train/eval mode is restored after.
    """
    was_training = model.training
    device = model_device(model)
    model.eval()
    losses, correct = [], []
    try:
        with tinyconv.no_grad():
            for x, y in loader:
                logits = model(tinyconv.tensor(x, device=device))
                losses.append(F.cross_entropy(logits, y, reduction="none").numpy().astype(np.float64))
                correct.append(logits.numpy().argmax(axis=1) == y)
    finally:
        model.train(was_training)
    if not losses:
        return np.zeros(0), np.zeros(0, dtype=bool)
    return np.concatenate(losses), np.concatenate(correct)


def model_device(model):
    """Where ``model``'s parameters live (the CPU for a model without any)."""
    for param in model.parameters():
        return param.device
    return tinyconv.device("cpu")


def _loss_and_error(losses, correct) -> tuple[float, float]:
    """Mean loss and error in percent."""
    return float(losses.mean()), float(100.0 * (1.0 - correct.mean()))


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` ended with: ``status`` is "complete" or "interrupted" (Ctrl-C)."""

    status: str
    epoch: int
    iteration: int
    history: list
    summary: dict


class Trainer:
    """Trains ``model`` for ``plan`` with checkpoints every epoch in ``config.out``.

    Parameters
    ----------
    model, optimizer, scheduler : a tinyconv Module, its optimizer and an lr scheduler stepped once
        per iteration.
    train_loader : the shuffled training :class:`~tinyconv.data.DataLoader` (its RNG is checkpointed).
    plan : :class:`~tinyconv.train.recipe.Plan` (epochs, total iterations).
    config : :class:`~tinyconv.train.config.TrainConfig` (out dir, eval cadence, progress bar).
    model_name : recorded in the checkpoint and checked on resume.
    test_loader, val_loader : unshuffled loaders scored after an epoch (val_loader may be None).
    data_fingerprint : an int identifying the training data, checked on resume.
    on_iteration : optional ``callback(trainer)`` after every optimizer step (progress hooks, tests).
    """

    def __init__(self, model, optimizer, scheduler, train_loader, plan, config, *, model_name,
                 test_loader, val_loader=None, data_fingerprint=0, on_iteration=None):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.plan, self.config = train_loader, plan, config
        self.model_name = model_name
        self.device = model_device(model)
        self.test_loader, self.val_loader = test_loader, val_loader
        self.data_fingerprint = data_fingerprint
        self.on_iteration = on_iteration
        self.out = Path(config.out)
        self.epoch = 0  # epochs completed
        self.iteration = 0  # optimizer steps taken
        self.history: list[dict] = []
        self.wall_time = 0.0  # seconds spent in earlier sessions of this run (resume)

    @property
    def checkpoint_path(self) -> Path:
        return self.out / FILENAME

    # ---- checkpoints -------------------------------------------------------------------------------
    def state(self, wall_time: float) -> dict:
        """A checkpoint (dict of copies) of the run as it is now."""
        return make_checkpoint(model_name=self.model_name, model=self.model, optimizer=self.optimizer,
                               scheduler=self.scheduler, loader=self.train_loader, epoch=self.epoch,
                               iteration=self.iteration, wall_time=wall_time, history=self.history,
                               config=self.config, data_fingerprint=self.data_fingerprint)

    def resume(self) -> None:
        """Load ``out/checkpoint.npz`` after checking it belongs to this run; continue from it."""
        path = self.checkpoint_path
        ckpt = load_checkpoint(path)
        check_compatible(ckpt, path=path, model_name=self.model_name, model=self.model,
                         config=self.config, data_fingerprint=self.data_fingerprint)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        restore_rng(ckpt["rng"], self.train_loader)
        self.epoch, self.iteration = int(ckpt["epoch"]), int(ckpt["iteration"])
        self.wall_time = float(ckpt["wall_time"])
        self.history = list(ckpt["history"])

    # ---- the loop ----------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.epoch >= self.plan.epochs or self.iteration >= self.plan.total_iterations

    def fit(self) -> FitResult:
        """Train until the plan is done; checkpoint, log and plot after every epoch.

        Ctrl-C (KeyboardInterrupt) at any point writes the state after the last completed epoch
        (the start, if none is) to the checkpoint and returns with ``status="interrupted"``.
        Anything else that goes wrong propagates; the checkpoint on disk is the last epoch's.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        # The last consistent state, kept in memory so Ctrl-C in mid-epoch can write it.
        last = self.state(self.wall_time)
        status = "complete"
        try:
            if not self.checkpoint_path.exists():
                save_checkpoint(last, self.checkpoint_path)
            self._write_logs(self.history)
            while not self.finished:
                row = self._train_epoch()
                self.epoch += 1
                if self.epoch % self.config.eval_every == 0 or self.finished:
                    self._score(row)
                row["wall_time_s"] = self.wall_time + time.perf_counter() - start
                self.history.append(row)
                last = self.state(row["wall_time_s"])
                save_checkpoint(last, self.checkpoint_path)
                self._write_logs(self.history)
                self._log_epoch(row)
        except KeyboardInterrupt:
            status = "interrupted"
            save_checkpoint(last, self.checkpoint_path)
            self._write_logs(last["history"])
        history = last["history"]
        summary = self._summary(status, last, history)
        metrics.write_summary(summary, self.out / SUMMARY_NAME)
        if status == "interrupted":
            message(f"\nInterrupted. Saved the state after epoch {last['epoch']} (iteration "
                     f"{last['iteration']}) to {self.checkpoint_path}.\n"
                     f"Continue with the same command plus --resume, e.g.:\n  {summary['resume_command']}")
        return FitResult(status, last["epoch"], last["iteration"], history, summary)

    def _train_epoch(self) -> dict:
        """One pass over the training data (cut short at the plan's last iteration); the epoch's row."""
        cfg, plan = self.config, self.plan
        n_batches = min(len(self.train_loader), plan.total_iterations - self.iteration)
        self.model.train()
        seen, loss_sum, correct, lr = 0, 0.0, 0, None
        bar = tqdm(total=n_batches, desc=f"epoch {self.epoch + 1}/{plan.epochs}", unit="it",
                   leave=False, disable=None if cfg.progress else True, dynamic_ncols=True, file=sys.stderr)
        t0 = time.perf_counter()
        batches = iter(self.train_loader)
        try:
            # zip asks range first, so no batch past the last one is drawn from the loader.
            for _, (x, y) in zip(range(n_batches), batches):
                lr = self.scheduler.get_last_lr()[0]
                logits = self.model(tinyconv.tensor(x, device=self.device))
                loss = F.cross_entropy(logits, y)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                self.scheduler.step()
                self.iteration += 1
                value = float(loss.item())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"the training loss is {value} at iteration {self.iteration} (epoch "
                        f"{self.epoch + 1}); the learning rate ({lr:g}) is probably too high. The "
                        f"checkpoint {self.checkpoint_path} still holds epoch {self.epoch}.")
                seen += len(y)
                loss_sum += value * len(y)
                correct += int((logits.numpy().argmax(axis=1) == y).sum())
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}%",
                                img_s=f"{seen / (time.perf_counter() - t0):.0f}", refresh=False)
                if self.on_iteration is not None:
                    self.on_iteration(self)
        finally:
            if hasattr(batches, "close"):  # stop the prefetch thread now, not at garbage collection
                batches.close()
            bar.close()
        elapsed = time.perf_counter() - t0
        row = dict.fromkeys(metrics.COLUMNS)
        row.update(epoch=self.epoch + 1, iteration=self.iteration, lr=lr, train_loss=loss_sum / max(seen, 1),
                   train_error_pct=100.0 * (1 - correct / max(seen, 1)), images_per_s=seen / elapsed,
                   epoch_time_s=elapsed)
        return row

    def _score(self, row: dict) -> None:
        """Evaluate on the test set (and its rows 0-999) and the validation set into ``row``."""
        losses, correct = evaluate(self.model, self.test_loader)
        row["test_loss"], row["test_error_pct"] = _loss_and_error(losses, correct)
        row["test1k_loss"], row["test1k_error_pct"] = _loss_and_error(losses[:HEADLINE_ROWS],
                                                                      correct[:HEADLINE_ROWS])
        if self.val_loader is not None:
            row["val_loss"], row["val_error_pct"] = _loss_and_error(*evaluate(self.model, self.val_loader))

    # ---- reporting ---------------------------------------------------------------------------------
    def _write_logs(self, history) -> None:
        metrics.write_csv(history, self.out / CSV_NAME)
        if history:
            metrics.plot_curves(history, self.out / PLOT_NAME, title=self.model_name)

    def _log_epoch(self, row: dict) -> None:
        remaining_images = (self.plan.total_iterations - self.iteration) * self.config.batch_size
        eta = remaining_images / row["images_per_s"]  # training only: evaluations add a little
        text = (f"epoch {row['epoch']}/{self.plan.epochs}  it {row['iteration']}  lr {row['lr']:.3g}  "
                f"train loss {row['train_loss']:.4f} err {row['train_error_pct']:.2f}%")
        if row["test_error_pct"] is not None:
            text += (f" | test err rows 0-999 {row['test1k_error_pct']:.2f}% "
                     f"(all {row['test_error_pct']:.2f}%)")
        if row["val_error_pct"] is not None:
            text += f" | val err {row['val_error_pct']:.2f}%"
        text += f" | {row['images_per_s']:.0f} img/s  eta {_hms(eta)}"
        message(text)

    def _summary(self, status: str, last: dict, history: list) -> dict:
        scored = [r for r in history if r["test_error_pct"] is not None]

        def final(key):  # from the last epoch whose test error was measured
            return scored[-1][key] if scored else None

        train_time = sum(r["epoch_time_s"] for r in history)
        images = sum(r["images_per_s"] * r["epoch_time_s"] for r in history)
        return {
            "status": status,
            "model": self.model_name,
            "parameters": self.model.num_parameters(),
            "epochs_completed": last["epoch"],
            "epochs_planned": self.plan.epochs,
            "iterations": last["iteration"],
            "iterations_planned": self.plan.total_iterations,
            "lr_milestones": list(self.plan.milestones) if self.config.schedule == "paper" else None,
            "test_error_rows_0_999_pct": final("test1k_error_pct"),
            "test_error_all_rows_pct": final("test_error_pct"),
            "test_note": "rows 0-999 of the CIFAR-10 test set are exact; rows 1000-9999 of the shared "
                         "copy are JPEG-decoded, so the all-rows error is JPEG-affected",
            "test_scored_at_epoch": final("epoch"),
            "val_error_pct": final("val_error_pct"),
            "train_error_pct": history[-1]["train_error_pct"] if history else None,
            "train_images_per_s": images / train_time if train_time else None,
            "wall_time_s": last["wall_time"],
            "checkpoint": str(self.checkpoint_path),
            "resume_command": _resume_command(self.config),
            "config": self.config.to_dict(),
            "tinyconv_version": tinyconv.__version__,
        }


def _resume_command(config) -> str:
    """The CLI line that continues this run."""
    c = config.to_dict()
    parts = ["python -m tinyconv.train", "--resume"]
    for key in ("model", "epochs", "batch_size", "lr", "momentum", "weight_decay", "schedule", "seed",
                "val_split", "subset", "test_subset", "data", "out"):
        if c[key] is not None:
            parts.append(f"--{key.replace('_', '-')} {shlex.quote(str(c[key]))}")
    if not c["augment"]:
        parts.append("--no-augment")
    return " ".join(parts)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def message(text: str) -> None:
    """Print a line without breaking a live progress bar."""
    tqdm.write(text, file=sys.stderr)
