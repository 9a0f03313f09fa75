"""The sweep: batches × variants → embeddings, with little work beyond the forward passes.

Plan.  The samples are cut into chunks (at most CHUNK_BYTES of decoded uint8 images;
the chunking depends only on the split and the image size).  Every sample gets the
clean pipeline; test samples (all samples with ``corrupt_training``) also get one
pipeline per variant.  Variants whose pipelines coincide (``pre`` and ``post`` when
the model's resize is a no-op) are computed once.  The work is one stream of
(chunk, pipeline, sample) items in a fixed order — training chunks, then test chunks;
chunk by chunk, pipeline by pipeline, clean first — cut into forward passes of
``batch_size`` images, so the clean embeddings are complete early (tasks are fitted
and each variant scored while the sweep goes on: ``on_ready``), and the tail of one
variant shares a forward pass with the head of the next instead of running a small
batch.  The images in every forward pass are a function of the plan and the batch
size only, so a resumed run recomputes exactly the forward passes of an
uninterrupted one.

Per forward pass, each piece (chunk, pipeline, rows) is prepared on the device from
the chunk's images — uint8 → float in [0, 1] → corruption at native size → resize →
corruption at model size → normalise — straight into a reused input buffer, one pass
ahead in a background thread (robustpath.embedding.prefetch; two buffers), and the buffer goes
through the encoder once (torch.inference_mode; autocast bf16/fp16
on CUDA only, CPU stays fp32; channels_last inputs on CUDA; optional torch.compile).
Random corruptions draw from per-sample generators re-seeded from a reused pool.

Chunks are decoded once by a DataLoader (``num_workers`` processes; pinned memory on
CUDA) and copied to the device once (non-blocking).  Every (chunk, pipeline) whose
last row is embedded is written to the store at once; entries already in a store are
read instead of computed.  CUDA out-of-memory (in the forward pass or while preparing
it) halves the batch size and retries the pass, with a notice; nothing finished is lost.
"""
from __future__ import annotations

import bisect
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from robustpath.embedding.distributed import settled
from robustpath.errors import RobustPathError
from robustpath.embedding.prefetch import Prefetch, Prepared
from robustpath.util.progress import ProgressReporter, SilentProgress, notify
from robustpath.variants import ANY_STAGE, CLEAN_VARIANT, Variant, apply_variant, distinct_pipelines

CHUNK_BYTES = 32 << 20  # decoded uint8 images per chunk (a store entry covers one chunk)
STAGE_ANY = ANY_STAGE  # the stage of a corruption when resizing is a no-op (pre and post coincide)


class OutOfMemory(RobustPathError):
    """Out of memory even with one image per forward pass."""


@dataclass
class Embeddings:
    """Clean embeddings of every sample and corrupted embeddings of the test split.

    clean: (N, D) float32 in dataset order; variants: key → (N_test, D) float32 in the
    order of ``test_indices`` (variants with the same pipeline share one array);
    train_variants: key → (N_train, D) in the order of ``train_indices``, only when the
    sweep ran with ``corrupt_training``.  ``seconds``: embedding time per variant key
    (forward time shared out by images); ``reused``: variant key → where all of its
    embeddings came from ("run folder" or "cache"); ``stats``: forward passes, images
    forwarded, final batch size, store entries read and written; ``notes``: notices
    worth keeping in run.json (batch size reduced, compile fallback, cache problems).
    stats: ``images_nominal`` = every (image, variant) pair, ``images_planned`` = the items
    of the distinct pipelines, ``images_forwarded`` = what went through the encoder.
    """

    clean: np.ndarray
    test_indices: np.ndarray
    variants: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    train_indices: np.ndarray | None = None
    train_variants: dict[str, np.ndarray] = field(default_factory=dict)
    reused: dict[str, str] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def release(self, key: str) -> None:
        """Forget variant ``key``'s arrays (scored, and stored where a store is used): its memory
        is freed once no other variant key shares them."""
        self.variants.pop(key, None)
        self.train_variants.pop(key, None)


def resize_is_identity(native_size: tuple[int, int], prep) -> bool:
    """True when ``resize_to_input`` returns images of ``native_size`` unchanged."""
    out_h, out_w = prep.input_size
    return tuple(native_size) == (out_h, out_w) and prep.resize_size in (None, max(out_h, out_w))


