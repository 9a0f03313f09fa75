"""Score tasks beside the sweep: each variant as soon as its embeddings are complete.

The engine calls ``TaskScorer.ready`` when a variant's embeddings are complete (the
clean ones come first: the training images are embedded first).  A background thread
fits every task on the clean context, then scores the variants in the order they
became ready, while the forward passes of the others go on; ``finish`` scores what
is left, waits, and returns the outcomes and metric values keyed by (task key,
variant key), independent of the order they were computed in.  The thread only
reads arrays that the sweep no longer writes, and computes exactly what a scoring
loop after the sweep would.

Once the sweep is over, ``finish`` does not just wait: the calling thread takes the
variants still queued, one at a time, and scores them beside the scoring thread (on
two cores and a single-threaded BLAS, the scoring left after the last forward pass
then takes about half as long).  A thread that has no variant left serves the other
(robustpath.util.shared_work): the tasks publish the blocks of a variant (retrieval
query blocks, prediction blocks, bootstrap resample blocks) with ``map_blocks`` and
the idle thread scores some of them, so the last variant is scored in two threads too.
During the sweep, a ``ready`` that has to wait for room does the same: the sweep's
thread scores blocks of the variant that holds it back instead of waiting idle.  A fitted task's ``outcomes`` and ``score`` only read
what ``fit`` built (the lazily built caches they share, the bootstrap indices and the
retrieval screen, are built under a lock), so a variant's scores do not depend on the
thread that computed them; the scores are returned in the order a single thread would
have added them.

Memory: with ``release``, a variant's embeddings are dropped (Embeddings.release) as
soon as every task has scored it; and ``ready`` waits while ``max_queued`` variants
(1: the one being scored) are not yet scored and the waiting ones hold ``max_queued_bytes``
(QUEUED_BYTES, 64 MiB) or more with the new one, so that a sweep faster than the
scoring does not pile up embeddings.  Peak memory then holds the clean embeddings, the
variants the sweep is filling or has just finished (one window of them:
robustpath.embedding.plan), at most ``max_queued`` finished ones waiting or being
scored (or finished ones of up to ``max_queued_bytes``), and what the tasks keep.
Small variants (a few MiB: demo-sized test sets) therefore never hold the sweep back
while the tasks are fitted (the probe's cross-validation takes seconds): the fit and
the forward passes go on side by side.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from robustpath.util.progress import ProgressReporter
from robustpath.util.shared_work import WorkShare
from robustpath.variants import CLEAN_VARIANT, Variant

_STOP = object()
QUEUED_BYTES = 64 * 2**20  # embeddings that may wait to be scored beyond max_queued variants


@dataclass
class Scores:
    """outcomes / values: (task key, variant key) → Outcomes / {metric: MetricValue};
    records: task key → task.describe() after fitting, with "chance": task.chance_levels()."""

    outcomes: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    records: dict = field(default_factory=dict)


class TaskScorer:
    """Fits ``tasks`` on ``make_context(embeddings)`` and scores every variant of ``variants``."""

    def __init__(
        self, tasks: dict, variants: list[Variant], make_context: Callable, *, release: bool = False,
        max_queued: int = 1, max_queued_bytes: int = QUEUED_BYTES,
    ) -> None:
        self.tasks = tasks
        self.release = release
        self.max_queued = max(1, int(max_queued))
        self.max_queued_bytes = max(0, int(max_queued_bytes))
        self._queued = 0  # variants submitted and not yet scored (the clean one not counted)
        self._queued_bytes = 0  # the bytes of their embeddings
        self._sizes: dict[str, int] = {}
        self._room = threading.Condition()
        self._stopped = False  # the scoring thread ended (finished, failed or cancelled)
        self.variants = {v.key: v for v in [CLEAN_VARIANT, *variants]}
        self.make_context = make_context
        self.scores = Scores()
        self._submitted: set[str] = set()
        self._waiting: list[str] = []  # ready before the clean embeddings
        self._order: list[str] = []  # the variants in the order they were submitted
        self._jobs: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self._context = None  # the clean context, once every task is fitted
        self._fit_over = threading.Event()  # the tasks are fitted, or the scoring thread ended
        self._cancelled = threading.Event()
        self._error: BaseException | None = None
        self._share = WorkShare(workers=2)  # this thread and the caller's, once neither has a variant left
        self._thread = threading.Thread(target=self._work, name="robustpath-scoring", daemon=True)
        self._thread.start()

    @property
    def total(self) -> int:
        return len(self.tasks) * len(self.variants)

    def ready(self, embeddings, keys: list[str]) -> None:
        """The embeddings of variant ``keys`` are complete (on_ready of compute_embeddings)."""
        self._ready(embeddings, keys, wait=True)

    def _ready(self, embeddings, keys: list[str], wait: bool) -> None:
        """ready(); ``wait``: whether to wait for room (not after the sweep: every embedding exists)."""
        if CLEAN_VARIANT.key in keys:
            self._submit(embeddings, [CLEAN_VARIANT.key], wait)
            keys, self._waiting = [*self._waiting, *[k for k in keys if k != CLEAN_VARIANT.key]], []
        if CLEAN_VARIANT.key not in self._submitted:
            self._waiting.extend(keys)
            return
        self._submit(embeddings, keys, wait)

    def finish(self, embeddings, progress: ProgressReporter) -> Scores:
        """Score what was not announced, help the scoring thread with what is still queued, wait for
        everything, and return the scores."""
        self._ready(embeddings, [key for key in self.variants if key not in self._submitted], wait=False)
        self._jobs.put(_STOP)
        progress.start("tasks", "Scoring tasks", self.total)
        tally = _Tally(self._done, progress)
        try:
            self._help(tally)
            self._share.serve(poll=tally.drain)  # blocks of the variants the scoring thread still scores
        except BaseException:
            self.cancel()
            raise
        tally.wait(self.total)
        self._thread.join()
        progress.finish("tasks")
        if self._error is not None:
            raise self._error
        self._order_scores()
        return self.scores

    def _help(self, tally: "_Tally") -> None:
        """Score queued variants in this thread until the queue holds only the scoring thread's stop."""
        self._fit_over.wait()
        while self._context is not None and self._error is None and not tally.failed:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is _STOP:  # the scoring thread's: leave it for the thread
                self._jobs.put(_STOP)
                return
            embeddings, key = job
            self._score(embeddings, self.variants[key], self._context, tally.advance)
            self._scored(embeddings, key)

    def _order_scores(self) -> None:
        """outcomes and values in the order a single scoring thread would have added them."""
        order = {key: index for index, key in enumerate(self._order)}
        tasks = {key: index for index, key in enumerate(self.tasks)}

        def rank(item):
            (task_key, variant_key), _ = item
            return order.get(variant_key, len(order)), tasks.get(task_key, len(tasks))

        self.scores.outcomes = dict(sorted(self.scores.outcomes.items(), key=rank))
        self.scores.values = dict(sorted(self.scores.values.items(), key=rank))

    def cancel(self, wait: float = 60.0) -> None:
        """Stop after the current task (the run failed or was interrupted) and wait for the thread.

        Waiting matters: a thread still inside native code (torch, BLAS) when the
        interpreter shuts down can abort the process instead of letting it exit.
        """
        self._cancelled.set()
        self._share.close()
        self._jobs.put(_STOP)
        self._thread.join(wait)

    @property
    def running(self) -> bool:
        """Whether the scoring thread is still alive."""
        return self._thread.is_alive()

    def _submit(self, embeddings, keys: list[str], wait: bool = True) -> None:
        for key in keys:
            if key not in self._submitted:
                self._submitted.add(key)
                self._order.append(key)
                if key != CLEAN_VARIANT.key:
                    self._wait_for_room(key, variant_bytes(embeddings, key), wait)
                self._jobs.put((embeddings, key))

    def _wait_for_room(self, key: str, size: int, wait: bool = True) -> None:
        """Block while ``max_queued`` variants wait to be scored and, with this one, hold more than
        ``max_queued_bytes`` (unless the scoring stopped or not ``wait``)."""
        def room() -> bool:
            return (self._queued < self.max_queued or self._queued_bytes + size <= self.max_queued_bytes
                    or self._stopped or not wait)

        def has_room() -> bool:
            with self._room:
                return room()

        self._share.help_until(has_room)  # meanwhile, score blocks of the variant that holds the sweep back
        with self._room:
            self._room.wait_for(room)
            self._queued += 1
            self._queued_bytes += size
            self._sizes[key] = size

    def _scored(self, embeddings, key: str) -> None:
        if self.release and key != CLEAN_VARIANT.key:
            embeddings.release(key)
        with self._room:
            if key != CLEAN_VARIANT.key:
                self._queued -= 1
                self._queued_bytes -= self._sizes.pop(key, 0)
            self._room.notify_all()

    def _work(self) -> None:
        try:
            while not self._cancelled.is_set():
                job = self._jobs.get()
                if job is _STOP:
                    self._share.serve()  # blocks of the variants the caller still scores
                    return
                embeddings, key = job
                if key == CLEAN_VARIANT.key:
                    context = self._fit(embeddings)
                    if context is None:
                        return
                self._score(embeddings, self.variants[key], context, self._done.put)
                self._scored(embeddings, key)
        except BaseException as exc:  # noqa: BLE001 - raised again by finish() in the caller's thread
            self._error = exc
            self._done.put(_STOP)
        finally:
            self._share.leave()  # (if it did not serve) the caller's serve() does not wait for this thread
            self._fit_over.set()
            with self._room:
                self._stopped = True
                self._room.notify_all()  # a waiting ready() sees that the thread ended

    def _fit(self, embeddings):
        """Fit every task on the clean context → the context (None when cancelled meanwhile)."""
        context = self.make_context(embeddings)
        for task_key, task in self.tasks.items():
            if self._cancelled.is_set():
                return None
            task.fit(context)
            self.scores.records[task_key] = {**task.describe(), "chance": task.chance_levels()}
        self._context = context
        self._fit_over.set()
        return context

    def _score(self, embeddings, variant: Variant, context, done: Callable) -> None:
        for task_key, task in self.tasks.items():
            if self._cancelled.is_set():
                return
            test = context.clean_test_embeddings if variant.is_clean else embeddings.variants[variant.key]
            train = None
            if task.needs_corrupted_training:  # retrieval with --gallery corrupted
                train = context.train_embeddings if variant.is_clean else embeddings.train_variants[variant.key]
            with self._share.attached():  # an idle or waiting thread may score blocks of it
                outcome = task.outcomes(test, train)
                values = task.score(outcome)
            self.scores.outcomes[(task_key, variant.key)] = outcome
            self.scores.values[(task_key, variant.key)] = values
            done(None)


