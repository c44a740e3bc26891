"""Containers: Sequential (a chain of layers) and ModuleList (a registered list of modules)."""
import operator
from collections.abc import Mapping

from tinyconv.nn.module import Module


class _Container(Module):
    """Ordered children with list-like access: len, iteration, indexing, slicing, append."""

    def _from_items(self, items):
        """A new container of the same kind holding ``items`` ((name, module) pairs)."""
        raise NotImplementedError

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return self._from_items(items[index])
        return items[self._position(index)][1]

    def _position(self, index):
        """``index`` (possibly negative) as a position in [0, len), or IndexError."""
        i, n = operator.index(index), len(self)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__} index {index} out of range for length {n}")
        return i % n

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        """Add ``module`` at the end, named by its position; returns self."""
        self.add_module(str(len(self)), module)
        return self


class Sequential(_Container):
    """Modules applied in order: ``forward(x) = m_k(...m_1(x))``.

    Built from modules (named "0", "1", ...) or from one mapping of name -> module (an OrderedDict),
    whose names then appear in ``state_dict`` keys. A slice is a new Sequential keeping the names.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for module in modules:
                self.append(module)

    def _from_items(self, items):
        return Sequential(dict(items))

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleList(_Container):
    """A list of modules registered as children "0", "1", ... (no forward of its own)."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def _from_items(self, items):
        return ModuleList(module for _, module in items)

    def __setitem__(self, index, module):
        self.add_module(str(self._position(index)), module)

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self
