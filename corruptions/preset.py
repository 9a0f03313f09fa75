"""Presets: TOML files that give every corruption its operation and one value per severity.

Built-in presets live in ``corruptions/presets/*.toml`` (read with
importlib.resources); ``load_preset`` also accepts a path to your own file. The
format is documented at the top of ``presets/pathology.toml``. Every problem is
reported as a one-line :class:`CorruptionError` naming the file, the key and what
was expected.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import tomllib
import torch

from corruptions.errors import CorruptionError, unknown_name_message
from corruptions.registry import Operation, format_number, get_operation, list_operations

ParameterValue = float | Mapping[str, float]


@dataclass(frozen=True)
class PresetEntry:
    """One corruption of a preset: ``values[s - 1]`` is the parameter of severity s.

    ``sources`` has one entry per value (a single source in the file is repeated).
    Table values (e.g. markup) are read-only mappings with every field filled in.
    """

    name: str
    operation: str
    values: tuple[ParameterValue, ...]
    unit: str
    sources: tuple[str, ...]
    note: str

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready copy (table values become dicts, tuples lists)."""
        return {
            "name": self.name,
            "operation": self.operation,
            "values": [dict(v) if isinstance(v, Mapping) else v for v in self.values],
            "unit": self.unit,
            "sources": list(self.sources),
            "note": self.note,
        }


@dataclass(frozen=True)
class Preset:
    """A named set of corruptions, in the order of the file."""

    name: str
    description: str
    path: str
    corruptions: Mapping[str, PresetEntry]

    def severities(self, name: str) -> int:
        """Number of severity levels (N) of corruption ``name``; levels are 1..N, 0 is clean."""
        return len(self.entry(name).values)

    def entry(self, name: str) -> PresetEntry:
        """The :class:`PresetEntry` of corruption ``name``; unknown names raise with a suggestion."""
        try:
            return self.corruptions[name]
        except KeyError:
            message = unknown_name_message("corruption", name, self.corruptions)
            raise CorruptionError(f"{message} (preset '{self.name}')") from None

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready copy: name, description, path and every entry's :meth:`PresetEntry.as_dict`."""
        return {
            "name": self.name,
            "description": self.description,
            "path": self.path,
            "corruptions": {name: entry.as_dict() for name, entry in self.corruptions.items()},
        }


# Other names accepted for built-in presets (old spellings).
PRESET_ALIASES = {"imagenet_c": "imagenet-c"}


def list_presets() -> list[str]:
    """Names of the built-in presets (the TOML files in corruptions/presets/), sorted; aliases not included."""
    folder = resources.files("corruptions") / "presets"
    return sorted(item.name[: -len(".toml")] for item in folder.iterdir() if item.name.endswith(".toml"))


def load_preset(name_or_path: str | Path = "pathology") -> Preset:
    """Read a built-in preset by name, or a preset TOML file by path.

    Built-in presets are parsed once per process (a Preset is immutable); files
    given by path are read every time. ``PRESET_ALIASES`` maps old names to
    built-in ones (``imagenet_c`` is ``imagenet-c``).
    """
    if isinstance(name_or_path, str):
        name_or_path = PRESET_ALIASES.get(name_or_path, name_or_path)
    if isinstance(name_or_path, str) and name_or_path in list_presets():
        return _load_builtin_preset(name_or_path)
    return _load_preset_uncached(str(name_or_path))


