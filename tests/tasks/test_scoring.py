"""Scoring beside the sweep: variants are announced once, complete, clean first, before the sweep
ends; the scores equal those of a plain loop over the finished embeddings; errors reach the caller."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_fixtures import context_of, customvit, one_thread, small_dataset  # noqa: F401  (fixtures)

import corruptions
from robustpath.embedding import engine
from robustpath.errors import UsageError
from robustpath.util.progress import SilentProgress
from robustpath.tasks.scoring import TaskScorer
from robustpath.tasks import create_tasks
from robustpath.variants import CLEAN_VARIANT, Variant

CPU = torch.device("cpu")
PRESET = corruptions.load_preset("pathology")
VARIANTS = [Variant("hue", 2, "pre"), Variant("gaussian_blur", 2, "pre"), Variant("gaussian_blur", 2, "post"),
            Variant("contrast", 4, "post")]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):  # noqa: F811
    """Every test of this module on one torch thread."""


def sweep(encoder, dataset, **options):
    return engine.compute_embeddings(encoder, dataset, VARIANTS, preset=PRESET, seed=0, device=CPU, batch_size=4,
                                     **options)


def tasks():
    return {task.key: task for name in ("linear_probe", "retrieval", "embedding_drift") for task in create_tasks(name)}


def test_variants_are_announced_complete_clean_first_and_before_the_sweep_ends(customvit, small_dataset):  # noqa: F811
    announced, passes = [], []
    forward = engine._Forward.__call__

    def counting_forward(self, x):
        passes.append(len(x))
        return forward(self, x)

    def on_ready(embeddings, keys):
        arrays = [embeddings.clean] if keys == [CLEAN_VARIANT.key] else [embeddings.variants[k] for k in keys]
        announced.append((keys, len(passes), [array.copy() for array in arrays]))

    engine._Forward.__call__ = counting_forward
    try:
        final = sweep(customvit, small_dataset, on_ready=on_ready)
    finally:
        engine._Forward.__call__ = forward
    keys = [key for batch, _, _ in announced for key in batch]
    assert keys[0] == CLEAN_VARIANT.key and sorted(keys) == sorted([CLEAN_VARIANT.key, *(v.key for v in VARIANTS)])
    # 20 training + 10 test images clean, then 10 test images for each of 3 pipelines (blur pre = post at
    # 40 px): the clean embeddings are complete after 30 images, i.e. with the 8th of 15 passes of 4
    assert announced[0][1] == 8 and len(passes) == 15
    for batch, _, arrays in announced:
        finals = [final.clean] if batch == [CLEAN_VARIANT.key] else [final.variants[k] for k in batch]
        for early, late in zip(arrays, finals):
            np.testing.assert_array_equal(early, late)  # nothing changed after the announcement


def test_scores_equal_a_loop_over_the_finished_embeddings(customvit, small_dataset):  # noqa: F811
    make_context = context_of(small_dataset)
    scorer = TaskScorer(tasks(), VARIANTS, make_context)
    embeddings = sweep(customvit, small_dataset, on_ready=scorer.ready)
    scores = scorer.finish(embeddings, SilentProgress())
    context = make_context(embeddings)
    for key, task in tasks().items():
        task.fit(context)
        assert scores.records[key] == {**task.describe(), "chance": task.chance_levels()}
        for variant in [CLEAN_VARIANT, *VARIANTS]:
            test = context.clean_test_embeddings if variant.is_clean else embeddings.variants[variant.key]
            outcome = task.outcomes(test)
            early = scores.outcomes[(key, variant.key)]
            for name in ("predictions", "probabilities", "neighbours"):
                np.testing.assert_array_equal(getattr(early, name), getattr(outcome, name), err_msg=name)
            assert early.per_sample.keys() == outcome.per_sample.keys()
            for name, values in outcome.per_sample.items():
                np.testing.assert_array_equal(early.per_sample[name], values, err_msg=name)
            assert scores.values[(key, variant.key)] == task.score(outcome), (key, variant.key)


def test_without_announcements_finish_scores_everything(customvit, small_dataset):  # noqa: F811
    embeddings = sweep(customvit, small_dataset)
    scorer = TaskScorer(tasks(), VARIANTS, context_of(small_dataset))
    scores = scorer.finish(embeddings, SilentProgress())
    assert len(scores.values) == len(tasks()) * (len(VARIANTS) + 1)


class FailingTask:
    key = name = "failing"
    needs_corrupted_training = False

    def fit(self, context):
        pass

    def describe(self):
        return {}

    def chance_levels(self):
        return {}

    def outcomes(self, test, train=None):
        raise UsageError("the failing task fails")


def test_an_error_in_a_task_is_raised_by_finish(customvit, small_dataset):  # noqa: F811
    scorer = TaskScorer({"failing": FailingTask()}, VARIANTS, context_of(small_dataset))
    embeddings = sweep(customvit, small_dataset, on_ready=scorer.ready)
    with pytest.raises(UsageError, match="the failing task fails"):
        scorer.finish(embeddings, SilentProgress())


class SlowTask:
    """Wraps a task: every call to outcomes() waits, so that the sweep outpaces the scoring."""

    def __init__(self, task) -> None:
        self.task = task

    def __getattr__(self, name):
        return getattr(self.task, name)

    def outcomes(self, test, train=None):
        import time

        time.sleep(0.2)
        return self.task.outcomes(test, train)


def test_released_variants_leave_memory_once_scored_with_the_same_scores(customvit, small_dataset):  # noqa: F811
    import gc
    import weakref

    variants = [Variant("hue", severity, "pre") for severity in (1, 2, 3, 4)] + [Variant("contrast", 2, "pre"),
                                                                                Variant("brightness", 2, "pre")]

    def run(on_ready=None):
        return engine.compute_embeddings(customvit, small_dataset, variants, preset=PRESET, seed=0, device=CPU,
                                         batch_size=4, on_ready=on_ready)

    make_context = context_of(small_dataset)
    kept = TaskScorer(tasks(), variants, make_context)
    expected = kept.finish(run(kept.ready), SilentProgress()).values
    scorer = TaskScorer({key: SlowTask(task) for key, task in tasks().items()}, variants, make_context,
                        release=True, max_queued=1, max_queued_bytes=0)
    alive, most_alive = {}, [0]

    def on_ready(embeddings, keys):
        for key in keys:
            if key != CLEAN_VARIANT.key:
                alive[key] = weakref.ref(embeddings.variants[key])
        gc.collect()
        most_alive[0] = max(most_alive[0], sum(ref() is not None for ref in alive.values()))
        scorer.ready(embeddings, keys)

    embeddings = run(on_ready)
    scores = scorer.finish(embeddings, SilentProgress())
    gc.collect()
    assert scores.values == expected
    assert embeddings.variants == {} and embeddings.clean.any()
    assert all(ref() is None for ref in alive.values())  # nothing else holds a scored variant
    assert len(alive) == 6 and most_alive[0] <= 3  # the ready one, one queued, one being scored


class SlowFittingTask(FailingTask):
    """fit() takes a while and counts its calls; outcomes() is never reached in the test."""

    fits = 0

    def fit(self, context):
        import time

        type(self).fits += 1
        time.sleep(0.3)


def test_cancel_stops_between_tasks_and_waits_for_the_thread(customvit, small_dataset):  # noqa: F811
    embeddings = sweep(customvit, small_dataset)
    slow = {f"slow{i}": SlowFittingTask() for i in range(5)}
    scorer = TaskScorer(slow, VARIANTS, context_of(small_dataset))
    scorer.ready(embeddings, [CLEAN_VARIANT.key])
    import time

    deadline = time.monotonic() + 10
    while SlowFittingTask.fits == 0 and time.monotonic() < deadline:  # the first fit has begun
        time.sleep(0.01)
    scorer.cancel()
    assert not scorer.running  # cancel() returned only once the thread had ended
    assert 1 <= SlowFittingTask.fits < 5  # the fits after the cancel did not run


class GatedFitTask:
    """Wraps a task: fit() waits until ``gate`` is set (a probe's cross-validation that takes a while)."""

    def __init__(self, task, gate) -> None:
        self.task, self.gate = task, gate
        self.key, self.name, self.needs_corrupted_training = task.key, task.name, task.needs_corrupted_training

    def fit(self, context):
        self.gate.wait(30)
        self.task.fit(context)

    def __getattr__(self, name):
        return getattr(self.task, name)


def announce_all(scorer, embeddings) -> "threading.Thread":
    """ready() for clean, then for every variant one at a time, in a thread (it may have to wait)."""
    import threading

    def announce():
        scorer.ready(embeddings, [CLEAN_VARIANT.key])
        for variant in VARIANTS:
            scorer.ready(embeddings, [variant.key])

    thread = threading.Thread(target=announce, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(("budget", "held_back"), [(None, False), (0, True)])
def test_small_variants_wait_beside_a_long_fit_within_the_byte_budget(customvit, small_dataset, budget, held_back):  # noqa: F811
    import threading

    embeddings = sweep(customvit, small_dataset)
    expected = TaskScorer(tasks(), VARIANTS, context_of(small_dataset)).finish(embeddings, SilentProgress()).values
    gate = threading.Event()
    options = {} if budget is None else {"max_queued_bytes": budget}
    gated = {key: GatedFitTask(task, gate) for key, task in tasks().items()}
    scorer = TaskScorer(gated, VARIANTS, context_of(small_dataset), max_queued=1, **options)
    announcing = announce_all(scorer, embeddings)
    announcing.join(5)  # every ready() returns at once unless it waits for the fit
    assert announcing.is_alive() is held_back  # 0 bytes: the second variant waits for the first to be scored
    gate.set()
    announcing.join(30)
    assert not announcing.is_alive()
    assert scorer.finish(embeddings, SilentProgress()).values == expected


class ThreadRecordingTask(SlowTask):
    """A slow task that records which thread computed the outcomes of which test embeddings."""

    def __init__(self, task, record: list) -> None:
        super().__init__(task)
        self.record = record

    def outcomes(self, test, train=None):
        import threading

        self.record.append((threading.current_thread().name, test))
        return super().outcomes(test, train)


def test_after_the_sweep_the_caller_scores_queued_variants_with_the_same_scores(customvit, small_dataset):  # noqa: F811
    variants = [Variant("hue", severity, "pre") for severity in (1, 2, 3, 4)] + [Variant("contrast", 2, "pre")]
    embeddings = engine.compute_embeddings(customvit, small_dataset, variants, preset=PRESET, seed=0, device=CPU,
                                           batch_size=4)
    make_context = context_of(small_dataset)
    record: list = []
    slow = {key: ThreadRecordingTask(task, record) for key, task in tasks().items()}
    scores = TaskScorer(slow, variants, make_context).finish(embeddings, SilentProgress())
    by_variant = {}
    for thread, test in record:
        keys = [key for key, array in embeddings.variants.items() if array is test]
        if keys:
            by_variant.setdefault(keys[0], set()).add(thread)
    assert sorted(by_variant) == sorted(v.key for v in variants)
    assert set().union(*by_variant.values()) == {"MainThread", "robustpath-scoring"}  # both threads scored variants
    assert all(len(names) == 1 for names in by_variant.values())  # every task of a variant in the same thread
    context = make_context(embeddings)  # the reference: one loop, in this thread, over fresh tasks
    for key, task in tasks().items():
        task.fit(context)
        for variant in [CLEAN_VARIANT, *variants]:
            test = context.clean_test_embeddings if variant.is_clean else embeddings.variants[variant.key]
            outcome = task.outcomes(test)
            assert scores.values[(key, variant.key)] == task.score(outcome), (key, variant.key)
            np.testing.assert_array_equal(scores.outcomes[(key, variant.key)].predictions, outcome.predictions)
    # in the order one scoring thread adds them: variant by variant, the tasks in order within each
    order = [(key, v.key) for v in [CLEAN_VARIANT, *variants] for key in tasks()]
    assert list(scores.values) == order and list(scores.outcomes) == order


class FailingInTheCallerTask(FailingTask):
    """Fails only when the calling thread (not the scoring thread) computes outcomes."""

    def outcomes(self, test, train=None):
        import threading
        import time

        time.sleep(0.2)
        if threading.current_thread() is threading.main_thread():
            raise UsageError("the caller's task fails")
        from robustpath.tasks.outcomes import Outcomes

        return Outcomes(per_sample={"x": np.zeros(len(test))})

    def score(self, outcomes):
        return {}


def test_an_error_while_the_caller_scores_is_raised_and_the_thread_stopped(customvit, small_dataset):  # noqa: F811
    embeddings = sweep(customvit, small_dataset)
    scorer = TaskScorer({"failing": FailingInTheCallerTask()}, VARIANTS, context_of(small_dataset))
    with pytest.raises(UsageError, match="the caller's task fails"):
        scorer.finish(embeddings, SilentProgress())
    assert not scorer.running


def test_the_shared_bootstrap_indices_are_the_same_drawn_from_several_threads():
    from concurrent.futures import ThreadPoolExecutor

    from robustpath.tasks import metrics

    metrics._shared_indices.cache_clear()
    n, seed, resamples = 3000, 7, 200
    expected = np.random.default_rng([seed, n]).integers(0, n, size=(resamples, n))  # numpy by hand
    with ThreadPoolExecutor(4) as pool:
        drawn = list(pool.map(lambda _: np.concatenate(list(metrics.bootstrap_index_blocks(n, seed, resamples))),
                              range(8)))
    for indices in drawn:
        np.testing.assert_array_equal(indices, expected)


def test_the_last_variant_is_scored_in_two_threads_with_the_same_outcomes(customvit, small_dataset, monkeypatch):  # noqa: F811
    """After the sweep the thread without a variant left scores query blocks of the other's (identity ranks,
    one query row per block here); the outcomes equal a one-thread loop's."""
    import threading
    import time

    from robustpath.tasks import retrieval

    variants = [Variant("hue", 2, "pre")]
    embeddings = engine.compute_embeddings(customvit, small_dataset, variants, preset=PRESET, seed=0, device=CPU,
                                           batch_size=4)
    make_context = context_of(small_dataset)
    corrupted = np.asarray(embeddings.variants[variants[0].key], dtype=np.float64)
    variant_blocks: list = []  # the thread of each block of the variant's queries
    plain_block_ranks = retrieval._block_ranks

    def slow_block_ranks(queries, *args):
        if any(np.array_equal(queries[0], row) for row in corrupted):
            variant_blocks.append(threading.current_thread().name)
            time.sleep(0.05)  # time for the idle thread to take the next block
        return plain_block_ranks(queries, *args)

    test_rows = int((small_dataset.splits == "test").sum())
    monkeypatch.setattr(retrieval, "_BLOCK_ELEMENTS", test_rows)  # one query row per block (clean gallery: the test split)
    monkeypatch.setattr(retrieval, "_block_ranks", slow_block_ranks)
    scorer = TaskScorer({task.key: task for task in create_tasks("identity")}, variants, make_context)
    scorer.ready(embeddings, [CLEAN_VARIANT.key])
    scorer.ready(embeddings, [variants[0].key])
    deadline = time.monotonic() + 30
    while not variant_blocks and time.monotonic() < deadline:  # the scoring thread has started the variant
        time.sleep(0.005)
    scores = scorer.finish(embeddings, SilentProgress())  # nothing queued: this thread serves the scoring thread
    assert variant_blocks[0] == "robustpath-scoring" and len(variant_blocks) == test_rows
    assert set(variant_blocks) == {"MainThread", "robustpath-scoring"}  # the variant's blocks ran in both threads
    monkeypatch.setattr(retrieval, "_block_ranks", plain_block_ranks)
    context = make_context(embeddings)
    for key, task in {task.key: task for task in create_tasks("identity")}.items():
        task.fit(context)
        for variant in [CLEAN_VARIANT, *variants]:
            test = context.clean_test_embeddings if variant.is_clean else embeddings.variants[variant.key]
            outcome = task.outcomes(test)
            assert scores.values[(key, variant.key)] == task.score(outcome), (key, variant.key)
            for name, values in outcome.per_sample.items():
                np.testing.assert_array_equal(scores.outcomes[(key, variant.key)].per_sample[name], values)


def test_a_ready_that_waits_for_room_scores_blocks_of_the_variant_it_waits_for(customvit, small_dataset, monkeypatch):  # noqa: F811
    """With one variant not yet scored, announcing the next waits; meanwhile the sweep's thread scores
    query blocks of the first one (identity ranks, one row per block); the scores are a loop's."""
    import threading
    import time

    from robustpath.tasks import retrieval

    variants = [Variant("hue", 2, "pre"), Variant("hue", 4, "pre")]
    embeddings = engine.compute_embeddings(customvit, small_dataset, variants, preset=PRESET, seed=0, device=CPU,
                                           batch_size=4)
    first = np.asarray(embeddings.variants[variants[0].key], dtype=np.float64)
    threads_of_first: list = []
    plain_block_ranks = retrieval._block_ranks

    def slow_block_ranks(queries, *args):
        if any(np.array_equal(queries[0], row) for row in first):
            threads_of_first.append(threading.current_thread().name)
            time.sleep(0.05)
        return plain_block_ranks(queries, *args)

    test_rows = int((small_dataset.splits == "test").sum())
    monkeypatch.setattr(retrieval, "_BLOCK_ELEMENTS", test_rows)
    monkeypatch.setattr(retrieval, "_block_ranks", slow_block_ranks)
    make_context = context_of(small_dataset)
    scorer = TaskScorer({task.key: task for task in create_tasks("identity")}, variants, make_context,
                        max_queued=1, max_queued_bytes=0)
    scorer.ready(embeddings, [CLEAN_VARIANT.key])
    scorer.ready(embeddings, [variants[0].key])
    scorer.ready(embeddings, [variants[1].key])  # waits until the first is scored, scoring blocks of it meanwhile
    assert len(threads_of_first) == test_rows and "MainThread" in threads_of_first
    scores = scorer.finish(embeddings, SilentProgress())
    monkeypatch.setattr(retrieval, "_block_ranks", plain_block_ranks)
    context = make_context(embeddings)
    for key, task in {task.key: task for task in create_tasks("identity")}.items():
        task.fit(context)
        for variant in variants:
            assert scores.values[(key, variant.key)] == task.score(task.outcomes(embeddings.variants[variant.key]))
