"""Reproducible randomness: one CPU generator per sample, drawn from before any device work.

A ``generator`` argument anywhere in this package accepts

* ``None``: draws come from torch's global CPU generator (reproducible only under
  ``torch.manual_seed`` and the same batch composition),
* one ``torch.Generator``: draws for the whole batch, sample after sample (the
  result for a sample then depends on its position in the batch),
* a sequence of B generators, one per sample: sample i depends only on its own
  generator, so results do not depend on batch size, order or device. This is
  what :func:`sample_generators` makes and what evaluations should pass.

Generators must be CPU generators; random numbers are drawn on the CPU and then
moved to the images' device.

Two streams per sample. :func:`sample_generators` gives each sample a
:class:`SampleGenerator` seeded from (run seed, sample id, corruption, severity),
which also carries ``shared_seed``, derived from (run seed, sample id, corruption)
alone: the same at every severity. An operation whose severities must nest (markup:
severity s + 1 draws severity s's strokes and more) asks :func:`draw_uniform` for
the shared stream; every other operation draws from the per-severity one. Plain
``torch.Generator`` objects carry no shared seed: they are used as given for both
(seed them alike for every severity to get nested marks).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from corruptions.errors import CorruptionError

GeneratorArgument = torch.Generator | Sequence[torch.Generator] | None


SHARED_STREAM = "every-severity"  # stands for the severity in the seed of the shared stream


def seed_for_sample(seed: int, sample_id: str, corruption: str, severity: int | None) -> int:
    """A 63-bit seed from a SHA-256 of (seed, sample id, corruption, severity).

    Stable across processes, platforms and Python versions (unlike ``hash()``).
    ``severity=None`` gives the seed of the sample's stream shared by every severity.
    """
    level = SHARED_STREAM if severity is None else str(int(severity))
    material = "\x1f".join(["corruptions-v1", str(int(seed)), str(sample_id), corruption, level])
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class SampleGenerator(torch.Generator):
    """A CPU generator for one sample at one severity, with the seed of its severity-independent stream.

    Seeded by :func:`seed_for_sample` (seed, sample id, corruption, severity);
    ``shared_seed`` is :func:`seed_for_sample` (seed, sample id, corruption, None).
    Create with ``SampleGenerator("cpu")``; :meth:`reseed` sets both (the sweep engine
    re-seeds one pool of them per batch).
    """

    shared_seed: int | None = None

    def reseed(self, seed: int, sample_id: str, corruption: str, severity: int) -> SampleGenerator:
        self.manual_seed(seed_for_sample(seed, sample_id, corruption, severity))
        self.shared_seed = seed_for_sample(seed, sample_id, corruption, None)
        return self


def sample_generators(
    seed: int, sample_ids: Sequence[str], corruption: str, severity: int
) -> list[SampleGenerator]:
    """One :class:`SampleGenerator` per sample id (see :func:`seed_for_sample`)."""
    if isinstance(sample_ids, str):
        raise CorruptionError("sample_ids must be a sequence of ids, not one string")
    return [SampleGenerator("cpu").reseed(seed, sample_id, corruption, severity) for sample_id in sample_ids]


def draw_uniform(generator: GeneratorArgument, batch_size: int, count: int, *, shared: bool = False) -> torch.Tensor:
    """Uniform [0, 1) numbers, float64 tensor (batch_size, count) on the CPU.

    With a sequence of generators, row i is drawn from generator i only, and the
    same ``count`` draws are made whatever the batch: a sample's numbers never
    depend on the other samples. ``shared=True`` draws each row from the sample's
    stream shared by every severity (a fresh generator seeded with its
    ``shared_seed``; the generator itself is used where it has none), so the first
    k numbers are the same at every severity whatever ``count`` is.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand((batch_size, count), generator=generator, dtype=torch.float64)
    generators = list(generator)
    if len(generators) != batch_size:
        raise CorruptionError(
            f"got {len(generators)} generators for a batch of {batch_size} images; "
            "pass one generator per image (see corruptions.sample_generators)"
        )
    if shared:
        generators = [_shared_stream(g) for g in generators]
    rows = [torch.rand(count, generator=g, dtype=torch.float64) for g in generators]
    return torch.stack(rows) if rows else torch.empty((0, count), dtype=torch.float64)


def _shared_stream(generator: torch.Generator) -> torch.Generator:
    shared_seed = getattr(generator, "shared_seed", None)
    if shared_seed is None:
        return generator
    stream = torch.Generator(device="cpu")
    stream.manual_seed(shared_seed)
    return stream
