"""The stream plan of the sweep: distinct pipelines, chunks of samples, and the segments they make.

The samples are cut into chunks (at most CHUNK_BYTES of decoded uint8 images; the
chunking depends only on the split and the image size).  Every sample gets the clean
pipeline; test samples (all samples with ``corrupt_training``) also get one pipeline per
distinct variant.  The stream is (chunk, pipeline, sample) items in a fixed order —
training chunks, then test chunks; chunk by chunk, pipeline by pipeline, clean first —
and a segment is all rows of one chunk through one pipeline: the unit that is stored and
reused (robustpath.embedding.cache).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustpath.variants import CLEAN_VARIANT, Variant, distinct_pipelines

CHUNK_BYTES = 32 << 20  # decoded uint8 images per chunk (a store entry covers one chunk)


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
    target: np.ndarray
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


def plan_stream(dataset, pipelines: list[Pipeline], clean: np.ndarray, test_targets: dict, train_targets: dict,
                corrupt_training: bool) -> StreamPlan:
    """The segments of the stream: training chunks first (their clean embeddings complete early, so that
    tasks can be fitted while the corrupted test images are still being embedded), then test chunks.

    ``clean``: (N, D) array of every sample; ``test_targets`` / ``train_targets``: pipeline name →
    (N_test, D) / (N_train, D) arrays (``train_targets`` empty without ``corrupt_training``).
    """
    height, width = dataset.native_size
    chunk_len = max(1, CHUNK_BYTES // (height * width * 3))
    train_chunks = cut_chunks(dataset.indices("train"), chunk_len, 0)
    test_chunks = cut_chunks(dataset.indices("test"), chunk_len, len(train_chunks))
    clean_pipeline = Pipeline(CLEAN_VARIANT, CLEAN_VARIANT.stage, [CLEAN_VARIANT.key])
    segments: list[Segment] = []
    position = 0
    parts = [(train_chunks, train_targets, pipelines if corrupt_training else []), (test_chunks, test_targets, pipelines)]
    for chunks, targets, corrupted in parts:
        for chunk in chunks:
            segments.append(Segment(chunk, clean_pipeline, position, clean, chunk.indices, remaining=len(chunk.indices)))
            position += len(chunk.indices)
            for pipeline in corrupted:
                segments.append(Segment(chunk, pipeline, position, targets[pipeline.name], chunk.positions,
                                        remaining=len(chunk.indices)))
                position += len(chunk.indices)
    return StreamPlan(clean_pipeline, pipelines, segments, position)


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
