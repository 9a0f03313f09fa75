"""Reading the parameter of one severity: a number or a table of named numbers, range-checked.

Operations of the slide-artefact family take tables such as ``{count = 3, radius = 4}``;
:func:`read_value` turns one into a dict of floats, filling defaults and checking each
field against its :class:`Field` range, with a one-line :class:`CorruptionError` that
names the operation, the field and the range. :func:`read_random_value` also draws a
random operation's uniform numbers, the same ones whatever the value.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from corruptions.errors import CorruptionError
from corruptions.randomness import GeneratorArgument, draw_uniform
from corruptions.registry import Range


@dataclass(frozen=True)
class Field:
    """One named parameter: valid range [low, high], ``whole`` for whole numbers, ``default`` (None = required)."""

    low: float
    high: float
    default: float | None = None
    whole: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        return f"{kind} in [{self.low:g}, {self.high:g}]"


def field_ranges(fields: Mapping[str, Field], **identity: float) -> dict[str, Range]:
    """The ``ranges`` argument of ``register_operation``: each field's bounds, and the value
    that leaves the image unchanged (``identity``: a keyword per field; severities must move
    away from it)."""
    return {name: Range(field.low, field.high, identity=identity[name], whole=field.whole)
            for name, field in fields.items()}


def field_defaults(fields: Mapping[str, Field]) -> dict[str, float | None]:
    """The ``fields`` argument of ``register_operation``: each name and its default (None = required)."""
    return {name: field.default for name, field in fields.items()}


def read_value(operation: str, value: float | Mapping[str, float], fields: Mapping[str, Field]) -> dict[str, float]:
    """{field: float} from a table, or from a number (then the first field; the others take defaults).

    Raises CorruptionError for unknown or missing fields and for values out of range.
    """
    first = next(iter(fields))
    table = dict(value) if isinstance(value, Mapping) else {first: value}
    unknown = sorted(set(table) - set(fields))
    missing = sorted(name for name, field in fields.items() if field.default is None and name not in table)
    if unknown or missing:
        problems = ([f"unknown {', '.join(unknown)}"] if unknown else []) + ([f"missing {', '.join(missing)}"] if missing else [])
        raise CorruptionError(f"{operation} value {table!r}: expected keys {', '.join(fields)} ({'; '.join(problems)})")
    return {name: _checked(operation, name, table.get(name, field.default), field) for name, field in fields.items()}


def read_random_value(operation: str, value, fields: Mapping[str, Field], generator: GeneratorArgument,
                      batch: int, draws: int) -> tuple[dict[str, float], torch.Tensor]:
    """(:func:`read_value`, uniform numbers (batch, draws) float64 from the generator).

    The numbers are drawn whatever the value, so every severity of a nested
    corruption draws the same ones.
    """
    return read_value(operation, value, fields), draw_uniform(generator, batch, draws)


def _checked(operation: str, name: str, number, field: Field) -> float:
    """``number`` as a float if it is a finite number in the field's range (whole if required), else CorruptionError."""
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
        raise CorruptionError(f"{operation} {name} = {number!r}: expected {field.describe()}")
    number = float(number)
    if not field.low <= number <= field.high or (field.whole and number != int(number)):
        raise CorruptionError(f"{operation} {name} = {number:g}: expected {field.describe()}")
    return number
