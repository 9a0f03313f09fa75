"""The sweep: batches × variants → embeddings, with little work beyond the forward passes.

Plan (robustpath.embedding.plan).  The samples are cut into chunks (at most CHUNK_BYTES
of decoded uint8 images; the chunking depends only on the split and the image size).
Every sample gets the clean pipeline; test samples (all samples with ``corrupt_training``)
also get one pipeline per variant.  Variants whose pipelines coincide (``pre`` and ``post``
when the model's resize is a no-op) are computed once.  The work is one stream of
(chunk, pipeline, sample) items in a fixed order — the corrupted pipelines in windows of
as many as WINDOW_BYTES of embeddings allow; window by window, each over training chunks,
then test chunks; chunk by chunk, pipeline by pipeline, clean first (first window) — cut
into forward passes of ``batch_size`` images, so the clean embeddings are complete early
(tasks are fitted and each variant scored while the sweep goes on: ``on_ready``), at most
one window of corrupted pipelines is partly embedded at any time, and the tail of one
segment shares a forward pass with the head of the next instead of running a small
batch.  The images in every forward pass are a function of the plan and the batch
size only, so a resumed run recomputes exactly the forward passes of an
uninterrupted one.

Per forward pass, each piece (chunk, pipeline, rows) is prepared on the device from
the chunk's images — uint8 → float in [0, 1] → corruption at native size → resize →
corruption at model size (robustpath.variants.apply_variant) → normalise — straight into a reused input buffer, one pass
ahead in a background thread (robustpath.embedding.prefetch; two buffers), and the buffer goes
through the encoder once (torch.inference_mode; autocast bf16/fp16
on CUDA only, CPU stays fp32; channels_last inputs on CUDA; optional torch.compile).
Random corruptions draw from per-sample generators re-seeded from a reused pool.

Chunks are decoded by a DataLoader (``num_workers`` processes; pinned memory on CUDA)
and copied to the device (non-blocking) once, or once per window that reads them when
the chunks read by several windows hold more than KEEP_DECODED_BYTES of decoded images
(robustpath.embedding.decoded).  Every
(chunk, pipeline) whose last row is embedded is written to the store at once; entries
already in a store are read instead of computed, in stream order, and a variant read
entirely from a store is announced as soon as it is read (so a resumed run holds no
more variants than a fresh one).  CUDA out-of-memory (in the forward pass or while
preparing it) halves the batch size and retries the pass, with a notice; nothing
finished is lost.
"""
from __future__ import annotations

import bisect
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from robustpath.embedding.decoded import ChunkImages, chunks_of, chunks_to_keep, decode_visits
from robustpath.embedding.distributed import settled
from robustpath.errors import RobustPathError
from robustpath.embedding.plan import (
    Pipeline, Segment, StreamPlan, Target, build_pipelines, entry_digests, key_segments, plan_stream,
    resize_is_identity, window_size,
)
from robustpath.embedding.prefetch import Prefetch, Prepared
from robustpath.util.progress import ProgressReporter, SilentProgress, notify
from robustpath.variants import CLEAN_VARIANT, Variant, apply_variant



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
    During the sweep (``on_ready``), a variant's arrays appear when first written.
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


