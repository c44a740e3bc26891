"""Parameter: a Tensor that a Module registers as learnable state."""
from tinyconv.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default.

    Assigning one to a Module attribute registers it, so it shows up in ``parameters()`` and
    ``state_dict()``. The data array is shared with ``data`` (no copy), as in ``Tensor``.
    """

    def __init__(self, data, requires_grad=True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
