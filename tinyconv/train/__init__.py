"""Training: the fit loop, evaluation, per-epoch metrics and plots, atomic checkpoints, exact resume.

``python -m tinyconv.train --help`` is the command line; from Python::

    from tinyconv.train import TrainConfig, train
    result = train(TrainConfig(model="resnet20", epochs=10, out="runs/r20"))
"""
from tinyconv.train.checkpoint import CheckpointError, load_checkpoint
from tinyconv.train.config import ConfigError, TrainConfig
from tinyconv.train.experiment import train
from tinyconv.train.loop import FitResult, Trainer, evaluate
from tinyconv.train.metrics import plot_comparison, plot_curves, read_csv
from tinyconv.train.recipe import Plan, plan_run
from tinyconv.train.splits import Arrays

__all__ = ["Arrays", "CheckpointError", "ConfigError", "FitResult", "Plan", "TrainConfig", "Trainer",
           "evaluate", "load_checkpoint", "plan_run", "plot_comparison", "plot_curves", "read_csv", "train"]