def precision_name(device, amp: bool = True) -> str:
    """'fp32', or the CUDA autocast dtype ('bf16' / 'fp16') when ``amp``."""
    from robustpath.util.device import autocast_dtype

    dtype = autocast_dtype(device) if amp else None
    return "fp32" if dtype is None else str(dtype).replace("torch.", "").replace("bfloat16", "bf16").replace("float16", "fp16")


@dataclass
class _Pipeline:
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
class _Chunk:
    number: int
    indices: np.ndarray  # dataset indices, in order
    positions: np.ndarray  # rows of these samples in their split's arrays


@dataclass
class _Segment:
    """All rows of one chunk through one pipeline: the unit that is stored and reused."""

    chunk: _Chunk
    pipeline: _Pipeline
    start: int  # offset in the stream of items
    target: np.ndarray
    rows: np.ndarray  # rows of ``target`` for the chunk's samples
    key: dict | None = None
    remaining: int = 0
    done: bool = False
    source: str | None = None  # where a reused entry came from


def _pipelines(variants: list[Variant], preset, native_size, prep) -> list[_Pipeline]:
    import corruptions

    groups = distinct_pipelines(variants, resize_is_identity(native_size, prep))
    return [
        _Pipeline(group[0], stage, [v.key for v in group], corruptions.get_corruption(corruption, preset))
        for (corruption, _, stage), group in groups.items()
    ]


def _chunks(indices: np.ndarray, chunk_len: int, first_number: int) -> list[_Chunk]:
    chunks = []
    for number, begin in enumerate(range(0, len(indices), chunk_len), start=first_number):
        positions = np.arange(begin, min(begin + chunk_len, len(indices)))
        chunks.append(_Chunk(number, indices[positions], positions))
    return chunks


class _ImageReader:
    """torch Dataset over a robustpath Dataset: position → (H, W, 3) uint8 tensor."""

    def __init__(self, dataset, indices: np.ndarray) -> None:
        self.dataset = dataset
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        import torch

        image = np.require(self.dataset.read_image(int(self.indices[position])), dtype=np.uint8, requirements=["C", "W"])
        return torch.from_numpy(image)


class _ChunkImages:
    """Decodes chunks in stream order with one DataLoader; each chunk once, on the device once."""

    def __init__(self, dataset, chunks: list[_Chunk], batch_size: int, num_workers: int, device) -> None:
        from torch.utils.data import DataLoader

        self.dataset = dataset
        self.device = device
        self.pending = list(chunks)
        indices = np.concatenate([c.indices for c in chunks]) if chunks else np.zeros(0, dtype=np.int64)
        batches, offset = [], 0
        for chunk in chunks:
            for begin in range(0, len(chunk.indices), batch_size):
                batches.append(list(range(offset + begin, offset + min(begin + batch_size, len(chunk.indices)))))
            offset += len(chunk.indices)
        self._batches = iter(
            DataLoader(
                _ImageReader(dataset, indices), batch_sampler=batches, num_workers=num_workers,
                pin_memory=device.type == "cuda",
            )
        ) if batches else iter(())
        self.resident: dict[int, object] = {}

    def get(self, chunk: _Chunk):
        """(C, H, W, 3) uint8 on the device."""
        if chunk.number in self.resident:
            return self.resident[chunk.number]
        import torch

        while self.pending and self.pending[0].number < chunk.number:  # planned but no longer needed
            self._drain(self.pending.pop(0))
        height, width = self.dataset.native_size
        images = torch.empty((len(chunk.indices), height, width, 3), dtype=torch.uint8, device=self.device)
        if self.pending and self.pending[0].number == chunk.number:
            self.pending.pop(0)
            filled = 0
            while filled < len(chunk.indices):
                batch = next(self._batches)
                images[filled : filled + len(batch)].copy_(batch, non_blocking=True)
                filled += len(batch)
        else:  # not planned (the batch size changed after an out-of-memory error): read directly
            for row, index in enumerate(chunk.indices.tolist()):
                image = np.require(self.dataset.read_image(index), dtype=np.uint8, requirements=["C", "W"])
                images[row].copy_(torch.from_numpy(image))
        self.resident[chunk.number] = images
        return images

    def _drain(self, chunk: _Chunk) -> None:
        consumed = 0
        while consumed < len(chunk.indices):
            consumed += len(next(self._batches))

    def release_before(self, number: int) -> None:
        for old in [n for n in self.resident if n < number]:
            del self.resident[old]


