"""The windowed sweep order: at most one window of corrupted pipelines in flight, whatever the number of chunks.

The order is checked by hand on a tiny plan; a sweep whose test split spans several
chunks gives exactly the embeddings of the chunk-by-chunk order of earlier versions (one
window), keeps at most the stated number of corrupted arrays alive (weak references),
decodes each test image once (within KEEP_DECODED_BYTES) or once per window, and resumes
from its store after an interruption.
"""
from __future__ import annotations

import gc
import weakref
from dataclasses import replace

import numpy as np
import pytest
import torch
from engine_fixtures import context_of, customvit, one_thread, small_dataset  # noqa: F401  (fixtures)

import corruptions
from robustpath.data.dataset import ArrayReader
from robustpath.embedding import decoded, engine, plan
from robustpath.embedding.cache import EmbeddingKeys, EmbeddingStore, StoreChain, sample_digests
from robustpath.embedding.decoded import chunks_to_keep, decode_visits
from robustpath.embedding.plan import Chunk, Pipeline, Target, plan_stream, window_size
from robustpath.tasks import create_tasks
from robustpath.tasks.scoring import TaskScorer
from robustpath.util.progress import SilentProgress
from robustpath.variants import CLEAN_VARIANT, Variant

CPU = torch.device("cpu")
PRESET = corruptions.load_preset("pathology")
# seven distinct pipelines, one of them random (markup)
VARIANTS = [Variant("hue", severity, "pre") for severity in (1, 2, 3, 4)] + [
    Variant("markup", 3, "pre"), Variant("contrast", 2, "post"), Variant("brightness", 2, "pre")]
IMAGE_BYTES = 40 * 40 * 3  # small_dataset: 40 px patches, 20 training and 10 test images
MAX_QUEUED = 1


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):  # noqa: F811
    """Every test of this module on one torch thread."""


@pytest.fixture()
def three_per_chunk(monkeypatch):
    """Chunks of 3 images: the test split spans 4 chunks (3 + 3 + 3 + 1), the training split 7."""
    monkeypatch.setattr(plan, "CHUNK_BYTES", 3 * IMAGE_BYTES)


def set_window(monkeypatch, variants: int, rows: int, dim: int) -> None:
    """WINDOW_BYTES for windows of ``variants`` corrupted pipelines of ``rows`` × ``dim`` float32."""
    monkeypatch.setattr(plan, "WINDOW_BYTES", variants * rows * dim * 4)


def sweep(encoder, dataset, **options):
    options = {"preset": PRESET, "seed": 0, "device": CPU, "batch_size": 4, **options}
    return engine.compute_embeddings(encoder, dataset, VARIANTS, **options)


class _Tiny:
    """What plan_stream reads of a dataset: 1 × 1 px images, 3 training then 3 test samples."""

    native_size = (1, 1)

    def indices(self, split: str) -> np.ndarray:
        return np.array([0, 1, 2]) if split == "train" else np.array([3, 4, 5])


def _order(window: int, corrupt_training: bool, monkeypatch) -> list[tuple[int, str]]:
    monkeypatch.setattr(plan, "CHUNK_BYTES", 2 * 3)  # two 1-px images per chunk
    pipelines = [Pipeline(Variant("hue", s, "pre"), "pre", [f"p{s}"]) for s in (1, 2, 3)]
    targets = {p.name: Target(3, 4) for p in pipelines}
    stream = plan_stream(_Tiny(), pipelines, Target(6, 4), targets, dict(targets) if corrupt_training else {},
                         corrupt_training, window)
    starts = [segment.start for segment in stream.segments]
    sizes = [len(segment.chunk.indices) for segment in stream.segments]
    assert starts == list(np.cumsum([0, *sizes[:-1]])) and stream.total == sum(sizes)
    return [(segment.chunk.number, segment.pipeline.name) for segment in stream.segments]


