"""Module: the base class of layers and models, with PyTorch's registration and state API.

Assigning a ``Parameter``, a ``Module`` or (through ``register_buffer``) a buffer Tensor to an
attribute records it in one of three ordered tables, so parameters, buffers and sub-modules can be
walked with dotted names (``layer1.0.conv1.weight``) exactly as PyTorch names them; that makes
``state_dict`` keys interchangeable with a PyTorch model of the same structure.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from tinyconv import backend
from tinyconv.backend import array_module, to_device
from tinyconv.nn.parameter import Parameter
from tinyconv.tensor import Tensor

_STORES = ("_parameters", "_buffers", "_modules")

LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


class StateDictError(RuntimeError):
    """``load_state_dict`` found keys or shapes that do not fit the module.

    Attributes ``missing_keys``, ``unexpected_keys`` (lists of names) and ``mismatches`` (a list of
    ``(name, problem)`` pairs) say what is wrong; the message lists all of them.
    """

    def __init__(self, module_name, missing_keys, unexpected_keys, mismatches):
        self.missing_keys, self.unexpected_keys, self.mismatches = missing_keys, unexpected_keys, mismatches
        lines = [f"error(s) in loading state_dict for {module_name}:"]
        if missing_keys:
            lines.append("  missing keys: " + ", ".join(repr(k) for k in missing_keys))
        if unexpected_keys:
            lines.append("  unexpected keys: " + ", ".join(repr(k) for k in unexpected_keys))
        lines.extend(f"  {name!r}: {problem}" for name, problem in mismatches)
        super().__init__("\n".join(lines))


def _check_name(name, kind, module):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{kind} name must be non-empty and contain no '.', got {name!r}")
    if hasattr(module, name) and not any(name in module.__dict__[s] for s in _STORES):
        raise KeyError(f"attribute {name!r} already exists on {type(module).__name__}; "
                       f"cannot register a {kind} under that name")


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign parameters and sub-modules as attributes
    and implement ``forward``; calling the module runs ``forward``. ``training`` (set by
    ``train()``/``eval()``) tells layers such as dropout and batch norm which behaviour to use.
    """

    def __init__(self):
        # Written through object.__setattr__: our own __setattr__ needs these tables to exist.
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- registration ----
    def _tables(self):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 "before assigning parameters, buffers or sub-modules")
        return self.__dict__

    def _discard(self, name, keep):
        """Forget ``name`` in every table but ``keep`` and as a plain attribute."""
        tables = self._tables()
        for store in _STORES:
            if store != keep:
                tables[store].pop(name, None)
        tables.pop(name, None)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._discard(name, "_parameters")
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._discard(name, "_modules")
            self._modules[name] = value
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} "
                                "(a Parameter or None is expected)")
            self._parameters[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r} "
                                "(a Tensor or None is expected)")
            self._buffers[name] = value
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to sub-module {name!r} "
                                "(a Module or None is expected)")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails, i.e. for registered entries.
        tables = self.__dict__
        for store in _STORES:
            if store in tables and name in tables[store]:
                return tables[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for store in _STORES:
            if name in self.__dict__.get(store, ()):
                del self.__dict__[store][name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter, or None for an absent optional one such as a bias)."""
        _check_name(name, "parameter", self)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"parameter {name!r} must be a Parameter or None, got {type(param).__name__}")
        self._discard(name, "_parameters")
        self._parameters[name] = param

    def register_buffer(self, name, tensor):
        """Register a non-learnable Tensor (running statistics, counters) saved in ``state_dict``."""
        _check_name(name, "buffer", self)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"buffer {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        if isinstance(tensor, Parameter):
            raise TypeError(f"buffer {name!r} is a Parameter; assign it as an attribute instead")
        self._discard(name, "_buffers")
        self._buffers[name] = tensor

    def add_module(self, name, module):
        """Register ``module`` (or None) as a sub-module under ``name``."""
        _check_name(name, "module", self)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"module {name!r} must be a Module or None, got {type(module).__name__}")
        self._discard(name, "_modules")
        self._modules[name] = module

    # ---- traversal ----
    def named_modules(self, prefix="", _seen=None):
        """(dotted name, module) for this module and every descendant, each module once, pre-order."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, store, recurse):
        """(dotted name, tensor) from one table of every module, each tensor once (shared weights)."""
        seen = set()
        owners = self.named_modules() if recurse else [("", self)]
        for prefix, module in owners:
            for name, tensor in module.__dict__[store].items():
                if tensor is None or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                yield (f"{prefix}.{name}" if prefix else name), tensor

    def named_parameters(self, recurse=True):
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse):
            yield param

    def named_buffers(self, recurse=True):
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse=True):
        for _, buf in self.named_buffers(recurse):
            yield buf

    def num_parameters(self):
        """Number of scalar values in all (distinct) parameters."""
        return sum(int(p.size) for p in self.parameters())

    def apply(self, fn):
        """Call ``fn`` on every sub-module (children first) and then on this module; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients ----
    def train(self, mode=True):
        """Set training mode on this module and all descendants; returns self."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        """Drop every parameter's gradient (set to None, so the next backward starts fresh)."""
        for param in self.parameters():
            param.grad = None

    def _cast_floating(self, dtype):
        for t in list(self.parameters()) + list(self.buffers()):
            if t.dtype.kind == "f":
                t.data = t.data.astype(dtype)
                if t.grad is not None:
                    t.grad = t.grad.astype(dtype)
        return self

    def to(self, device):
        """Move every parameter, buffer and gradient to ``device`` ("cpu", "cuda", "cuda:1") in
        place; returns self. Build optimizers after moving: they keep the tensors, and their state
        is created on the parameters' device."""
        device = backend.device(device)  # checked once, not per tensor
        for t in list(self.parameters()) + list(self.buffers()):
            t.data = to_device(t.data, device)
            if t.grad is not None:
                t.grad = to_device(t.grad, device)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(f"cuda:{index}")

    def float(self):
        """Cast floating-point parameters and buffers to float32 in place; returns self."""
        return self._cast_floating(np.float32)

    def double(self):
        """Cast floating-point parameters and buffers to float64 (for gradient checks); returns self."""
        return self._cast_floating(np.float64)

    # ---- state ----
    def _state_tensors(self, prefix=""):
        """(key, tensor) in PyTorch's state_dict order: the module's parameters, then its buffers,
        then its children's. Shared tensors and sub-modules appear under every name, as in PyTorch."""
        for store in ("_parameters", "_buffers"):
            for name, tensor in self.__dict__[store].items():
                if tensor is not None:
                    yield prefix + name, tensor
        for name, child in self.named_children():
            yield from child._state_tensors(f"{prefix}{name}.")

    def state_dict(self):
        """An OrderedDict of dotted name -> numpy array (a copy) for every parameter and buffer."""
        return OrderedDict((key, np.array(t.numpy(), copy=True)) for key, t in self._state_tensors())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from ``state_dict`` (name -> array-like) into the parameters and buffers.

        Values are cast to each target's dtype and written in place (optimizers keep their
        references). Nothing is written unless every check passes. Shape mismatches and values that
        are not numeric arrays are always errors; missing and unexpected keys are errors only when
        ``strict``. Raises StateDictError listing every problem; returns
        ``LoadResult(missing_keys, unexpected_keys)``.
        """
        targets = OrderedDict(self._state_tensors())
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        mismatches, updates = [], []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = np.asarray(value.numpy() if isinstance(value, Tensor) else value)
            if value.dtype.kind not in "biuf":
                mismatches.append((key, f"expected a numeric array, got dtype {value.dtype}"))
            elif value.shape != target.shape:
                mismatches.append((key, f"shape mismatch: expected {target.shape}, got {value.shape}"))
            else:
                updates.append((target, value))
        if mismatches or (strict and (missing or unexpected)):
            raise StateDictError(type(self).__name__, missing if strict else [],
                                 unexpected if strict else [], mismatches)
        for target, value in updates:
            target.data[...] = array_module(target.data).asarray(value.astype(target.dtype, copy=False))
        return LoadResult(missing, unexpected)

    # ---- printing ----
    def extra_repr(self):
        """The layer's settings, shown inside the parentheses of its repr."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = extra.split("\n") if extra else []
        for name, child in self._modules.items():
            lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
