"""Decoded chunks for the sweep: each forward pass's chunks on the device, decoded in a planned order.

The sweep's forward passes go window by window over the chunks (robustpath.embedding.plan),
so a chunk can be needed again after other chunks: ``decode_visits`` lists the chunks
to decode, in order, when each pass keeps decoded only the chunks it reads
(``ChunkImages.keep_only``) and the chunks to keep (``chunks_to_keep``); a chunk needed
by consecutive passes is decoded once.  The chunks to keep are those a sweep would decode
more than once (several windows), when together they hold at most KEEP_DECODED_BYTES of
decoded images: then every image is decoded once; otherwise each such chunk once per
window.  One DataLoader (``num_workers`` processes; pinned memory on CUDA) decodes the
visits, and each chunk is copied to the device once per visit (non-blocking).
"""
from __future__ import annotations

from collections import deque
from typing import Iterable

import numpy as np

from robustpath.embedding.plan import Chunk


def chunks_of(pieces) -> list[Chunk]:
    """The chunks that the pieces (segment, first row, row count) of a forward pass read, in order."""
    chunks: dict[int, Chunk] = {}
    for segment, _, _ in pieces:
        chunks.setdefault(segment.chunk.number, segment.chunk)
    return list(chunks.values())


KEEP_DECODED_BYTES = 256 << 20  # decoded images kept across windows, instead of decoding them again


def decode_visits(passes: Iterable[list[Chunk]], keep: frozenset[int] = frozenset()) -> list[Chunk]:
    """The chunks to decode, in order, for forward passes that read ``passes`` (their chunks, in order)
    when each pass keeps decoded only its own chunks and, once decoded, the chunks numbered in ``keep``."""
    visits: list[Chunk] = []
    resident: set[int] = set()
    for chunks in passes:
        visits += [chunk for chunk in chunks if chunk.number not in resident]
        resident = {chunk.number for chunk in chunks} | (keep & (resident | {chunk.number for chunk in chunks}))
    return visits


def chunks_to_keep(passes: list[list[Chunk]], image_bytes: int) -> frozenset[int]:
    """The numbers of the chunks decoded more than once by ``decode_visits(passes)``, when together they
    hold at most KEEP_DECODED_BYTES (``image_bytes`` per image); otherwise none."""
    seen: dict[int, Chunk] = {}
    again: dict[int, Chunk] = {}
    for chunk in decode_visits(passes):
        (again if chunk.number in seen else seen)[chunk.number] = chunk
    size = sum(len(chunk.indices) for chunk in again.values()) * image_bytes
    return frozenset(again) if size <= KEEP_DECODED_BYTES else frozenset()


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


class ChunkImages:
    """Decodes the planned ``visits`` (decode_visits) in order with one DataLoader; ``get`` a chunk on the device."""

    def __init__(self, dataset, visits: list[Chunk], batch_size: int, num_workers: int, device,
                 keep: frozenset[int] = frozenset()) -> None:
        from torch.utils.data import DataLoader

        self.dataset = dataset
        self.device = device
        self.keep = keep  # chunk numbers that stay decoded once decoded (chunks_to_keep)
        self.pending = deque(visits)
        indices = np.concatenate([c.indices for c in visits]) if visits else np.zeros(0, dtype=np.int64)
        batches, offset = [], 0
        for chunk in visits:
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

    def get(self, chunk: Chunk):
        """(C, H, W, 3) uint8 on the device: the resident copy, the next planned visit of ``chunk``
        (skipping planned visits no longer needed, after an out-of-memory retry), or read directly."""
        if chunk.number in self.resident:
            return self.resident[chunk.number]
        import torch

        height, width = self.dataset.native_size
        images = torch.empty((len(chunk.indices), height, width, 3), dtype=torch.uint8, device=self.device)
        if self.pending and self.pending[0].number != chunk.number and any(v.number == chunk.number for v in self.pending):
            while self.pending[0].number != chunk.number:  # planned but no longer needed
                self._drain(self.pending.popleft())
        if self.pending and self.pending[0].number == chunk.number:
            self.pending.popleft()
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

    def _drain(self, chunk: Chunk) -> None:
        consumed = 0
        while consumed < len(chunk.indices):
            consumed += len(next(self._batches))

    def keep_only(self, chunks: list[Chunk]) -> None:
        """Free the decoded chunks other than ``chunks`` and those to keep."""
        keep = {chunk.number for chunk in chunks} | self.keep
        for old in [number for number in self.resident if number not in keep]:
            del self.resident[old]
