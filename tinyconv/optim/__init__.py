"""Optimizers (SGD, Adam) and learning-rate schedules, with PyTorch's API and update rules."""
from tinyconv.optim import lr_scheduler
from tinyconv.optim.adam import Adam
from tinyconv.optim.optimizer import Optimizer
from tinyconv.optim.sgd import SGD

__all__ = ["Adam", "Optimizer", "SGD", "lr_scheduler"]