def test_stream_order_by_hand(monkeypatch):
    clean = CLEAN_VARIANT.key
    # training chunks 0 (2 images), 1 (1); test chunks 2 (2), 3 (1)
    assert _order(2, False, monkeypatch) == [
        (0, clean), (1, clean), (2, clean), (2, "p1"), (2, "p2"), (3, clean), (3, "p1"), (3, "p2"),
        (2, "p3"), (3, "p3")]
    assert _order(2, True, monkeypatch) == [
        (0, clean), (0, "p1"), (0, "p2"), (1, clean), (1, "p1"), (1, "p2"),
        (2, clean), (2, "p1"), (2, "p2"), (3, clean), (3, "p1"), (3, "p2"),
        (0, "p3"), (1, "p3"), (2, "p3"), (3, "p3")]
    # one window: the chunk-by-chunk order of earlier versions
    assert _order(3, False, monkeypatch) == [
        (0, clean), (1, clean), (2, clean), (2, "p1"), (2, "p2"), (2, "p3"), (3, clean), (3, "p1"), (3, "p2"),
        (3, "p3")]


def test_window_size_by_hand(monkeypatch):
    monkeypatch.setattr(plan, "WINDOW_BYTES", 1000)
    assert window_size(7, rows=10, dim=5) == 5  # 1000 // 200
    assert window_size(3, rows=10, dim=5) == 3  # all of them fit
    assert window_size(7, rows=100, dim=5) == 1  # one array is larger than the budget: still one
    assert window_size(0, rows=10, dim=5) == 1


def test_decode_visits_by_hand(monkeypatch):
    a, b, c = (Chunk(number, np.array([number, number]), np.array([0, 1])) for number in range(3))
    passes = [[a], [a, b], [b], [c], [a], [a], [b]]
    assert [chunk.number for chunk in decode_visits(passes)] == [0, 1, 2, 0, 1]
    assert [chunk.number for chunk in decode_visits(passes, frozenset({0}))] == [0, 1, 2, 1]
    monkeypatch.setattr(decoded, "KEEP_DECODED_BYTES", 4 * 10)
    assert chunks_to_keep(passes, image_bytes=10) == {0, 1}  # decoded twice each: 4 images of 10 bytes
    monkeypatch.setattr(decoded, "KEEP_DECODED_BYTES", 4 * 10 - 1)
    assert chunks_to_keep(passes, image_bytes=10) == frozenset()


@pytest.mark.parametrize("corrupt_training", [False, True])
def test_windows_give_the_embeddings_of_the_chunk_by_chunk_order(customvit, small_dataset, three_per_chunk,  # noqa: F811
                                                                 monkeypatch, corrupt_training):
    monkeypatch.setattr(plan, "WINDOW_BYTES", 1 << 40)
    whole = sweep(customvit, small_dataset, corrupt_training=corrupt_training, batch_size=7)
    rows = len(small_dataset) if corrupt_training else 10
    set_window(monkeypatch, 2, rows, customvit.embed_dim)
    windowed = sweep(customvit, small_dataset, corrupt_training=corrupt_training, batch_size=7)
    np.testing.assert_array_equal(windowed.clean, whole.clean)
    assert whole.variants.keys() == windowed.variants.keys() == {v.key for v in VARIANTS}
    assert whole.train_variants.keys() == windowed.train_variants.keys()
    for key in whole.variants:
        np.testing.assert_array_equal(windowed.variants[key], whole.variants[key])
    for key in whole.train_variants:
        np.testing.assert_array_equal(windowed.train_variants[key], whole.train_variants[key])
    assert windowed.stats["images_forwarded"] == whole.stats["images_forwarded"]


def _counting(dataset):
    """``dataset`` whose reader counts the reads of each image."""
    reads = np.zeros(len(dataset), dtype=np.int64)

    class Counting(ArrayReader):
        def __call__(self, index: int) -> np.ndarray:
            reads[index] += 1
            return super().__call__(index)

    return replace(dataset, reader=Counting(dataset.reader.images)), reads


