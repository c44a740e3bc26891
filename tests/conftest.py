"""Shared test configuration: hypothesis profiles and the PyTorch reference.

Profiles: ``ci`` (chosen when the environment variable CI is set) is derandomised, so a failure in
CI reproduces bit for bit on a laptop with ``CI=1 pytest ...``; ``dev`` explores new examples each
run. Both have no deadline: the first call of a Numba kernel compiles it, which takes seconds.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True, max_examples=30,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "dev", deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def torch():
    """The torch module, or a clean skip when it is not installed (use with ``@pytest.mark.torch``)."""
    return pytest.importorskip("torch")


@pytest.fixture
def rng():
    """A seeded generator for the example-based tests (hypothesis tests draw their own data)."""
    return np.random.default_rng(1234)
