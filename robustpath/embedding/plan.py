"""The stream plan of the sweep: distinct pipelines, chunks of samples, and the segments they make.

The samples are cut into chunks (at most CHUNK_BYTES of decoded uint8 images; the
chunking depends only on the split and the image size).  Every sample gets the clean
pipeline; test samples (all samples with ``corrupt_training``) also get one pipeline per
distinct variant.  A segment is all rows of one chunk through one pipeline: the unit that
is stored and reused (robustpath.embedding.cache).

The order of the stream.  The corrupted pipelines are taken in windows of ``window``
(``window_size``: as many as WINDOW_BYTES of their embeddings allow, at least one), and
each window goes over all chunks before the next one starts: window by window; within a
window, training chunks, then test chunks; chunk by chunk, pipeline by pipeline, the
clean pipeline first (in the first window only).  So at most ``window`` corrupted
pipelines are partly embedded at any time, and their arrays are made when first written
(``Target``): the memory of the embeddings in flight does not grow with the number of
variants, whatever the number of chunks.  Cost: a chunk that carries corrupted pipelines
is read by every window (ceil(pipelines / window) times); it is decoded once when the
chunks read by several windows fit KEEP_DECODED_BYTES together (they then stay decoded;
robustpath.embedding.decoded), or when consecutive forward passes read it (a test split
of one chunk), and otherwise once per window.  With one window, or a test split of one
chunk and no ``corrupt_training``, the order is the chunk-by-chunk order of earlier
versions (the same forward passes).  Training chunks come first in every window (their
clean embeddings complete early, so that tasks can be fitted while the corrupted test
images are still being embedded).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustpath.variants import CLEAN_VARIANT, Variant, distinct_pipelines

CHUNK_BYTES = 32 << 20  # decoded uint8 images per chunk (a store entry covers one chunk)
WINDOW_BYTES = 1 << 30  # float32 embeddings of the corrupted pipelines that are filled at once


def window_size(pipeline_count: int, rows: int, dim: int) -> int:
    """Corrupted pipelines per window: as many (rows, dim) float32 arrays as fit WINDOW_BYTES, at least one
    (all of them, ``pipeline_count``, when they fit)."""
    fitting = WINDOW_BYTES // max(1, 4 * rows * dim)
    return int(max(1, min(pipeline_count, fitting)))


def resize_is_identity(native_size: tuple[int, int], prep) -> bool:
    """True when ``resize_to_input`` returns images of ``native_size`` unchanged."""
    out_h, out_w = prep.input_size
    return tuple(native_size) == (out_h, out_w) and prep.resize_size in (None, max(out_h, out_w))


@dataclass
class Pipeline:
    """One distinct image pipeline; ``keys`` are the variant keys that share it."""

    variant: Variant
    stage: str
    keys: list[str]
    corruption: object | None = None  # corruptions.Corruption

    @property
    def name(self) -> str:
        return self.keys[0]

    def facts(self) -> dict:
        if self.corruption is None:
            return {"corruption": "none"}
        return {
            "corruption": self.variant.corruption, "operation": self.corruption.operation,
            "parameter": self.corruption.parameter(self.variant.severity), "severity": self.variant.severity,
            "stage": self.stage,
        }


class Target:
    """The (rows, dim) float32 array that one pipeline's segments of one split fill, made when first
    written; ``on_create(array)`` is called then (the caller records it, e.g. in Embeddings)."""

    def __init__(self, rows: int, dim: int, on_create=None, array: np.ndarray | None = None) -> None:
        self.shape = (int(rows), int(dim))
        self.on_create = on_create
        self._array = array

    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.zeros(self.shape, dtype=np.float32)
            if self.on_create is not None:
                self.on_create(self._array)
        return self._array


@dataclass
class Chunk:
    number: int
    indices: np.ndarray  # dataset indices, in order
    positions: np.ndarray  # rows of these samples in their split's arrays


@dataclass
class Segment:
    """All rows of one chunk through one pipeline: the unit that is stored and reused."""

    chunk: Chunk
    pipeline: Pipeline
    start: int  # offset in the stream of items
    target: Target | None  # None once its pipeline is complete (the array is then the caller's)
    rows: np.ndarray  # rows of ``target`` for the chunk's samples
    key: dict | None = None
    remaining: int = 0
    done: bool = False
    source: str | None = None  # where a reused entry came from


@dataclass
class StreamPlan:
    """The clean pipeline, the corrupted ones, and the segments of the stream in order."""

    clean: Pipeline
    pipelines: list[Pipeline]
    segments: list[Segment]
    total: int  # items in the stream

    @property
    def all_pipelines(self) -> list[Pipeline]:
        return [self.clean, *self.pipelines]


def build_pipelines(variants: list[Variant], preset, native_size, prep) -> list[Pipeline]:
    """The distinct corrupted pipelines of ``variants`` (pre and post share one when the resize is a no-op)."""
    import corruptions

    groups = distinct_pipelines(variants, resize_is_identity(native_size, prep))
    return [
        Pipeline(group[0], stage, [v.key for v in group], corruptions.get_corruption(corruption, preset))
        for (corruption, _, stage), group in groups.items()
    ]


def cut_chunks(indices: np.ndarray, chunk_len: int, first_number: int) -> list[Chunk]:
    chunks = []
    for number, begin in enumerate(range(0, len(indices), chunk_len), start=first_number):
        positions = np.arange(begin, min(begin + chunk_len, len(indices)))
        chunks.append(Chunk(number, indices[positions], positions))
    return chunks


def plan_stream(dataset, pipelines: list[Pipeline], clean: Target, test_targets: dict, train_targets: dict,
                corrupt_training: bool, window: int) -> StreamPlan:
    """The segments of the stream in the order of the module docstring.

    ``clean``: the (N, D) target of every sample; ``test_targets`` / ``train_targets``: pipeline name →
    (N_test, D) / (N_train, D) targets (``train_targets`` empty without ``corrupt_training``);
    ``window``: corrupted pipelines per window (>= 1).
    """
    height, width = dataset.native_size
    chunk_len = max(1, CHUNK_BYTES // (height * width * 3))
    train_chunks = cut_chunks(dataset.indices("train"), chunk_len, 0)
    test_chunks = cut_chunks(dataset.indices("test"), chunk_len, len(train_chunks))
    clean_pipeline = Pipeline(CLEAN_VARIANT, CLEAN_VARIANT.stage, [CLEAN_VARIANT.key])
    segments: list[Segment] = []
    parts = [(train_chunks, train_targets if corrupt_training else {}), (test_chunks, test_targets)]
    for first in range(0, max(1, len(pipelines)), max(1, window)):
        corrupted = pipelines[first : first + window]
        for chunks, targets in parts:
            for chunk in chunks:
                if first == 0:
                    segments.append(_segment(chunk, clean_pipeline, segments, clean, chunk.indices))
                for pipeline in (p for p in corrupted if p.name in targets):
                    segments.append(_segment(chunk, pipeline, segments, targets[pipeline.name], chunk.positions))
    total = segments[-1].start + len(segments[-1].chunk.indices) if segments else 0
    return StreamPlan(clean_pipeline, pipelines, segments, total)


def _segment(chunk: Chunk, pipeline: Pipeline, before: list[Segment], target: Target, rows: np.ndarray) -> Segment:
    """The segment of ``chunk`` through ``pipeline`` that follows the segments ``before`` in the stream."""
    start = before[-1].start + len(before[-1].chunk.indices) if before else 0
    return Segment(chunk, pipeline, start, target, rows, remaining=len(chunk.indices))


def key_segments(segments: list[Segment], keys, batch_size: int, total: int) -> None:
    """Each segment's store key: its pipeline, samples and the forward passes they go through
    (the last bits of an embedding can depend on the size of its pass and its place in it)."""
    from robustpath.embedding.cache import forward_pass_layout

    for segment in segments:
        pipeline, count = segment.pipeline, len(segment.chunk.indices)
        random = bool(pipeline.corruption is not None and pipeline.corruption.random)
        segment.key = keys.key(pipeline.facts(), segment.chunk.indices, random=random,
                               passes=forward_pass_layout(segment.start, count, batch_size, total))


def entry_digests(pipelines: list[Pipeline], segments: list[Segment]) -> dict[str, list[str]]:
    """Variant key → the key digests of the store entries its pipeline is made of."""
    from robustpath.embedding.cache import key_digest

    own: dict[int, list[str]] = {}
    for segment in segments:
        own.setdefault(id(segment.pipeline), []).append(key_digest(segment.key))
    return {key: own.get(id(pipeline), []) for pipeline in pipelines for key in pipeline.keys}