def test_test_images_are_decoded_once_or_once_per_window_beyond_the_budget(customvit, small_dataset,  # noqa: F811
                                                                            three_per_chunk, monkeypatch):
    set_window(monkeypatch, 2, 10, customvit.embed_dim)  # 7 pipelines in windows of 2: 4 windows
    dataset, reads = _counting(small_dataset)
    sweep(customvit, dataset)  # the 10 test images fit KEEP_DECODED_BYTES: kept decoded across windows
    assert (reads == 1).all()
    monkeypatch.setattr(decoded, "KEEP_DECODED_BYTES", 10 * IMAGE_BYTES - 1)
    dataset, reads = _counting(small_dataset)
    result = sweep(customvit, dataset)
    assert (reads[dataset.indices("train")] == 1).all()
    assert (reads[dataset.indices("test")] == 4).all()
    np.testing.assert_array_equal(result.variants["hue/1/pre"], sweep(customvit, small_dataset).variants["hue/1/pre"])
    monkeypatch.setattr(plan, "CHUNK_BYTES", 10 * IMAGE_BYTES)  # the test split in one chunk: decoded once
    dataset, reads = _counting(small_dataset)
    sweep(customvit, dataset)
    assert (reads == 1).all()


TASKS = ("linear_probe", "retrieval")


def _scores_and_most_alive(encoder, dataset, monkeypatch, **options) -> tuple[dict, int]:
    """Sweep with the variants scored and released beside it (TaskScorer): the scores, and the most
    corrupted test arrays alive at once (weak references to each array when it is made, counted at
    every forward pass and around every announcement)."""
    made, most_alive = [], [0]
    array, forward = Target.array, engine._Forward.__call__

    def recording_array(self):
        known = self._array is not None
        result = array(self)
        if not known and self.shape[0] == len(dataset.indices("test")) and self.shape[0] != len(dataset):
            made.append(weakref.ref(result))
        return result

    def count() -> None:
        gc.collect()
        most_alive[0] = max(most_alive[0], sum(ref() is not None for ref in made))

    def counting_forward(self, x):
        count()
        return forward(self, x)

    monkeypatch.setattr(Target, "array", recording_array)
    monkeypatch.setattr(engine._Forward, "__call__", counting_forward)
    tasks = {task.key: task for name in TASKS for task in create_tasks(name)}
    scorer = TaskScorer(tasks, VARIANTS, context_of(dataset), release=True, max_queued=MAX_QUEUED,
                        max_queued_bytes=0)  # the count bound, not the byte budget

    def on_ready(embeddings, keys):
        count()
        scorer.ready(embeddings, keys)
        count()

    embeddings = sweep(encoder, dataset, on_ready=on_ready, **options)
    scores = scorer.finish(embeddings, SilentProgress())
    monkeypatch.setattr(Target, "array", array)
    monkeypatch.setattr(engine._Forward, "__call__", forward)
    count()
    assert len(made) == len(VARIANTS) and embeddings.variants == {}
    assert all(ref() is None for ref in made)  # nothing else holds a scored variant
    return scores.values, most_alive[0]


def _expected_scores(encoder, dataset) -> dict:
    """The scores of every variant from one plain sweep (one window), all arrays kept."""
    tasks = {task.key: task for name in TASKS for task in create_tasks(name)}
    whole = engine.compute_embeddings(encoder, dataset, VARIANTS, preset=PRESET, seed=0, device=CPU, batch_size=4)
    scorer = TaskScorer(tasks, VARIANTS, context_of(dataset))
    scorer.ready(whole, [CLEAN_VARIANT.key, *whole.variants])
    return scorer.finish(whole, SilentProgress()).values


def test_at_most_a_window_and_the_queue_of_variants_are_alive(customvit, small_dataset, three_per_chunk,  # noqa: F811
                                                              monkeypatch):
    monkeypatch.setattr(plan, "WINDOW_BYTES", 1 << 40)
    expected = _expected_scores(customvit, small_dataset)
    window = 2
    set_window(monkeypatch, window, 10, customvit.embed_dim)
    values, most_alive = _scores_and_most_alive(customvit, small_dataset, monkeypatch)
    assert values == expected
    assert window <= most_alive <= window + MAX_QUEUED  # the window being filled, the variants queued or being scored


