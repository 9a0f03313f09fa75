"""Keep Python's garbage collector off the long-lived objects of a run.

A run holds hundreds of thousands of long-lived objects (torch, the model, pandas,
matplotlib).  Every full garbage collection walks all of them, and drawing plots or
scoring tasks allocates enough to trigger many: about a second of a run's reporting
time went there.  ``frozen_heap`` moves the objects alive at its start (and at each
``freeze_now``) out of the collector's sight (``gc.freeze``) until the outermost block
ends (``gc.unfreeze``), when they are collected as usual again.  Nothing is leaked:
frozen objects that became garbage are collected after the block.
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_depth = 0


def freeze_now() -> None:
    """Leave the objects alive now out of collections until the outermost frozen_heap ends."""
    if _depth:
        gc.freeze()


@contextmanager
def frozen_heap() -> Iterator[None]:
    global _depth
    with _lock:
        _depth += 1
        gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.unfreeze()
