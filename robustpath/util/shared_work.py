"""Blocks of one computation that idle threads may take: the scoring left after the sweep, in two threads.

A few threads (the workers) each run their own jobs.  A worker that has no job
left calls ``WorkShare.serve``: until every worker has run out of jobs, it runs
blocks that the others publish.  A worker publishes the blocks of a computation
with ``map_blocks(function, items)`` (inside ``WorkShare.attached``): it runs
blocks itself and any idle worker takes the next ones; the results come back in
the items' order, so they do not depend on which thread ran a block.  Outside
``attached``, or while no worker serves, ``map_blocks`` is a plain loop.

``items`` may be a generator: it is advanced under the share's lock, one item
per block taken, so at most one item per thread exists at a time (memory stays
that of the plain loop, per thread) and a seeded stream yields the same items in
the same order.

An exception in a block or in the generator (also a KeyboardInterrupt in a
serving thread) is raised again by the ``map_blocks`` call that published it,
after the blocks already taken have ended.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_attached = threading.local()


class _Blocks:
    """One ``map_blocks`` call: its items, their results, and how many have been taken and have ended."""

    def __init__(self, function: Callable, items: Iterable) -> None:
        self.function = function
        self.items = iter(items)
        self.results: dict[int, object] = {}
        self.taken = 0
        self.ended = 0
        self.exhausted = False
        self.error: BaseException | None = None

    def take(self) -> tuple[int, object] | None:
        """The next (index, item), or None when there is none (under the share's lock)."""
        if self.error is not None:  # a block failed: take no more
            self.exhausted = True
        if self.exhausted:
            return None
        try:
            item = next(self.items)
        except StopIteration:
            self.exhausted = True
            return None
        except BaseException as exc:  # noqa: BLE001 - raised again by the publishing map_blocks
            self.error, self.exhausted = exc, True
            return None
        self.taken += 1
        return self.taken - 1, item

    @property
    def done(self) -> bool:
        return self.exhausted and self.ended == self.taken

    def run(self, index: int, item) -> None:
        """Run one block; an error is kept for the publisher (and an interrupt raised here too)."""
        try:
            if self.error is None:
                self.results[index] = self.function(item)
        except BaseException as exc:  # noqa: BLE001 - raised again by the publishing map_blocks
            self.error = self.error or exc
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: this thread stops too
                raise


class WorkShare:
    """Blocks published by ``workers`` threads, taken by those among them that have no job left."""

    def __init__(self, workers: int) -> None:
        self._changed = threading.Condition()
        self._open: list[_Blocks] = []  # published computations that may have blocks left
        self._busy = int(workers)  # workers that still run jobs of their own
        self._left: set[int] = set()  # the threads that left (leave() counts each once)
        self._closed = False

    def leave(self) -> None:
        """This worker has no job left and will take no blocks (it ended, failed or was cancelled)."""
        with self._changed:
            if threading.get_ident() not in self._left:
                self._left.add(threading.get_ident())
                self._busy -= 1
            self._changed.notify_all()

    def close(self) -> None:
        """Serving ends now (the work was cancelled); publishers run their remaining blocks themselves."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def serve(self, poll: Callable[[], None] | None = None, every: float = 0.1) -> None:
        """This worker has no job left: run published blocks until no worker has a job left
        (or close()); ``poll`` is called every ``every`` seconds while there is nothing to run."""
        self.leave()
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._open or self._busy <= 0 or self._closed, timeout=every)
                if self._closed or not (self._open or self._busy > 0):
                    return
                taken = self._next_block()
            if taken is None:
                if poll is not None:
                    poll()
                continue
            self._run(*taken)

    def help_until(self, finished: Callable[[], bool], every: float = 0.02) -> None:
        """A worker that must wait (e.g. for room to hand over its next job) runs published blocks
        meanwhile, until ``finished()`` (checked between blocks and every ``every`` seconds)."""
        while not finished():
            with self._changed:
                taken = None if self._closed else self._next_block()
                if taken is None:
                    self._changed.wait(timeout=every)
            if taken is not None:
                self._run(*taken)

    def map(self, function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
        """[function(item) for item in items], blocks run by this thread and any serving worker."""
        blocks = _Blocks(function, items)
        with self._changed:
            self._open.append(blocks)
            self._changed.notify_all()
        while True:
            with self._changed:
                taken = blocks.take()
                if taken is None and blocks in self._open:
                    self._open.remove(blocks)
            if taken is None:
                break
            self._run(blocks, *taken)
        with self._changed:
            self._changed.wait_for(lambda: blocks.done)
        if blocks.error is not None:
            raise blocks.error
        return [blocks.results[index] for index in range(blocks.taken)]

    def _next_block(self) -> tuple[_Blocks, int, object] | None:
        """A block of the first published computation that has one left (under the lock)."""
        while self._open:
            blocks = self._open[0]
            taken = blocks.take()
            if taken is not None:
                return (blocks, *taken)
            self._open.pop(0)
        return None

    def _run(self, blocks: _Blocks, index: int, item) -> None:
        try:
            blocks.run(index, item)
        finally:
            with self._changed:
                blocks.ended += 1
                self._changed.notify_all()

    @contextmanager
    def attached(self) -> Iterator[None]:
        """map_blocks in this thread publishes its blocks here."""
        previous = getattr(_attached, "share", None)
        _attached.share = self
        try:
            yield
        finally:
            _attached.share = previous


def map_blocks(function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
    """[function(item) for item in items]; inside WorkShare.attached, idle workers may run some of them."""
    share = getattr(_attached, "share", None)
    if share is None:
        return [function(item) for item in items]
    return share.map(function, items)
