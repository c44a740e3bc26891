"""The CPU backend's memory: the allocator setting the training entry points use."""
import resource
import sys

import numpy as np
import pytest

from tinyconv import backend


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_retain_freed_memory_stops_page_faults_on_reallocation():
    """After the call, a freed 16 MB block is reused: allocating it again touches no new pages."""
    if not backend.retain_freed_memory():
        pytest.skip("not glibc")

    def faults_to_fill(nbytes):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        np.ones(nbytes // 8)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_to_fill(16 * 2**20)
    assert faults_to_fill(16 * 2**20) < 100  # ~500 here when the block goes back to the OS
