"""``tinyconv.summary(model, input_shape)``: per-layer output shapes, parameters and multiply-adds.

One forward pass of zeros runs under ``no_grad`` in eval mode. Each leaf module (one without
sub-modules) gets a temporary forward wrapper that records its output and cost; the wrappers are
removed and every module's train/eval mode restored afterwards, also when the forward fails.

Multiply-adds are counted the way the papers count them (VGG, GoogLeNet, ResNet's "FLOPs",
MobileNet's "Mult-Adds"): convolutions and fully connected layers only,
    conv:   output elements * (in_channels / groups) * kh * kw
    linear: output elements * in_features
Biases, batch norm, activations, pooling, LRN and additions count 0; they are a few percent of
the total in these nets and the papers leave them out. ``MULT_ADDS`` maps a layer type to its
counter; add an entry to count another type.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyconv.autograd import no_grad
from tinyconv.backend import array_module
from tinyconv.nn import Conv2d, Linear
from tinyconv.tensor import Tensor


def _conv_mult_adds(module, inputs, output):
    kh, kw = module.kernel_size
    return int(output.size) * (module.in_channels // module.groups) * kh * kw


def _linear_mult_adds(module, inputs, output):
    return int(output.size) * module.in_features


MULT_ADDS = {Conv2d: _conv_mult_adds, Linear: _linear_mult_adds}
"""Layer type -> ``counter(module, inputs, output) -> int``; a subclass uses its nearest listed base,
and a type with none counts 0."""


@dataclass
class LayerRow:
    """One call of one leaf module. ``params`` is the module's parameter count, given on its first
    call only (0 on later calls of a shared module, so the rows add up to the parameters used)."""

    name: str
    kind: str
    output_shape: tuple
    params: int
    mult_adds: int


@dataclass
class ModelSummary:
    """What :func:`summary` measured. ``total_params`` counts every distinct parameter of the model;
    ``params_not_run`` those in no row: layers the pass did not reach (e.g. GoogLeNet's auxiliary
    heads, which run only in training) or parameters held by a module that has sub-modules.
    ``total_mult_adds`` is the sum over the rows."""

    input_shape: tuple
    output_shape: object  # a shape, or a tuple of shapes for a model returning several tensors
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    params_not_run: int = 0

    @property
    def total_mult_adds(self) -> int:
        return sum(r.mult_adds for r in self.rows)

    def table(self) -> str:
        """The per-layer table with totals, as printed by :func:`summary`."""
        head = ("Layer", "Type", "Output shape", "Params", "Mult-adds")
        body = [(r.name, r.kind, _shape_str(r.output_shape), f"{r.params:,}", f"{r.mult_adds:,}")
                for r in self.rows]
        widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]

        def fmt(line):
            left = [cell.ljust(w) for cell, w in zip(line[:3], widths[:3])]
            right = [cell.rjust(w) for cell, w in zip(line[3:], widths[3:])]
            return "  ".join(left + right)

        rule = "-" * len(fmt(head))
        lines = [rule, fmt(head), rule, *map(fmt, body), rule,
                 f"Input shape: {_shape_str(self.input_shape)}   "
                 f"output shape: {_shape_str(self.output_shape)}",
                 f"Total params: {self.total_params:,} ({self.total_params / 1e6:.2f} M)",
                 f"Trainable params: {self.trainable_params:,}"]
        if self.params_not_run:
            lines.append(f"Params in no row (layers not run): {self.params_not_run:,}")
        lines += [f"Mult-adds (conv + linear): {self.total_mult_adds:,} ({self.total_mult_adds / 1e9:.3f} G)",
                  rule]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _shape_str(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape_str(s) for s in shape)
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _shapes(out):
    if isinstance(out, Tensor):
        return tuple(out.shape)
    return tuple(_shapes(o) for o in out)


def _count(module, recurse=True):
    return sum(int(p.size) for p in module.parameters(recurse))


def summary(model, input_shape, *, dtype=np.float32, print_table=True) -> ModelSummary:
    """Run ``model`` once on zeros of ``input_shape`` and tabulate its leaf layers.

    ``input_shape`` is (C, H, W) for one image, the papers' unit for multiply-adds, or
    (N, C, H, W); counts are for the whole batch given. Prints the table unless ``print_table``
    is false; returns a :class:`ModelSummary` (rows and totals) either way.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) == 3:
        input_shape = (1, *input_shape)
    params = list(model.parameters())
    xp = array_module(params[0].data) if params else np
    x = Tensor(xp.zeros(input_shape, dtype=dtype))

    rows, seen = [], set()
    leaves = [(name, m) for name, m in model.named_modules() if not any(True for _ in m.children())]
    modes = [(m, m.training) for m in model.modules()]
    installed = []  # (module, the instance-level forward it had, or None)

    def recorder(name, module, forward):
        def recorded(*args, **kwargs):
            out = forward(*args, **kwargs)
            counter = next((MULT_ADDS[t] for t in type(module).__mro__ if t in MULT_ADDS), None)
            first = id(module) not in seen
            seen.add(id(module))
            rows.append(LayerRow(name or type(module).__name__, type(module).__name__, _shapes(out),
                                 _count(module, recurse=False) if first else 0,
                                 counter(module, args, out) if counter else 0))
            return out
        return recorded

    try:
        for name, module in leaves:
            own = module.__dict__.get("forward")
            installed.append((module, own))
            # An instance attribute shadows the class's forward; Module.__call__ looks it up.
            object.__setattr__(module, "forward", recorder(name, module, module.forward))
        model.eval()
        with no_grad():
            out = model(x)
    finally:
        for module, own in installed:
            if own is None:
                object.__delattr__(module, "forward")
            else:
                object.__setattr__(module, "forward", own)
        for module, training in modes:
            module.training = training

    total = _count(model)
    result = ModelSummary(input_shape, _shapes(out), rows, total_params=total,
                          trainable_params=sum(int(p.size) for p in params if p.requires_grad),
                          params_not_run=total - sum(r.params for r in rows))
    if print_table:
        print(result.table())
    return result


def count_mult_adds(model, input_shape) -> int:
    """Multiply-adds of one forward pass on ``input_shape`` (see :func:`summary`), without printing."""
    return summary(model, input_shape, print_table=False).total_mult_adds


__all__ = ["LayerRow", "ModelSummary", "MULT_ADDS", "count_mult_adds", "summary"]
