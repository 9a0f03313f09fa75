"""Runs launched by torchrun: one process per device, the forward passes shared out, rank 0 writes.

torchrun starts every process with WORLD_SIZE, RANK and LOCAL_RANK in the environment
(and MASTER_ADDR/MASTER_PORT for the rendezvous).  With WORLD_SIZE > 1, :func:`join`
initialises the default process group once per process: NCCL when the run's device is
CUDA (each process then uses ``cuda:LOCAL_RANK``), gloo on the CPU.

Sharding.  Every process plans the same sweep (robustpath.embedding.engine), so all of them know
the stream of (chunk, pipeline, sample) items and its cut into forward passes of
``batch_size`` images.  Rank 0 tells the others which stored entries it will reuse;
the forward passes that still need computing are then split into ``world_size``
contiguous blocks (:func:`split_passes`), one per rank.  Each rank embeds its block with
exactly the forward passes a single process would run, and rank 0 gathers the rows
(:meth:`Group.gather_rows`) and puts them where a single process would have, so the
tasks see the same arrays.  Corruption randomness is drawn per sample (seeded from the
run seed and the sample id), never from the rank or the batch.

Only rank 0 reads and writes the run folder and the embedding cache, prints progress and
scores the tasks; the other ranks return after the embeddings.  An error on one rank is
reported on every rank at the next exchange (:func:`settled`); a rank that dies is
noticed by the others at their next collective, or at the latest after the process group
timeout (``ROBUSTPATH_DIST_TIMEOUT`` seconds, default 1800).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from robustpath.errors import RobustPathError, UsageError

TIMEOUT_ENV = "ROBUSTPATH_DIST_TIMEOUT"
TORCHRUN_ENV = "TORCHELASTIC_RUN_ID"  # set by torchrun in every process it starts
DEFAULT_TIMEOUT_SECONDS = 1800
GATHER_BLOCK_BYTES = 64 << 20  # rows sent per rank and round when gathering embeddings


class DistributedError(RobustPathError):
    """Another rank failed, or the processes of a torchrun launch lost contact."""


def launched() -> bool:
    """True in a process that torchrun started: WORLD_SIZE > 1, or a torchrun launch of one process.

    torchrun sets TORCHELASTIC_RUN_ID in every process it starts; a launch with
    ``--nproc-per-node 1`` then still gets its (one-process) group, so that the
    distributed path runs exactly as it will with more processes.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    return world_size > 1 or (world_size == 1 and bool(os.environ.get(TORCHRUN_ENV)))


def env_rank() -> int:
    """This process's global rank as torchrun set it (0 outside torchrun); no process group needed."""
    return _env_int("RANK", 0) if launched() else 0


def is_main_process() -> bool:
    """True outside torchrun and in rank 0: the process that prints and writes."""
    return env_rank() == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"environment variable {name} must be an integer, got '{value}'") from None


def timeout_seconds() -> float:
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value:
        return float(DEFAULT_TIMEOUT_SECONDS)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise UsageError(f"{TIMEOUT_ENV} must be a positive number of seconds, got '{value}'")
    return seconds


@dataclass
class Group:
    """The default process group of this torchrun launch, as the sweep uses it."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: object  # torch.device of this rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        return {"world_size": self.world_size, "backend": self.backend}

    def barrier(self) -> None:
        import torch.distributed as dist

        with self._collective("a barrier"):
            dist.barrier()

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (any picklable object)."""
        import torch.distributed as dist

        box = [value if self.is_main else None]
        with self._collective("receiving rank 0's plan"):
            dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def all_objects(self, value) -> list:
        """Every rank's ``value`` (small picklable objects), in rank order, on every rank."""
        import torch.distributed as dist

        values = [None] * self.world_size
        with self._collective("exchanging results"):
            dist.all_gather_object(values, value)
        return values

    def gather_rows(self, rows, counts: list[int], block_bytes: int = GATHER_BLOCK_BYTES) -> list | None:
        """Every rank's (count, D) float32 ``rows`` on rank 0 (None elsewhere).

        ``counts[r]`` is the number of rows of rank r (all ranks know them).  The rows
        travel in rounds of at most ``block_bytes`` per rank (so rank 0's device never
        holds all embeddings at once), each padded to the same length and trimmed again.
        """
        import numpy as np
        import torch
        import torch.distributed as dist

        if len(rows) != counts[self.rank]:
            raise ValueError(f"rank {self.rank} holds {len(rows)} rows, the plan says {counts[self.rank]}")
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        width = rows.shape[1] if rows.ndim == 2 else 0
        step = max(1, block_bytes // max(4 * width, 1))
        device = self.device if self.backend == "nccl" else torch.device("cpu")
        out = [np.zeros((count, width), dtype=np.float32) for count in counts] if self.is_main else None
        for first in range(0, max(max(counts), 1), step):
            send = torch.zeros((step, width), dtype=torch.float32)
            mine = rows[first : first + step]
            send[: len(mine)] = torch.from_numpy(mine)
            send = send.to(device)
            receive = [torch.empty_like(send) for _ in range(self.world_size)] if self.is_main else None
            with self._collective("gathering embeddings on rank 0"):
                dist.gather(send, receive, dst=0)
            if self.is_main:
                for block, target in zip(receive, out):
                    part = target[first : first + step]
                    part[:] = block[: len(part)].cpu().numpy()
        return out

    def _object_device(self):
        return self.device if self.backend == "nccl" else None

    @contextlib.contextmanager
    def _collective(self, what: str):
        try:
            yield
        except RobustPathError:
            raise
        except Exception as exc:  # noqa: BLE001 - backend errors (closed connection, timeout) → one line
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: lost contact with the other processes while {what} "
                f"(another rank probably failed; see its error) [{_first_line(exc)}]"
            ) from exc