def combine_presets(presets: "list[Preset] | tuple[Preset, ...]") -> Preset:
    """One preset holding every corruption of ``presets``, in order (one preset is returned as it is).

    The combination is named ``"a+b"`` after its parts and its ``path`` lists their
    files separated by ``"; "``. A corruption name that two presets both define
    raises a :class:`CorruptionError` naming it and both presets: the rows of one
    sweep must be told apart by name.

    >>> combined = combine_presets([load_preset("pathology"), load_preset("slide-artefacts")])
    >>> combined.name, "jpeg" in combined.corruptions, "hue" in combined.corruptions
    ('pathology+slide-artefacts', True, True)
    """
    if not presets:
        raise CorruptionError("no preset given: expected at least one preset name or file")
    if len(presets) == 1:
        return presets[0]
    entries: dict[str, PresetEntry] = {}
    owners: dict[str, str] = {}
    for preset in presets:
        for name, entry in preset.corruptions.items():
            if name in entries:
                raise CorruptionError(
                    f"corruption '{name}' is in both preset '{owners[name]}' and preset '{preset.name}'; "
                    "combine presets whose corruption names differ")
            entries[name], owners[name] = entry, preset.name
    return Preset(
        name="+".join(preset.name for preset in presets),
        description=" | ".join(preset.description for preset in presets if preset.description),
        path="; ".join(str(preset.path) for preset in presets),
        corruptions=MappingProxyType(entries),
    )


@functools.cache
def _load_builtin_preset(name: str) -> Preset:
    return _load_preset_uncached(name)


def _load_preset_uncached(name_or_path: str) -> Preset:
    text, where = _read_preset_text(name_or_path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CorruptionError(f"{where}: not valid TOML ({error})") from None
    return _parse_preset(document, where)


def _read_preset_text(name_or_path: str) -> tuple[str, str]:
    if name_or_path in list_presets():
        resource = resources.files("corruptions") / "presets" / f"{name_or_path}.toml"
        return resource.read_text(encoding="utf-8"), str(resource)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists() or len(path.parts) > 1:
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as error:
            raise CorruptionError(f"cannot read preset file {path}: {error.strerror or error}") from None
    raise CorruptionError(unknown_name_message("preset", name_or_path, list_presets()) + " (or a path to a .toml file)")


def _parse_preset(document: dict[str, Any], where: str) -> Preset:
    header = document.get("preset", {})
    if not isinstance(header, dict):
        raise CorruptionError(f"{where}: [preset] must be a table with name and description")
    name = header.get("name", Path(where).stem)
    description = header.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise CorruptionError(f"{where}: preset.name and preset.description must be strings")
    table = document.get("corruptions")
    if not isinstance(table, dict) or not table:
        raise CorruptionError(f"{where}: missing [corruptions] table; expected one [corruptions.<name>] table per corruption")
    entries = {key: _parse_entry(key, raw, where) for key, raw in table.items()}
    return Preset(name=name, description=description, path=where, corruptions=MappingProxyType(entries))


def _parse_entry(name: str, raw: Any, where: str) -> PresetEntry:
    key = f"corruptions.{name}"
    if not isinstance(raw, dict):
        raise CorruptionError(f"{where}: {key} must be a table with operation, unit, values, sources, note")
    known = {"operation", "unit", "values", "sources", "note"}
    if extra := sorted(set(raw) - known):
        raise CorruptionError(f"{where}: {key} has unknown key(s) {', '.join(extra)}; expected only {', '.join(sorted(known))}")
    operation_name = raw.get("operation", name)
    if not isinstance(operation_name, str) or operation_name not in list_operations():
        message = unknown_name_message("operation", str(operation_name), list_operations())
        raise CorruptionError(f"{where}: {key}.operation: {message}")
    operation = get_operation(operation_name)
    values = raw.get("values")
    if not isinstance(values, list) or not values:
        raise CorruptionError(f"{where}: {key}.values must be a non-empty list, one value per severity; got {values!r}")
    parsed = tuple(_parse_value(operation, value, f"{where}: {key}.values[{i}]") for i, value in enumerate(values))
    _check_values(operation, parsed, f"{where}: {key}.values")
    unit = raw.get("unit", operation.unit)
    note = raw.get("note", "")
    if not isinstance(unit, str) or not isinstance(note, str):
        raise CorruptionError(f"{where}: {key}.unit and {key}.note must be strings")
    sources = raw.get("sources", [])
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources) or len(sources) not in (0, 1, len(parsed)):
        raise CorruptionError(
            f"{where}: {key}.sources must be a list of strings with one entry for all values "
            f"or one per value ({len(parsed)}); got {sources!r}"
        )
    if len(sources) <= 1:
        sources = (sources or [""]) * len(parsed)
    return PresetEntry(name=name, operation=operation_name, values=parsed, unit=unit, sources=tuple(sources), note=note)


