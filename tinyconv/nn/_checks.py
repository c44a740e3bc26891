"""Argument checks shared by the layer constructors, so a bad argument fails where it is given."""
import numpy as np


def check_positive_int(layer, **values):
    """Reject sizes that are not positive integers, naming the layer and the argument."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {v!r}")