class _Preparer:
    """Corrupt, resize and normalise a piece of a chunk into the input buffer."""

    def __init__(self, prep, native_size, device, seed: int, sample_ids, pool_size: int) -> None:
        import torch

        self.prep = prep
        self.identity = resize_is_identity(native_size, prep)
        self.seed = seed
        self.sample_ids = sample_ids
        self.mean = torch.tensor(prep.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(prep.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.pool = [torch.Generator(device="cpu") for _ in range(pool_size)]  # re-seeded per piece
        self.resize = None if self.identity else self._resize

    def __call__(self, pipeline: _Pipeline, images, indices: np.ndarray, out) -> None:
        """images: (n, H, W, 3) uint8 on the device → ``out`` (n, 3, h, w) normalised float32."""
        import torch

        x = images.permute(0, 3, 1, 2).float().div_(255.0)  # (n, 3, H, W), strides of the HWC bytes
        if len(indices) > len(self.pool):
            self.pool += [torch.Generator(device="cpu") for _ in range(len(indices) - len(self.pool))]
        variant, bound = pipeline.variant, pipeline.corruption
        random = bound is not None and bound.random
        x = apply_variant(
            x, Variant(variant.corruption, variant.severity, pipeline.stage), bound, seed=self.seed,
            sample_ids=[self.sample_ids[index] for index in indices.tolist()] if random else (),
            resize=self.resize, generator_pool=self.pool,
        )
        torch.sub(x, self.mean, out=out)
        out.div_(self.std)

    def _resize(self, x):
        from robustpath.models.preprocess import resize_to_input

        # resizing a contiguous tensor is twice as fast as the channels-last view (same values)
        return resize_to_input(x.contiguous(), self.prep)


class _Forward:
    """The encoder under inference_mode (+ CUDA autocast), optionally compiled, with eager fallback."""

    def __init__(self, encoder, device, amp: bool, compile: bool, progress, notes: list[str]) -> None:
        from robustpath.util.device import autocast_dtype

        self.encoder = encoder
        self.device = device
        self.amp_dtype = autocast_dtype(device) if amp else None
        self.progress = progress
        self.notes = notes
        self.function = encoder.encode_image
        self.compiled = False
        if compile:
            import torch

            try:
                self.function = torch.compile(encoder.encode_image)
                self.compiled = True
            except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly
                self._fall_back(exc)

    def _fall_back(self, exc: BaseException) -> None:
        text = str(exc).strip()
        reason = f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__
        message = f"torch.compile failed ({reason}); running without compilation"
        notify(self.progress, message)
        self.notes.append(message)
        self.function = self.encoder.encode_image
        self.compiled = False

    def __call__(self, x):
        import torch

        autocast = (
            torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None else contextlib.nullcontext()
        )
        try:
            with torch.inference_mode(), autocast:
                return self.function(x).float()
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001
            if not self.compiled:
                raise
            self._fall_back(exc)
            with torch.inference_mode(), autocast:
                return self.function(x).float()


class _Completion:
    """Calls ``on_ready(keys)`` once every segment of a pipeline is done."""

    def __init__(self, segments: list[_Segment], on_ready) -> None:
        self.on_ready = on_ready
        self.pipelines = {id(s.pipeline): s.pipeline for s in segments}
        self.segments = segments
        self.left = {number: 0 for number in self.pipelines}
        for segment in segments:
            self.left[id(segment.pipeline)] += not segment.done

    def announce_finished(self) -> None:
        """Announce the pipelines that need no forward pass (all read from a store)."""
        for number, left in self.left.items():
            if left == 0:
                self.on_ready(list(self.pipelines[number].keys))
        self.forget_targets(self.segments)

    def segment_done(self, segment: _Segment) -> None:
        number = id(segment.pipeline)
        self.left[number] -= 1
        if self.left[number] == 0:
            self.on_ready(list(self.pipelines[number].keys))
            self.forget_targets([s for s in self.segments if s.pipeline is segment.pipeline])

    def forget_targets(self, segments: list[_Segment]) -> None:
        """Drop the segments' references to finished arrays: Embeddings alone keeps them, and the
        caller of on_ready may release them (Embeddings.release) once scored."""
        for segment in segments:
            if segment.done:
                segment.target = None


class _Sweep:
    def __init__(self, *, encoder, dataset, pipelines, segments, device, batch_size, num_workers, seed, store,
                 forward: _Forward, progress, completion: "_Completion | None" = None) -> None:
        import torch

        self.dataset = dataset
        self.segments = segments
        self.starts = [s.start for s in segments]
        self.total = segments[-1].start + len(segments[-1].chunk.indices) if segments else 0
        self.device = device
        self.capacity = batch_size
        self.planned_capacity = batch_size  # the forward passes the store keys describe
        self.num_workers = num_workers
        self.store = store
        self.forward = forward
        self.progress = progress
        self.completion = completion
        self.prep = encoder.preprocessing
        self.dim = int(encoder.embed_dim)
        self.preparer = _Preparer(self.prep, dataset.native_size, device, seed, dataset.sample_ids, batch_size)
        self.buffers: list | None = None  # allocated by run() for the current batch size (see _allocate)
        self.host: list | None = None
        self.pending = None  # (host tensor, event, pieces) of the last CUDA forward pass
        self.seconds: dict[str, float] = {p.name: 0.0 for p in pipelines}
        self.begin, self.end = 0, self.total  # the items this process embeds (a shard under torchrun)
        self.outbox: np.ndarray | None = None  # with a shard: its rows in stream order, for rank 0
        self.forward_images = 0
        self.forward_batches = 0
        self.notes: list[str] = []

    def pieces(self, begin: int, end: int) -> list[tuple[_Segment, int, int]]:
        """(segment, first row, row count) of the items begin..end-1 of the stream."""
        out = []
        number = bisect.bisect_right(self.starts, begin) - 1
        position = begin
        while position < end:
            segment = self.segments[number]
            offset = position - segment.start
            count = min(len(segment.chunk.indices) - offset, end - position)
            if count > 0:
                out.append((segment, offset, count))
            position += max(count, 0)
            number += 1
        return out

    def passes(self) -> list[tuple[int, int]]:
        """(first item, end) of the forward passes in this process's items that compute something."""
        return [(begin, end) for begin, end, _, compute in self._spans(self.begin) if compute]

    def limit(self, begin: int, end: int) -> None:
        """Embed only the items begin..end-1 and keep their rows (see ``outbox``)."""
        self.begin, self.end = begin, end
        self.outbox = np.zeros((end - begin, self.dim), dtype=np.float32)

    def run(self) -> None:
        import torch

        needed = self._needed_chunks()
        self.images = _ChunkImages(self.dataset, needed, self.capacity, self.num_workers, self.device)
        position = self.begin
        while position < self.end:
            try:
                if self.buffers is None:
                    self._allocate()
                with Prefetch(self._spans(position), self.prepare, self.buffers) as prepared:
                    for begin, end, pieces, batch in prepared:
                        if batch is not None:
                            self._forward_batch(pieces, batch)
                        self.progress.advance("embed", end - begin)
                        position = end
            except torch.OutOfMemoryError:
                self._complete_pending()
                self._shrink()
        self._complete_pending()

    def _spans(self, position: int):
        """(begin, end, pieces, compute) of the forward passes from ``position`` on, at the current batch size."""
        while position < self.end:
            end = min(position + self.capacity, self.end)
            pieces = self.pieces(position, end)
            yield position, end, pieces, not all(segment.done for segment, _, _ in pieces)
            position = end

    def _needed_chunks(self) -> list[_Chunk]:
        chunks: dict[int, _Chunk] = {}
        for begin, end in self.passes():
            for segment, _, _ in self.pieces(begin, end):
                chunks[segment.chunk.number] = segment.chunk
        return [chunks[n] for n in sorted(chunks)]

    def _allocate(self) -> None:
        """Input buffers for forward passes of the current batch size (one being prepared while
        another goes through the encoder; channels-last on CUDA), and on CUDA two pinned host
        buffers for the embeddings.  Allocating can itself run out of device memory: run()
        then halves the batch size and allocates again."""
        import torch

        self.buffers = self.host = None  # the old ones are freed before the new ones are made
        rows = max(1, min(self.capacity, self.end - self.begin))
        height, width = self.prep.input_size
        memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        self.buffers = [
            torch.empty((rows, 3, height, width), dtype=torch.float32, device=self.device).contiguous(
                memory_format=memory_format
            )
            for _ in range(Prefetch.DEPTH)
        ]
        if self.device.type == "cuda":
            self.host = [torch.empty((rows, self.dim), dtype=torch.float32, pin_memory=True) for _ in range(2)]

    def _shrink(self) -> None:
        import torch

        self.buffers = self.host = None  # reallocated at the new batch size
        if self.capacity == 1:
            raise OutOfMemory(
                f"{self.device.type.upper()} out of memory even with one image per forward pass: "
                "use a smaller model, --device cpu, or free the device"
            )
        old, self.capacity = self.capacity, max(1, self.capacity // 2)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        message = f"out of memory at batch size {old}: retrying with batch size {self.capacity}"
        if self.store is not None:
            message += (f"; the embeddings finished from here on are not stored (their forward passes differ from "
                        f"those of batch size {self.planned_capacity}): re-run with --batch-size {self.capacity} "
                        "to store them")
        notify(self.progress, message)
        self.notes.append(message)

    def prepare(self, pieces, buffer) -> int:
        """Fill ``buffer`` with the inputs of ``pieces``; returns the number of images."""
        self.images.release_before(pieces[0][0].chunk.number)
        filled = 0
        for segment, offset, count in pieces:
            images = self.images.get(segment.chunk)[offset : offset + count]
            indices = segment.chunk.indices[offset : offset + count]
            self.preparer(segment.pipeline, images, indices, buffer[filled : filled + count])
            filled += count
        return filled

    def _forward_batch(self, pieces, batch: Prepared) -> None:
        started = time.perf_counter()
        filled = len(batch.inputs)
        features = self.forward(batch.inputs)
        self.forward_images += filled
        self.forward_batches += 1
        if self.host is None:
            self._deliver(features.cpu().numpy(), pieces)
        else:
            import torch

            host = self.host[self.forward_batches % 2][:filled]
            host.copy_(features, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._complete_pending()
            self.pending = (host, event, pieces)
        batch.release()
        elapsed = time.perf_counter() - started + batch.seconds
        for segment, _, count in pieces:
            self.seconds[segment.pipeline.name] += elapsed * count / filled

    def _complete_pending(self) -> None:
        if self.pending is not None:
            host, event, pieces = self.pending
            self.pending = None
            event.synchronize()
            self._deliver(host.numpy(), pieces)

    def _deliver(self, features: np.ndarray, pieces) -> None:
        if self.outbox is not None and pieces:
            segment, offset, _ = pieces[0]
            at = segment.start + offset - self.begin
            self.outbox[at : at + len(features)] = features
        self._scatter(features, pieces)

    def _scatter(self, features: np.ndarray, pieces) -> None:
        row = 0
        for segment, offset, count in pieces:
            if not segment.done:
                segment.target[segment.rows[offset : offset + count]] = features[row : row + count]
                segment.remaining -= count
                if segment.remaining == 0:
                    segment.done = True
                    if self.store is not None and segment.key is not None and self.capacity == self.planned_capacity:
                        self.store.put(segment.key, segment.target[segment.rows])
                    if self.completion is not None:
                        self.completion.segment_done(segment)
            row += count


def compute_embeddings(
    encoder,
    dataset,
    variants: list[Variant],
    *,
    preset,
    seed: int,
    device,
    batch_size: int,
    num_workers: int = 0,
    progress: ProgressReporter | None = None,
    store=None,
    keys=None,
    amp: bool = True,
    compile: bool = False,
    corrupt_training: bool = False,
    group=None,
    on_plan=None,
    on_ready=None,
) -> Embeddings:
    """Run the sweep and return clean and per-variant embeddings (see Embeddings).

    ``store`` (a robustpath.embedding.cache.StoreChain) and ``keys`` (robustpath.embedding.cache.EmbeddingKeys)
    enable reuse and persistence; without them everything is computed in memory.
    ``amp``: autocast on CUDA (ignored on CPU).  ``compile``: torch.compile the image
    encoder, falling back to eager execution with a notice when that fails.
    ``group`` (robustpath.embedding.distributed.Group, under torchrun): this process embeds its
    share of the forward passes; rank 0 (the only one to pass a store) returns the
    complete arrays, the other ranks' arrays are incomplete.
    ``on_plan(entry_digests)``, with ``keys``, is called before any forward pass with
    each variant key's store entries (robustpath.embedding.cache_index records them).
    ``on_ready(embeddings, keys)`` is called (in this thread) as soon as the embeddings of
    the variant ``keys`` are complete (``[CLEAN_VARIANT.key]`` for the clean ones, first,
    unless they came from a store), so that they can be scored while the sweep goes on;
    ``embeddings`` is the object this function returns, with its arrays still filling.
    """
    import torch

    progress = progress or SilentProgress()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    encoder.to(device)
    module = getattr(encoder, "model", None)  # every adapter keeps its torch module here
    if device.type == "cuda" and isinstance(module, torch.nn.Module):
        module.to(memory_format=torch.channels_last)  # faster convolutions (patch embedding, conv nets)
    prep = encoder.preprocessing
    test_indices = dataset.indices("test")
    train_indices = dataset.indices("train")
    dim = int(encoder.embed_dim)
    clean = np.zeros((len(dataset), dim), dtype=np.float32)
    clean_pipeline = _Pipeline(CLEAN_VARIANT, CLEAN_VARIANT.stage, [CLEAN_VARIANT.key])
    pipelines = _pipelines(variants, preset, dataset.native_size, prep)
    test_targets = {p.name: np.zeros((len(test_indices), dim), dtype=np.float32) for p in pipelines}
    train_targets = (
        {p.name: np.zeros((len(train_indices), dim), dtype=np.float32) for p in pipelines} if corrupt_training else {}
    )
    height, width = dataset.native_size
    chunk_len = max(1, CHUNK_BYTES // (height * width * 3))
    # training images first: their clean embeddings complete early, so that tasks can be
    # fitted (on_ready) while the corrupted test images are still being embedded
    train_chunks = _chunks(train_indices, chunk_len, 0)
    test_chunks = _chunks(test_indices, chunk_len, len(train_chunks))

    segments: list[_Segment] = []
    position = 0
    groups = [(train_chunks, train_targets, pipelines if corrupt_training else []), (test_chunks, test_targets, pipelines)]
    for chunks, targets, corrupted in groups:
        for chunk in chunks:
            for pipeline in [clean_pipeline, *corrupted]:
                if pipeline is clean_pipeline:
                    target, rows = clean, chunk.indices
                else:
                    target, rows = targets[pipeline.name], chunk.positions
                segments.append(_Segment(chunk, pipeline, position, target, rows, remaining=len(chunk.indices)))
                position += len(chunk.indices)
    if keys is not None:
        _key_segments(segments, keys, batch_size, total=position)

    if on_plan is not None and keys is not None:
        on_plan(_entry_digests([clean_pipeline, *pipelines], segments))
    reused_entries = {}
    if store is not None and keys is not None:
        for segment in segments:
            array, source = store.get(segment.key, rows=len(segment.chunk.indices))
            if array is not None and array.shape[1] == dim:
                segment.target[segment.rows] = array
                segment.done, segment.remaining = True, 0
                segment.source = "run folder" if getattr(source, "strict", False) else "cache"
                reused_entries[segment.source] = reused_entries.get(segment.source, 0) + 1

    embeddings = Embeddings(clean=clean, test_indices=test_indices, train_indices=train_indices)
    for pipeline in pipelines:
        for key in pipeline.keys:
            embeddings.variants[key] = test_targets[pipeline.name]
            if corrupt_training:
                embeddings.train_variants[key] = train_targets[pipeline.name]
    test_targets = train_targets = groups = targets = target = None  # embeddings and the segments hold the arrays
    notes: list[str] = []
    forward = _Forward(encoder, device, amp, compile, progress, notes)
    completion = _Completion(segments, lambda keys: on_ready(embeddings, keys)) if on_ready is not None else None
    sweep = _Sweep(
        encoder=encoder, dataset=dataset, pipelines=[clean_pipeline, *pipelines], segments=segments, device=device,
        batch_size=batch_size, num_workers=num_workers, seed=seed, store=store, forward=forward, progress=progress,
        completion=completion,
    )
    if completion is not None:
        completion.announce_finished()
    spans = _share_out(sweep, group) if group is not None else None
    progress.start("embed", f"Embedding {len(variants) + 1} variants", sweep.end - sweep.begin)
    with settled(group):
        sweep.run()
    progress.finish("embed")
    if device.type == "cuda":
        torch.cuda.synchronize()
    if group is not None:
        _gather_shards(sweep, group, spans)
    notes += sweep.notes
    if store is not None:
        notes += [problem for problem in store.problems() if problem not in notes]
        for problem in store.problems():
            notify(progress, problem)

    seconds, reused = {CLEAN_VARIANT.key: sweep.seconds[clean_pipeline.name]}, {}
    for pipeline in [clean_pipeline, *pipelines]:
        own = [s for s in segments if s.pipeline is pipeline]
        sources = {s.source for s in own}
        for number, key in enumerate(pipeline.keys):
            if pipeline is not clean_pipeline:
                seconds[key] = sweep.seconds[pipeline.name] if number == 0 else 0.0
            if own and None not in sources:
                reused[key] = "run folder" if sources == {"run folder"} else "cache"
    stats = {
        "batch_size": sweep.capacity,
        "forward_passes": sweep.forward_batches,
        "images_forwarded": sweep.forward_images,
        "images_planned": sweep.total,
        "images_nominal": len(dataset) + len(variants) * (len(dataset) if corrupt_training else len(test_indices)),
        "distinct_pipelines": len(pipelines) + 1,
        "entries_reused": reused_entries,
        "entries_written": sum(s.writes for s in store.stores) if store is not None else 0,
        "compiled": forward.compiled,
        "precision": precision_name(device, amp),
    }
    embeddings.seconds, embeddings.reused, embeddings.stats, embeddings.notes = seconds, reused, stats, notes
    return embeddings


def _key_segments(segments: list[_Segment], keys, batch_size: int, total: int) -> None:
    """Each segment's store key: its pipeline, samples and the forward passes they go through
    (the last bits of an embedding can depend on the size of its pass and its place in it)."""
    from robustpath.embedding.cache import forward_pass_layout

    for segment in segments:
        pipeline, count = segment.pipeline, len(segment.chunk.indices)
        random = bool(pipeline.corruption is not None and pipeline.corruption.random)
        segment.key = keys.key(pipeline.facts(), segment.chunk.indices, random=random,
                               passes=forward_pass_layout(segment.start, count, batch_size, total))


def _entry_digests(pipelines: list[_Pipeline], segments: list[_Segment]) -> dict[str, list[str]]:
    """Variant key → the key digests of the store entries its pipeline is made of."""
    from robustpath.embedding.cache import key_digest

    own: dict[int, list[str]] = {}
    for segment in segments:
        own.setdefault(id(segment.pipeline), []).append(key_digest(segment.key))
    return {key: own.get(id(pipeline), []) for pipeline in pipelines for key in pipeline.keys}


def _share_out(sweep: _Sweep, group) -> list[tuple[int, int]]:
    """Give this rank its block of the forward passes; every rank's (begin, end) of the stream.

    Rank 0 alone read the stores: the others learn which segments it will reuse, so that
    all ranks split the same remaining passes (robustpath.embedding.distributed.split_passes).
    """
    from robustpath.embedding.distributed import split_passes

    done = group.broadcast([number for number, segment in enumerate(sweep.segments) if segment.done])
    for number in done:
        segment = sweep.segments[number]
        segment.done, segment.remaining = True, 0
    spans = split_passes(sweep.passes(), group.world_size)
    sweep.limit(*spans[group.rank])
    return spans


def _gather_shards(sweep: _Sweep, group, spans: list[tuple[int, int]]) -> None:
    """Rank 0 receives the other ranks' rows and puts them where one process would have.

    Completed segments are stored as in a single-process sweep; the counters, times and
    notes of all ranks are added up on rank 0.
    """
    blocks = group.gather_rows(sweep.outbox, [end - begin for begin, end in spans])
    facts = group.all_objects({
        "forward_batches": sweep.forward_batches, "forward_images": sweep.forward_images,
        "capacity": sweep.capacity, "seconds": sweep.seconds, "notes": sweep.notes,
    })
    if blocks is None:
        return
    sweep.capacity = min([sweep.capacity, *(fact["capacity"] for fact in facts)])  # a shrunk rank: store nothing more
    for rank, (block, (begin, end)) in enumerate(zip(blocks, spans)):
        if rank != group.rank and end > begin:
            sweep._scatter(block, sweep.pieces(begin, end))
    for rank, fact in enumerate(facts):
        if rank == group.rank:
            continue
        sweep.forward_batches += fact["forward_batches"]
        sweep.forward_images += fact["forward_images"]
        for name, seconds in fact["seconds"].items():
            sweep.seconds[name] += seconds
        sweep.notes += [f"rank {rank}: {note}" for note in fact["notes"]]
