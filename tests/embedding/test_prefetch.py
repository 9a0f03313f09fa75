"""The preparation thread of the sweep: order, look-ahead bounded by the buffers, errors, stopping."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from engine_fixtures import customvit, one_thread, small_dataset  # noqa: F401  (fixtures)

import corruptions
from robustpath.embedding import engine
from robustpath.embedding.prefetch import Prefetch
from robustpath.variants import Variant

WAIT = 10  # seconds; only reached when the thread does not prepare ahead


def spans(count: int, skip: frozenset = frozenset()):
    return [(i, i + 1, f"pass {i}", i not in skip) for i in range(count)]


def test_passes_come_in_order_and_the_next_one_is_prepared_during_the_current_one():
    prepared = {i: threading.Event() for i in range(6)}
    order = []

    def prepare(pieces, buffer):
        number = int(pieces.split()[1])
        buffer[:] = number
        order.append(number)
        prepared[number].set()
        return len(buffer)

    buffers = [np.zeros(3) for _ in range(Prefetch.DEPTH)]
    seen = []
    with Prefetch(spans(6, skip=frozenset({2})), prepare, buffers) as passes:
        for begin, end, pieces, batch in passes:
            seen.append((begin, end, pieces))
            if batch is None:
                continue
            assert (batch.inputs == begin).all()
            following = next((n for n in range(begin + 1, 6) if n != 2), None)
            if following is not None:  # a second buffer is free: the next pass gets ready meanwhile
                assert prepared[following].wait(WAIT), f"pass {following} was not prepared during pass {begin}"
            batch.release()
    assert seen == [(i, i + 1, f"pass {i}") for i in range(6)]
    assert order == [0, 1, 3, 4, 5]  # nothing is prepared for a pass that computes nothing


def test_look_ahead_is_bounded_by_the_buffers():
    prepared = []

    def prepare(pieces, buffer):
        prepared.append(pieces)
        return len(buffer)

    held = []
    with Prefetch(spans(5), prepare, [np.zeros(2) for _ in range(2)]) as passes:
        iterator = iter(passes)
        held.append(next(iterator)[3])
        held.append(next(iterator)[3])
        time.sleep(0.3)  # time enough to prepare pass 2, if a buffer were free
        assert prepared == ["pass 0", "pass 1"]  # both buffers are held: pass 2 waits for one
        held.pop(0).release()
        third = next(iterator)
        assert third[2] == "pass 2" and prepared[:3] == ["pass 0", "pass 1", "pass 2"]
        held.append(third[3])
    assert not any(t.name == "robustpath-prepare" for t in threading.enumerate())  # stopped, though passes remained


def test_an_error_while_preparing_reaches_the_caller_after_the_passes_before_it():
    def prepare(pieces, buffer):
        if pieces == "pass 2":
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return len(buffer)

    seen = []
    with pytest.raises(torch.OutOfMemoryError, match="simulated"):
        with Prefetch(spans(4), prepare, [np.zeros(1) for _ in range(2)]) as passes:
            for begin, _, _, batch in passes:
                seen.append(begin)
                batch.release()
    assert seen == [0, 1]
    assert not any(t.name == "robustpath-prepare" for t in threading.enumerate())


def test_out_of_memory_while_preparing_halves_the_batch(customvit, small_dataset, monkeypatch):  # noqa: F811
    variants = [Variant("hue", 2, "pre"), Variant("gaussian_blur", 2, "post")]
    options = dict(preset=corruptions.load_preset("pathology"), seed=0, device=torch.device("cpu"))
    reference = engine.compute_embeddings(customvit, small_dataset, variants, batch_size=16, **options)
    prepare, calls = engine._Sweep.prepare, [0]

    def failing_prepare(self, pieces, buffer):
        calls[0] += 1
        if calls[0] == 2:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return prepare(self, pieces, buffer)

    monkeypatch.setattr(engine._Sweep, "prepare", failing_prepare)
    result = engine.compute_embeddings(customvit, small_dataset, variants, batch_size=16, **options)
    assert result.stats["batch_size"] == 8 and result.notes == ["out of memory at batch size 16: retrying with batch size 8"]
    np.testing.assert_allclose(result.clean, reference.clean, rtol=0, atol=1e-6)
    for key in reference.variants:
        np.testing.assert_allclose(result.variants[key], reference.variants[key], rtol=0, atol=1e-6)

