"""The optimisation recipe: how long a run is, SGD, and the learning-rate schedule per iteration."""
from __future__ import annotations

import math
from dataclasses import dataclass

from tinyconv import optim
from tinyconv.train.config import PAPER_ITERATIONS, PAPER_MILESTONES, TrainConfig


@dataclass(frozen=True)
class Plan:
    """How long a run is: ``epochs`` passes over the data, stopping at ``total_iterations``."""

    iterations_per_epoch: int
    epochs: int
    total_iterations: int
    milestones: tuple[int, ...]  # iterations after which the paper schedule divides the lr by 10


def plan_run(config: TrainConfig, iterations_per_epoch: int) -> Plan:
    """The run's length and the paper schedule's milestones, in iterations.

    Without ``config.epochs``: the paper's 64k iterations with drops at 32k and 48k; the number of
    epochs is rounded up and the last one stops at iteration 64k. With ``config.epochs``: that many
    full epochs, drops at 50% and 75% of the iterations (32k/64k and 48k/64k, as in the paper).
    """
    if iterations_per_epoch < 1:
        raise ValueError("the training set yields no batches")
    if config.epochs is None:
        total = PAPER_ITERATIONS
        return Plan(iterations_per_epoch, math.ceil(total / iterations_per_epoch), total, PAPER_MILESTONES)
    total = config.epochs * iterations_per_epoch
    milestones = (round(total * 0.5), round(total * 0.75))
    return Plan(iterations_per_epoch, config.epochs, total, milestones)


def make_optimizer(params, config: TrainConfig):
    """SGD with momentum and weight decay on every parameter (as the paper does)."""
    return optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def make_scheduler(optimizer, config: TrainConfig, plan: Plan):
    """The lr schedule, stepped once per iteration (so milestones count iterations, as in the paper).

    paper: lr/10 at each milestone. cosine: from lr down to 0 over the run. onecycle: up to lr and
    back down over the run.
    """
    if config.schedule == "paper":
        return optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(plan.milestones), gamma=0.1)
    if config.schedule == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=plan.total_iterations)
    if config.schedule == "onecycle":
        return optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=plan.total_iterations)
    raise ValueError(f"unknown schedule {config.schedule!r}")
