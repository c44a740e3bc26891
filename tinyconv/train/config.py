"""The settings of one training run, as a dataclass the CLI fills and the checkpoint records."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# The paper's recipe (He et al. 2015, sec. 4.2): lr 0.1, divided by 10 at 32k and 48k iterations,
# stopped at 64k iterations, batch 128.
PAPER_ITERATIONS = 64_000
PAPER_MILESTONES = (32_000, 48_000)
SCHEDULES = ("paper", "cosine", "onecycle")

# Settings that change the sequence of weights a run produces. A resumed run must use the same
# values, or it would not continue the run it claims to continue. Where the files go, how often
# the test set is scored and how batches are prefetched do not change the weights.
TRAJECTORY_FIELDS = ("model", "epochs", "batch_size", "lr", "momentum", "weight_decay", "schedule",
                     "seed", "val_split", "subset", "augment")


class ConfigError(ValueError):
    """Settings that cannot make a run (bad values, a subset larger than the data...)."""


@dataclass
class TrainConfig:
    """One run's settings; field names match the ``python -m tinyconv.train`` flags.

    ``epochs=None`` means the paper's length: 64k iterations (the last epoch is cut short there).
    ``out=None`` means ``runs/<model>``. ``workers`` is the prefetch depth of the one background
    thread that builds batches (0: build them in the training thread).
    """

    model: str = "resnet20"
    epochs: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "paper"
    data: str | None = None
    out: str | None = None
    resume: bool = False
    seed: int = 0
    val_split: int = 0
    workers: int = 2
    subset: int | None = None
    test_subset: int | None = None
    augment: bool = True
    eval_every: int = 1
    eval_batch_size: int = 500
    progress: bool = True
    device: str = "cpu"

    def __post_init__(self):
        if self.out is None:
            self.out = f"runs/{self.model}"
        checks = [
            (self.epochs is None or self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.val_split >= 0, "val_split must be >= 0"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.subset is None or self.subset >= 1, "subset must be >= 1"),
            (self.test_subset is None or self.test_subset >= 1, "test_subset must be >= 1"),
            (self.eval_every >= 1, "eval_every must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
