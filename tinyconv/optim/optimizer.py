"""Optimizer base: parameter groups, per-parameter state, zero_grad and state_dict for exact resume.

Updates work on the raw arrays (``p.data``, ``p.grad``) in place, so they never record graph and
every holder of a parameter sees the new values.
"""
import copy
import numbers

import numpy as np

from tinyconv.backend import array_module, is_cupy_array
from tinyconv.tensor import Tensor


def check_hyperparameter(optimizer, name, value, low=0.0, high=None, high_open=False):
    """Reject ``value`` unless it is a real number with low <= value (<= or < high)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{optimizer}: {name} must be a number, got {value!r}")
    above = value >= low
    below = high is None or (value < high if high_open else value <= high)
    if not (above and below):
        upper = "" if high is None else f" and {'<' if high_open else '<='} {high}"
        raise ValueError(f"{optimizer}: invalid {name} {value} (must be >= {low}{upper})")


class Optimizer:
    """Base class: holds ``param_groups`` (dicts with 'params' and hyperparameters) and ``state``.

    ``params`` is an iterable of Parameters, or of dicts each with 'params' and per-group overrides
    of ``defaults`` (e.g. a smaller lr for a pretrained backbone). Subclasses implement
    ``_check_group(group)`` (argument validation) and ``_update(param, grad, group, state)``, which
    changes ``param.data`` in place using the dict ``state`` kept for that parameter.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # Parameter -> dict; Tensor hashes by identity
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def _check_group(self, group):
        raise NotImplementedError

    def _update(self, param, grad, group, state):
        raise NotImplementedError

    def add_param_group(self, group):
        """Add a group (a dict with 'params'); missing hyperparameters take the defaults."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry, got {group!r}")
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameters must be Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: cannot optimise a non-leaf tensor (one computed from others)")
            if id(p) in existing:
                raise ValueError(f"{name}: a parameter appears twice (in one group or across groups)")
            existing.add(id(p))
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    def zero_grad(self):
        """Set every parameter's gradient to None."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        """Update every parameter that has a gradient, using its group's hyperparameters."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.shape != p.shape:
                    raise ValueError(f"{type(self).__name__}: gradient shape {p.grad.shape} differs "
                                     f"from parameter shape {p.shape}")
                self._update(p, p.grad, group, self.state.setdefault(p, {}))

    # ---- state for checkpoints ----
    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """{'state': {index: {name: array copy or number}}, 'param_groups': [{hyper..., 'params': [index]}]}.

        Parameters are numbered in group order, as in PyTorch, so the dict holds no references
        to the live arrays and can be saved with ``tinyconv.save``.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        groups = [{**{k: copy.deepcopy(v) for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: _export(v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state saved by ``state_dict``.

        The optimizer must have been built over the same parameters in the same grouping (checked
        by group count, group sizes and state shapes). Arrays are copied and cast to each
        parameter's dtype. Nothing changes unless every check passes.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'state' and "
                             f"'param_groups', got {type(state_dict).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the saved state has {len(saved_groups)} parameter "
                             f"groups, this optimizer has {len(self.param_groups)}")
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in saved_groups]
        if sizes != saved_sizes:
            raise ValueError(f"{name}.load_state_dict: saved groups have {saved_sizes} parameters, "
                             f"this optimizer's groups have {sizes}")
        params = self._params()
        new_state = {}
        for key, entry in state_dict["state"].items():
            i = int(key)
            if not 0 <= i < len(params):
                raise ValueError(f"{name}.load_state_dict: state for parameter {key}, but there are "
                                 f"only {len(params)} parameters")
            p = params[i]
            new_state[p] = {k: _import(v, p, f"{name}.load_state_dict: state[{key}][{k!r}]")
                            for k, v in entry.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"  group {i}: " + ", ".join(f"{k}={v}" for k, v in group.items() if k != "params"))
        return "\n".join(lines) + "\n)"


def _export(value):
    """A state value as something a checkpoint holds: arrays become numpy copies."""
    if is_cupy_array(value):
        return value.get()
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


def _import(value, param, where):
    """A saved state value; arrays must be shaped like ``param`` and are cast to its dtype and library."""
    if isinstance(value, np.generic):
        return value.item()
    if not (isinstance(value, np.ndarray) or is_cupy_array(value)):
        return copy.deepcopy(value)
    if tuple(value.shape) != param.shape:
        raise ValueError(f"{where} has shape {tuple(value.shape)}, the parameter has shape {param.shape}")
    return array_module(param.data).array(value, dtype=param.dtype, copy=True)
