"""The CPU backend's batch chunking over threads and its BLAS thread control."""
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from tinyconv import backend


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("total, chunk", [(10, 3), (7, 7), (1, 4), (64, 1)])
def test_map_chunks_covers_every_index_once_and_keeps_chunk_order(monkeypatch, threads, total, chunk):
    monkeypatch.setattr(backend, "cpu_threads", lambda: threads)
    seen = np.zeros(total, int)
    lock = threading.Lock()

    def fn(start, size, alone):
        assert alone == (threads == 1 or total <= chunk)
        with lock:
            seen[start:start + size] += 1
        return start, size

    spans = backend.map_chunks(fn, total, chunk)
    assert spans == [(s, min(chunk, total - s)) for s in range(0, total, chunk)]
    assert (seen == 1).all()


@pytest.mark.parametrize("raiser", ["caller", "helper"])
def test_map_chunks_raises_a_chunks_error_after_every_chunk_has_stopped(monkeypatch, raiser):
    """Chunks write into the caller's arrays: none may still run once map_chunks has returned,
    whichever thread's chunk failed."""
    monkeypatch.setattr(backend, "cpu_threads", lambda: 2)
    running, finished = [0], []
    lock = threading.Lock()

    def fn(start, size, alone):
        with lock:
            running[0] += 1
        time.sleep(0.002)
        with lock:
            running[0] -= 1
            finished.append(start)
        on_caller = threading.current_thread() is threading.main_thread()
        if start >= 2 and on_caller == (raiser == "caller"):
            raise RuntimeError(f"a chunk on the {raiser} failed")

    with pytest.raises(RuntimeError, match=f"a chunk on the {raiser} failed"):
        backend.map_chunks(fn, 16, 1)
    assert running[0] == 0


def blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_single_threaded_blas_restores_the_thread_counts():
    before = blas_threads()
    with backend.single_threaded_blas():
        assert set(blas_threads()) == {1}
    assert blas_threads() == before
    with pytest.raises(ValueError), backend.single_threaded_blas():
        raise ValueError
    assert blas_threads() == before