def test_a_run_read_from_its_store_keeps_no_more_alive(customvit, small_dataset, three_per_chunk,  # noqa: F811
                                                       monkeypatch, tmp_path):
    """Entries are read in stream order and each variant is announced once read: a resumed run
    does not hold every stored variant at once."""
    monkeypatch.setattr(plan, "WINDOW_BYTES", 1 << 40)
    expected = _expected_scores(customvit, small_dataset)
    window = 2
    set_window(monkeypatch, window, 10, customvit.embed_dim)
    keys = _keys(customvit, small_dataset)
    sweep(customvit, small_dataset, store=StoreChain([EmbeddingStore(tmp_path, strict=True)]), keys=keys)
    values, most_alive = _scores_and_most_alive(
        customvit, small_dataset, monkeypatch, store=StoreChain([EmbeddingStore(tmp_path, strict=True)]), keys=keys)
    assert values == expected
    assert most_alive <= window + MAX_QUEUED


def _keys(encoder, dataset) -> EmbeddingKeys:
    return EmbeddingKeys(
        model={"weights_sha256": "x", "source": "test"}, preprocessing=encoder.preprocessing.as_dict(),
        native_size=tuple(dataset.native_size), digests=sample_digests(dataset), sample_ids=dataset.sample_ids,
        seed=0, versions={"robustpath": "test"}, device="cpu", precision="fp32", compiled=False,
    )


class _Interrupted(Exception):
    pass


def test_an_interrupted_windowed_sweep_resumes_from_its_store(customvit, small_dataset, three_per_chunk,  # noqa: F811
                                                              monkeypatch, tmp_path):
    set_window(monkeypatch, 2, 10, customvit.embed_dim)
    keys = _keys(customvit, small_dataset)
    uninterrupted = sweep(customvit, small_dataset)
    forward, passes = engine._Forward.__call__, [0]

    def dying_forward(self, x):
        passes[0] += 1
        if passes[0] > 20:
            raise _Interrupted()
        return forward(self, x)

    monkeypatch.setattr(engine._Forward, "__call__", dying_forward)
    with pytest.raises(_Interrupted):
        sweep(customvit, small_dataset, store=StoreChain([EmbeddingStore(tmp_path, strict=True)]), keys=keys)
    monkeypatch.setattr(engine._Forward, "__call__", forward)
    resumed = sweep(customvit, small_dataset, store=StoreChain([EmbeddingStore(tmp_path, strict=True)]), keys=keys)
    assert resumed.stats["entries_reused"]["run folder"] > 0
    assert 0 < resumed.stats["images_forwarded"] < uninterrupted.stats["images_forwarded"]
    np.testing.assert_array_equal(resumed.clean, uninterrupted.clean)
    for key in uninterrupted.variants:
        np.testing.assert_array_equal(resumed.variants[key], uninterrupted.variants[key])


class _Flaky:
    """``encoder`` that raises torch.OutOfMemoryError for forward passes larger than ``limit`` images."""

    def __init__(self, encoder, limit):
        self.encoder, self.limit = encoder, limit
        self.embed_dim, self.preprocessing, self.name = encoder.embed_dim, encoder.preprocessing, encoder.name

    def to(self, device):
        return self

    def encode_image(self, x):
        if len(x) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.encoder.encode_image(x)


def test_out_of_memory_in_a_windowed_sweep_keeps_the_results(customvit, small_dataset, three_per_chunk,  # noqa: F811
                                                             monkeypatch):
    set_window(monkeypatch, 2, 10, customvit.embed_dim)
    reference = sweep(customvit, small_dataset, batch_size=8)
    result = sweep(_Flaky(customvit, limit=3), small_dataset, batch_size=8)
    assert result.stats["batch_size"] == 2
    np.testing.assert_allclose(result.clean, reference.clean, rtol=0, atol=1e-6)
    for key in reference.variants:
        np.testing.assert_allclose(result.variants[key], reference.variants[key], rtol=0, atol=1e-6)
