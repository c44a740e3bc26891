"""Where the time of a forward/backward goes, op by op: ``with tinyconv.profile() as prof: ...``.

Every Function's ``forward`` and ``backward`` run inside the block is timed and filed under the
op's name and the shape of its first input, which tells layers apart (ResNet-20's three conv
stages are three ``Conv2d`` rows). ``prof.table()`` lists them, slowest first. Time spent outside
Functions (the optimizer step, Python glue) is not attributed. On a GPU, kernels run
asynchronously, so each timed call waits for the device before its clock stops.
"""
import time
from collections import defaultdict

from tinyconv import autograd
from tinyconv.backend import is_cupy_array


class Profile:
    """Seconds and calls per (op, input shape, phase), phase being "forward" or "backward"."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)

    def __enter__(self):
        if autograd.active_profile is not None:
            raise RuntimeError("profile: a profile is already active; profiles do not nest")
        autograd.active_profile = self
        return self

    def __exit__(self, *exc):
        autograd.active_profile = None

    def run(self, fn, phase, method, arrays, shape):
        """``method(*arrays)`` timed under ``fn``'s name and ``shape``, its first input's."""
        start = time.perf_counter()
        result = method(*arrays)
        if arrays and is_cupy_array(arrays[0]):
            import cupy
            cupy.cuda.Device().synchronize()
        key = (fn.name, tuple(shape), phase)
        self.seconds[key] += time.perf_counter() - start
        self.calls[key] += 1
        return result

    def by_op(self):
        """{op name: seconds} over all shapes and both phases, slowest first."""
        totals = defaultdict(float)
        for (name, _, _), seconds in self.seconds.items():
            totals[name] += seconds
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    def table(self, limit=20):
        """The ``limit`` slowest (op, shape, phase) rows as text: ms per call, calls, share of all."""
        total = sum(self.seconds.values()) or 1.0
        rows = sorted(self.seconds.items(), key=lambda item: -item[1])[:limit]
        lines = [f"{'op':18s} {'input shape':22s} {'phase':8s} {'ms/call':>8s} {'calls':>6s} {'share':>6s}"]
        for (name, shape, phase), seconds in rows:
            calls = self.calls[(name, shape, phase)]
            lines.append(f"{name:18s} {str(shape):22s} {phase:8s} {1e3 * seconds / calls:8.2f} {calls:6d} "
                         f"{100 * seconds / total:5.1f}%")
        return "\n".join(lines)


def profile():
    """A :class:`Profile` that times every op run inside its ``with`` block."""
    return Profile()
