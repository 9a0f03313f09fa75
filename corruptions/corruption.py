"""Corruptions bound to a preset: ``corr(x, severity, *, generator=None)``.

``get_corruption("gaussian_blur")`` looks the name up in a preset (default
"pathology") and returns a :class:`Corruption` that maps severity 0 to the clean
image and severities 1..N to the preset's parameter table.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from corruptions.errors import CorruptionError
from corruptions.preset import ParameterValue, Preset, PresetEntry, load_preset
from corruptions.randomness import GeneratorArgument, sample_generators
from corruptions.registry import Operation, get_operation

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Corruption:
    """A corruption of one preset, callable as ``corr(x, severity, *, generator=None)``.

    Attributes: ``name`` (as in the preset), ``operation`` (registered operation
    name), ``unit`` (of the parameter), ``max_severity`` (N), ``random`` (whether
    the generator matters), ``preset`` (preset name), ``entry`` (the full
    :class:`PresetEntry`, with sources and note) and ``nested`` (whether severity
    s + 1 keeps the artefacts of severity s when both get the same generators:
    :meth:`sample_generators` seeds them so).
    """

    name: str
    operation: str
    unit: str
    max_severity: int
    random: bool
    preset: str
    entry: PresetEntry
    nested: bool = False

    def sample_generators(self, seed: int, sample_ids, severity: int) -> list | None:
        """The per-sample generators to pass at ``severity``, or None for a corruption that is not random.

        Seeded by (seed, sample id, corruption, severity), or without the severity
        for a nested corruption, so that its severities draw the same artefacts.
        """
        self._check_severity(severity)
        if not self.random:
            return None
        return sample_generators(seed, sample_ids, self.name, None if self.nested else severity)

    def parameter(self, severity: int) -> ParameterValue | None:
        """The preset value of ``severity`` (None for severity 0, the clean image).

        Table values are read-only mappings; use ``dict(...)`` (or
        :meth:`PresetEntry.as_dict`) before writing them to JSON.
        """
        self._check_severity(severity)
        return None if severity == 0 else self.entry.values[int(severity) - 1]

    def __call__(self, x: torch.Tensor, severity: int, *, generator: GeneratorArgument = None) -> torch.Tensor:
        """Corrupt x, a float tensor (B, 3, H, W) in [0, 1] on any device, at ``severity``.

        Returns a tensor of the same shape, dtype and device, in [0, 1]; severity 0
        returns ``x`` itself. float16 / bfloat16 images are processed in float32
        and cast back. ``generator``: None, one CPU generator, or one per image
        (see :func:`corruptions.sample_generators`); only random corruptions use it.
        """
        self._check_severity(severity)
        _check_images(x)
        if severity == 0:
            return x
        work = x.float() if x.dtype in _LOW_PRECISION else x
        out = self._operation()(work, self.entry.values[int(severity) - 1], generator=generator)
        return out.to(x.dtype)

    def _operation(self) -> Operation:
        return get_operation(self.operation)

    def _check_severity(self, severity: int) -> None:
        if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 0 <= severity <= self.max_severity:
            raise CorruptionError(
                f"severity {severity!r} of '{self.name}' is out of range; expected an integer "
                f"0..{self.max_severity} (0 = clean)"
            )


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        dtype = f", dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""
        raise CorruptionError(f"images must be a float tensor (B, 3, H, W) in [0, 1]; got {shape}{dtype}")


def _resolve_preset(preset: str | Preset) -> Preset:
    return preset if isinstance(preset, Preset) else load_preset(preset)


def get_corruption(name: str, preset: str | Preset = "pathology") -> Corruption:
    """The corruption ``name`` of ``preset`` (a built-in name, a TOML path or a loaded Preset)."""
    loaded = _resolve_preset(preset)
    entry = loaded.entry(name)
    operation = get_operation(entry.operation)
    return Corruption(
        name=entry.name,
        operation=entry.operation,
        unit=entry.unit,
        max_severity=len(entry.values),
        random=operation.random,
        preset=loaded.name,
        entry=entry,
        nested=operation.nested,
    )


def list_corruptions(preset: str | Preset = "pathology") -> list[str]:
    """Corruption names of ``preset``, in the order of its file."""
    return list(_resolve_preset(preset).corruptions)
