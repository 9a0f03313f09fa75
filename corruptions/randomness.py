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

Nested corruptions (``Corruption.nested``: the artefacts of severity s + 1 contain
those of severity s, e.g. the same fold, only wider) need one stream per sample for
every severity: seed them with ``severity=None``, as
:meth:`corruptions.Corruption.sample_generators` does. Their operations draw a
fixed number of uniform numbers whatever the parameter, so the same generator
gives the same geometry at every severity.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from corruptions.errors import CorruptionError

GeneratorArgument = torch.Generator | Sequence[torch.Generator] | None


ALL_SEVERITIES = "all severities"  # stands for the severity in the seeds of nested corruptions


def seed_for_sample(seed: int, sample_id: str, corruption: str, severity: int | None) -> int:
    """A 63-bit seed from a SHA-256 of (seed, sample id, corruption, severity).

    Stable across processes, platforms and Python versions (unlike ``hash()``).
    ``severity=None`` gives the one seed a nested corruption uses at every severity.
    """
    level = ALL_SEVERITIES if severity is None else str(int(severity))
    material = "\x1f".join(["corruptions-v1", str(int(seed)), str(sample_id), corruption, level])
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def sample_generators(
    seed: int, sample_ids: Sequence[str], corruption: str, severity: int | None
) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per sample id, seeded by :func:`seed_for_sample`.

    ``severity=None``: the generators of a nested corruption, the same at every severity.
    """
    if isinstance(sample_ids, str):
        raise CorruptionError("sample_ids must be a sequence of ids, not one string")
    generators = []
    for sample_id in sample_ids:
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed_for_sample(seed, sample_id, corruption, severity))
        generators.append(generator)
    return generators


def draw_uniform(generator: GeneratorArgument, batch_size: int, count: int) -> torch.Tensor:
    """Uniform [0, 1) numbers, float64 tensor (batch_size, count) on the CPU.

    With a sequence of generators, row i is drawn from generator i only, and the
    same ``count`` draws are made whatever the batch: a sample's numbers never
    depend on the other samples.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand((batch_size, count), generator=generator, dtype=torch.float64)
    generators = list(generator)
    if len(generators) != batch_size:
        raise CorruptionError(
            f"got {len(generators)} generators for a batch of {batch_size} images; "
            "pass one generator per image (see corruptions.sample_generators)"
        )
    rows = [torch.rand(count, generator=g, dtype=torch.float64) for g in generators]
    return torch.stack(rows) if rows else torch.empty((0, count), dtype=torch.float64)
