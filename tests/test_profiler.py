"""tinyconv.profile: every op's forward and backward timed under its name and input shape."""
import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv import autograd


def test_profile_counts_each_op_by_shape_and_phase():
    rng = np.random.default_rng(0)
    x = tinyconv.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    w = tinyconv.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    with tinyconv.profile() as prof:
        for _ in range(3):
            F.relu(F.conv2d(x, w, padding=1)).sum().backward()
        with tinyconv.no_grad():
            F.conv2d(x, w, padding=1)
    assert autograd.active_profile is None
    assert prof.calls[("Conv2d", (2, 3, 8, 8), "forward")] == 4
    assert prof.calls[("Conv2d", (2, 3, 8, 8), "backward")] == 3
    assert prof.calls[("ReLU", (2, 4, 8, 8), "backward")] == 3
    assert all(seconds > 0 for seconds in prof.seconds.values())
    assert set(prof.by_op()) == {"Conv2d", "ReLU", "Sum"}
    table = prof.table()
    assert table.splitlines()[0].split()[:2] == ["op", "input"]
    assert "Conv2d" in table and "backward" in table


def test_profiles_do_not_nest_and_ops_run_untimed_after():
    with tinyconv.profile():
        with pytest.raises(RuntimeError, match="do not nest"):
            with tinyconv.profile():
                pass
    assert autograd.active_profile is None
    assert float(F.relu(tinyconv.tensor([-1.0, 2.0])).sum().item()) == 2.0
