"""Prepare the next forward pass while the current one runs.

A background thread walks the sweep's forward passes in order and fills one of
``DEPTH`` reused input buffers per pass (decode, corrupt, resize, normalise); the
caller takes the passes in the same order, runs the encoder on each and gives its
buffer back.  On CPU the preparation runs on another core beside the forward pass;
on CUDA its kernels are queued on the same stream ahead of the forward pass, so a
buffer is never overwritten before the pass that reads it (stream order).

The thread only reads the plan; every result is produced by the caller, in order.
An error in the thread (including CUDA out-of-memory) is raised by the caller's
iteration; leaving the ``with`` block stops the thread and waits for it.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

_END = object()


@dataclass
class Prepared:
    """The inputs of one forward pass, in a buffer to give back with ``release``."""

    inputs: object  # (n, 3, h, w) tensor: a view of the buffer
    seconds: float  # time spent preparing it
    _free: queue.Queue
    _buffer: object

    def release(self) -> None:
        self._free.put(self._buffer)


class Prefetch:
    """Iterate (begin, end, pieces, Prepared or None) over ``spans`` with preparation done ahead.

    ``spans``: (begin, end, pieces, compute) per forward pass, in order (produced lazily
    by the thread); ``prepare(pieces, buffer) -> images``; None for passes with nothing
    to compute.
    """

    DEPTH = 2

    def __init__(self, spans: Iterable[tuple], prepare: Callable[[object, object], int], buffers: list) -> None:
        self._spans = spans
        self._prepare = prepare
        self._free: queue.Queue = queue.Queue()
        for buffer in buffers:
            self._free.put(buffer)
        self._ready: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="robustpath-prepare", daemon=True)

    def __enter__(self) -> "Prefetch":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._free.put(None)  # wakes the thread if it waits for a buffer
        self._thread.join()

    def __iter__(self) -> Iterator[tuple]:
        while True:
            item = self._ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _produce(self) -> None:
        try:
            for begin, end, pieces, compute in self._spans:
                if self._stop.is_set():
                    return
                if not compute:
                    self._ready.put((begin, end, pieces, None))
                    continue
                buffer = self._free.get()
                if buffer is None or self._stop.is_set():
                    return
                started = time.perf_counter()
                filled = self._prepare(pieces, buffer)
                prepared = Prepared(buffer[:filled], time.perf_counter() - started, self._free, buffer)
                self._ready.put((begin, end, pieces, prepared))
            self._ready.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._ready.put(exc)