class _Tally:
    """Advances the progress bar, in the calling thread, for the tasks scored by either thread."""

    def __init__(self, done: queue.Queue, progress: ProgressReporter) -> None:
        self.done = done
        self.progress = progress
        self.count = 0
        self.failed = False  # the scoring thread failed

    def advance(self, _=None) -> None:
        """One task scored in the calling thread; then those the scoring thread reported meanwhile."""
        self._step()
        self.drain()

    def drain(self) -> None:
        """Advance for the tasks the scoring thread reported meanwhile (without one of this thread's)."""
        while not self.failed:
            try:
                item = self.done.get_nowait()
            except queue.Empty:
                return
            self._take(item)

    def wait(self, total: int) -> None:
        """Block until ``total`` tasks are scored or the scoring thread failed."""
        while self.count < total and not self.failed:
            self._take(self.done.get())

    def _take(self, item) -> None:
        if item is _STOP:
            self.failed = True
        else:
            self._step()

    def _step(self) -> None:
        self.count += 1
        self.progress.advance("tasks")


def variant_bytes(embeddings, key: str) -> int:
    """The bytes of variant ``key``'s corrupted test (and training, with a corrupted gallery) embeddings."""
    arrays = (getattr(embeddings, "variants", {}).get(key), getattr(embeddings, "train_variants", {}).get(key))
    return sum(int(getattr(array, "nbytes", 0)) for array in arrays if array is not None)