def precision_name(device, amp: bool = True) -> str:
    """'fp32', or the CUDA autocast dtype ('bf16' / 'fp16') when ``amp``."""
    from robustpath.util.device import autocast_dtype

    dtype = autocast_dtype(device) if amp else None
    return "fp32" if dtype is None else str(dtype).replace("torch.", "").replace("bfloat16", "bf16").replace("float16", "fp16")


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

    def __call__(self, pipeline: Pipeline, images, indices: np.ndarray, out) -> None:
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

    def __init__(self, segments: list[Segment], on_ready) -> None:
        self.on_ready = on_ready
        self.pipelines = {id(s.pipeline): s.pipeline for s in segments}
        self.segments = segments
        self.left = {number: 0 for number in self.pipelines}
        for segment in segments:
            self.left[id(segment.pipeline)] += not segment.done

    def segment_done(self, segment: Segment) -> None:
        number = id(segment.pipeline)
        self.left[number] -= 1
        if self.left[number] == 0:
            self.on_ready(list(self.pipelines[number].keys))
            self.forget_targets([s for s in self.segments if s.pipeline is segment.pipeline])

    def forget_targets(self, segments: list[Segment]) -> None:
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

    def pieces(self, begin: int, end: int) -> list[tuple[Segment, int, int]]:
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

        passes = [chunks_of(self.pieces(begin, end)) for begin, end in self.passes()]
        height, width = self.dataset.native_size
        keep = chunks_to_keep(passes, height * width * 3)
        self.images = ChunkImages(self.dataset, decode_visits(passes, keep), self.capacity, self.num_workers,
                                  self.device, keep)
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
        self.images.keep_only(chunks_of(pieces))
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
                segment.target.array()[segment.rows[offset : offset + count]] = features[row : row + count]
                segment.remaining -= count
                if segment.remaining == 0:
                    segment.done = True
                    if self.store is not None and segment.key is not None and self.capacity == self.planned_capacity:
                        self.store.put(segment.key, segment.target.array()[segment.rows])
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
    progress = progress or SilentProgress()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _place_encoder(encoder, device)
    plan, embeddings = _plan(encoder, dataset, variants, preset, corrupt_training)
    if keys is not None:
        key_segments(plan.segments, keys, batch_size, total=plan.total)
        if on_plan is not None:
            on_plan(entry_digests(plan.all_pipelines, plan.segments))
    completion = _Completion(plan.segments, lambda keys: on_ready(embeddings, keys)) if on_ready is not None else None
    reused_entries = _reuse_stored(plan.segments, store, int(encoder.embed_dim), completion) if keys is not None else {}
    notes: list[str] = []
    forward = _Forward(encoder, device, amp, compile, progress, notes)
    sweep = _Sweep(
        encoder=encoder, dataset=dataset, pipelines=plan.all_pipelines, segments=plan.segments, device=device,
        batch_size=batch_size, num_workers=num_workers, seed=seed, store=store, forward=forward, progress=progress,
        completion=completion,
    )
    _run_sweep(sweep, group, progress, device, len(variants) + 1)
    notes += sweep.notes
    notes += _store_problems(store, notes, progress)
    nominal = len(dataset) + len(variants) * (len(dataset) if corrupt_training else len(embeddings.test_indices))
    embeddings.seconds, embeddings.reused = _seconds_and_sources(plan, sweep)
    embeddings.stats = _stats(sweep, plan, forward, store, nominal=nominal, reused_entries=reused_entries,
                              precision=precision_name(device, amp))
    embeddings.notes = notes
    return embeddings


def _place_encoder(encoder, device) -> None:
    """The encoder on ``device``; channels_last on CUDA (faster convolutions: patch embedding, conv nets)."""
    import torch

    encoder.to(device)
    module = getattr(encoder, "model", None)  # every adapter keeps its torch module here
    if device.type == "cuda" and isinstance(module, torch.nn.Module):
        module.to(memory_format=torch.channels_last)


def _plan(encoder, dataset, variants: list[Variant], preset, corrupt_training: bool) -> tuple[StreamPlan, Embeddings]:
    """The stream plan and the Embeddings whose arrays its segments fill.

    A corrupted pipeline's arrays are made when first written and recorded in the Embeddings
    then (empty splits at once); only the Embeddings and the unfinished segments hold them, so
    that a released variant's memory is freed.
    """
    test_indices, train_indices = dataset.indices("test"), dataset.indices("train")
    dim = int(encoder.embed_dim)
    embeddings = Embeddings(clean=np.zeros((len(dataset), dim), dtype=np.float32), test_indices=test_indices,
                            train_indices=train_indices)
    pipelines = build_pipelines(variants, preset, dataset.native_size, encoder.preprocessing)
    splits = [(test_indices, embeddings.variants), *([(train_indices, embeddings.train_variants)] * corrupt_training)]
    targets = [{p.name: _target(len(indices), dim, p.keys, arrays) for p in pipelines} for indices, arrays in splits]
    rows = sum(len(indices) for indices, _ in splits)
    plan = plan_stream(dataset, pipelines, Target(len(dataset), dim, array=embeddings.clean), targets[0],
                       targets[1] if corrupt_training else {}, corrupt_training,
                       window=window_size(len(pipelines), rows, dim))
    return plan, embeddings