_GROUP: Group | None = None


def join(device):
    """(Group, device of this rank) under torchrun with WORLD_SIZE > 1; (None, device) otherwise.

    Initialises the default process group on the first call of the process (NCCL for a
    CUDA ``device``, gloo otherwise); later calls return the same group.
    """
    global _GROUP
    if not launched():
        return None, device
    import torch

    if device.type == "cuda":
        local_rank = _env_int("LOCAL_RANK", 0)
        if local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s) are visible: "
                "start at most one process per GPU (torchrun --nproc-per-node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if _GROUP is not None:
        if _GROUP.backend != backend:
            raise UsageError(f"this torchrun launch already uses {_GROUP.backend}; a later run asked for {device.type}")
        return _GROUP, device
    _GROUP = _init(backend, device)
    return _GROUP, device


def _init(backend: str, device) -> Group:
    import atexit
    from datetime import timedelta

    import torch.distributed as dist

    if not dist.is_available():
        raise UsageError("torch was built without torch.distributed; run without torchrun")
    rank, world_size = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    if not dist.is_initialized():
        options = {"device_id": device} if backend == "nccl" else {}
        try:
            dist.init_process_group(
                backend=backend, timeout=timedelta(seconds=timeout_seconds()), rank=rank, world_size=world_size, **options
            )
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(f"rank {rank}: cannot set up the {backend} process group: {_first_line(exc)}") from exc
        atexit.register(leave)
    return Group(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=_env_int("LOCAL_RANK", 0),
        backend=backend, device=device,
    )


def _first_line(exc: BaseException) -> str:
    """The first line of a backend error, without the source location gloo puts in front."""
    import re

    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0])
    return line if len(line) <= 120 else line[:117] + "..."


def leave() -> None:
    """Destroy the process group (if this module created one)."""
    global _GROUP
    if _GROUP is None:
        return
    _GROUP = None
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def settled(group: Group | None):
    """Run the block on every rank, then make sure all ranks succeeded.

    A rank whose block raised re-raises its error after telling the others; the others
    raise DistributedError naming the failed rank and its message.  No-op without a group.
    """
    if group is None:
        yield
        return
    error: Exception | None = None
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - reported to the other ranks, then re-raised
        error = exc
    try:
        messages = group.all_objects(None if error is None else f"{type(error).__name__}: {error}")
    except DistributedError:
        if error is not None:
            raise error from None
        raise
    if error is not None:
        raise error
    failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
    if failed:
        rank, message = failed[0]
        raise DistributedError(f"rank {rank} of {group.world_size} failed: {message}")


def split_passes(passes: list[tuple[int, int]], world_size: int) -> list[tuple[int, int]]:
    """Stream ranges (begin, end) of each rank: ``passes`` (the forward passes to compute,
    in stream order) cut into ``world_size`` contiguous blocks of nearly equal length.

    A rank without passes gets an empty range.  Ranges never overlap and keep stream order.
    """
    ranges = []
    for rank in range(world_size):
        first, last = rank * len(passes) // world_size, (rank + 1) * len(passes) // world_size
        if first == last:
            at = passes[first - 1][1] if first > 0 else (passes[0][0] if passes else 0)
            ranges.append((at, at))
        else:
            ranges.append((passes[first][0], passes[last - 1][1]))
    return ranges