def _check_values(operation: Operation, values: tuple[ParameterValue, ...], where: str) -> None:
    """Each value in its operation's ranges, severities moving away from the clean image, then a trial."""
    for i, value in enumerate(values):
        _check_range(operation, value, f"{where}[{i}]: severity {i + 1}")
    if operation.monotone:
        _check_monotone(operation, values, where)
    for i, value in enumerate(values):
        _try_value(operation, value, f"{where}[{i}]")


def _numbers(operation: Operation, value: ParameterValue) -> dict[str | None, float]:
    """The numbers of one value by field name (None for a plain number)."""
    return dict(value) if isinstance(value, Mapping) else {None: float(value)}


def _label(operation: Operation, number: str | None) -> str:
    return operation.parameter if number is None else number


def _describe(operation: Operation, value: ParameterValue) -> str:
    return ", ".join(f"{_label(operation, n)} = {format_number(v)}" for n, v in _numbers(operation, value).items())


def _check_range(operation: Operation, value: ParameterValue, where: str) -> None:
    """Every number of ``value`` lies in the range its operation declares."""
    for number, amount in _numbers(operation, value).items():
        allowed = operation.range_of(number)
        if not allowed.contains(amount):
            raise CorruptionError(
                f"{where} has {_label(operation, number)} = {format_number(amount)}, outside the range that operation "
                f"'{operation.name}' allows: {allowed.describe()}"
            )


def _check_monotone(operation: Operation, values: tuple[ParameterValue, ...], where: str) -> None:
    """Each severity is further from the clean image than the one before (see Operation.monotone)."""
    for level in range(1, len(values)):
        before, after = _numbers(operation, values[level - 1]), _numbers(operation, values[level])
        steps = {number: operation.range_of(number).distance(after[number])
                 - operation.range_of(number).distance(before[number]) for number in after}
        closer = [number for number, step in steps.items() if step < 0]
        if closer:
            number = closer[0]
            raise CorruptionError(
                f"{where}[{level}]: severity {level + 1} has {_label(operation, number)} = "
                f"{format_number(after[number])}, closer to the clean image "
                f"({format_number(operation.range_of(number).identity)}) than severity {level} "
                f"({format_number(before[number])}); each severity must move further away than the one before"
            )
        if not any(step > 0 for step in steps.values()):
            raise CorruptionError(
                f"{where}[{level}]: severity {level + 1} ({_describe(operation, values[level])}) is no further from the "
                f"clean image than severity {level}; each severity must move further away than the one before"
            )


def _try_value(operation: Operation, value: ParameterValue, where: str) -> None:
    """Check a value at load time: the operation's own ``validate``, else one run on a 2x2 image."""
    try:
        if operation.validate is not None:
            operation.validate(value)
        else:
            operation(torch.full((1, 3, 2, 2), 0.5), value, generator=[torch.Generator().manual_seed(0)])
    except CorruptionError as error:
        raise CorruptionError(f"{where}: {error}") from None


def _parse_number(value: Any, where: str, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CorruptionError(f"{where}: expected {expected}; got {value!r}")
    return float(value)


def _parse_value(operation: Operation, value: Any, where: str) -> ParameterValue:
    fields = operation.fields
    if isinstance(value, dict):
        if not fields:
            raise CorruptionError(f"{where}: operation '{operation.name}' takes one number ({operation.parameter}), not a table")
        unknown = sorted(set(value) - set(fields))
        missing = sorted(k for k, default in fields.items() if default is None and k not in value)
        if unknown or missing:
            raise CorruptionError(
                f"{where}: table for '{operation.name}' needs keys {', '.join(fields)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )
        filled = {k: _parse_number(value.get(k, default), f"{where}.{k}", "a number") for k, default in fields.items()}
        return MappingProxyType(filled)
    if not operation.accepts_number:
        raise CorruptionError(f"{where}: operation '{operation.name}' needs a table with keys {', '.join(fields)}; got {value!r}")
    return _parse_number(value, where, f"a number ({operation.parameter})")