def _target(rows: int, dim: int, keys: list[str], arrays: dict) -> Target:
    """A pipeline's target whose array, once made, is ``arrays[key]`` for each of its variant ``keys``."""

    def record(array: np.ndarray) -> None:
        for key in keys:
            arrays[key] = array

    target = Target(rows, dim, on_create=record)
    if rows == 0:
        target.array()
    return target


def _reuse_stored(segments: list[Segment], store, dim: int, completion: "_Completion | None") -> dict[str, int]:
    """Fill the segments found in ``store`` (a StoreChain, or None), in stream order; entries reused per source.

    A pipeline read entirely from the store is announced (``completion``) as soon as its last
    segment is read, so that it can be scored, and released, before the next ones are read.
    """
    reused: dict[str, int] = {}
    if store is None:
        return reused
    for segment in segments:
        array, source = store.get(segment.key, rows=len(segment.chunk.indices))
        if array is not None and array.shape[1] == dim:
            segment.target.array()[segment.rows] = array
            segment.done, segment.remaining = True, 0
            segment.source = "run folder" if getattr(source, "strict", False) else "cache"
            reused[segment.source] = reused.get(segment.source, 0) + 1
            if completion is not None:
                completion.segment_done(segment)
    return reused


def _run_sweep(sweep: "_Sweep", group, progress, device, variant_count: int) -> None:
    """Embed this process's share of the stream (all of it without ``group``); rank 0 gathers the rest."""
    import torch

    spans = _share_out(sweep, group) if group is not None else None
    progress.start("embed", f"Embedding {variant_count} variants", sweep.end - sweep.begin)
    with settled(group):
        sweep.run()
    progress.finish("embed")
    if device.type == "cuda":
        torch.cuda.synchronize()
    if group is not None:
        _gather_shards(sweep, group, spans)


def _store_problems(store, notes: list[str], progress) -> list[str]:
    """The store's problems not yet in ``notes``, each also shown as a notice."""
    if store is None:
        return []
    problems = store.problems()
    for problem in problems:
        notify(progress, problem)
    return [problem for problem in problems if problem not in notes]


def _seconds_and_sources(plan: StreamPlan, sweep: "_Sweep") -> tuple[dict[str, float], dict[str, str]]:
    """Embedding seconds per variant key (a shared pipeline's time goes to its first key) and, for the
    variants read entirely from stores, where from ("run folder" or "cache")."""
    seconds, reused = {CLEAN_VARIANT.key: sweep.seconds[plan.clean.name]}, {}
    for pipeline in plan.all_pipelines:
        sources = {s.source for s in plan.segments if s.pipeline is pipeline}
        for number, key in enumerate(pipeline.keys):
            if pipeline is not plan.clean:
                seconds[key] = sweep.seconds[pipeline.name] if number == 0 else 0.0
            if sources and None not in sources:
                reused[key] = "run folder" if sources == {"run folder"} else "cache"
    return seconds, reused


def _stats(sweep: "_Sweep", plan: StreamPlan, forward: "_Forward", store, *, nominal: int,
           reused_entries: dict[str, int], precision: str) -> dict:
    """The sweep's counters for run.json (see Embeddings)."""
    return {
        "batch_size": sweep.capacity,
        "forward_passes": sweep.forward_batches,
        "images_forwarded": sweep.forward_images,
        "images_planned": sweep.total,
        "images_nominal": nominal,
        "distinct_pipelines": len(plan.pipelines) + 1,
        "entries_reused": reused_entries,
        "entries_written": sum(s.writes for s in store.stores) if store is not None else 0,
        "compiled": forward.compiled,
        "precision": precision,
    }


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
