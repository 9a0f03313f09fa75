"""Retrieval and identity query blocks scored by two threads (robustpath.util.shared_work): the same
neighbours and ranks as numpy by hand, whichever thread ran a block."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from robustpath.tasks import neighbour_screen, retrieval
from robustpath.util.shared_work import WorkShare


def reference_order(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """numpy by hand: descending floor(cosine · 2^20) in float64, ties by ascending gallery index."""
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    unit_g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    bins = np.floor(unit_q @ unit_g.T * 2.0 ** 20)
    index = np.broadcast_to(np.arange(len(gallery)), bins.shape)
    return np.lexsort((index, -bins), axis=1)


@pytest.fixture()
def served(monkeypatch):
    """A WorkShare of two workers with a second thread serving it; yields the threads that ran blocks."""
    share, threads = WorkShare(workers=2), set()
    server = threading.Thread(target=share.serve, name="server")
    server.start()
    with share.attached():
        yield share, threads
    share.leave()
    server.join(5)
    assert not server.is_alive()


def recording(function, threads: set):
    def wrapped(*args, **kwargs):
        threads.add(threading.current_thread().name)
        time.sleep(0.01)
        return function(*args, **kwargs)
    return wrapped


def test_screened_neighbours_in_two_threads_equal_numpy_by_hand(served, monkeypatch):
    share, threads = served
    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(400, 16))
    queries = np.concatenate([rng.normal(size=(150, 16)), gallery[:10] * 2.0])  # exact ties with gallery rows
    monkeypatch.setattr(neighbour_screen, "_SCREEN_ELEMENTS", 400 * 8)  # blocks of 8 query rows
    monkeypatch.setattr(retrieval, "_ordered_candidates", recording(retrieval._ordered_candidates, threads))
    found = retrieval.nearest_neighbours(queries, gallery, 10)
    np.testing.assert_array_equal(found, reference_order(queries, gallery)[:, :10])
    assert threads == {"MainThread", "server"}


def test_neighbour_ranks_in_two_threads_equal_numpy_by_hand(served, monkeypatch):
    share, threads = served
    rng = np.random.default_rng(4)
    gallery = rng.normal(size=(60, 8))
    queries = gallery + rng.normal(scale=0.3, size=gallery.shape)
    monkeypatch.setattr(retrieval, "_BLOCK_ELEMENTS", 60 * 3)  # blocks of 3 query rows
    monkeypatch.setattr(retrieval, "_block_ranks", recording(retrieval._block_ranks, threads))
    ranks = retrieval.neighbour_ranks(queries, gallery, np.arange(60))
    order = reference_order(queries, gallery)
    np.testing.assert_array_equal(ranks, [int(np.flatnonzero(order[i] == i)[0]) + 1 for i in range(60)])
    assert threads == {"MainThread", "server"}
