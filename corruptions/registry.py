"""Registry of corruption operations: the functions that presets refer to by name.

An operation is a plain function ``op(x, value, *, generator=None) -> x'`` where

* ``x`` is a float tensor (B, 3, H, W) in [0, 1] on any device,
* ``value`` is the parameter of one severity level: a float, or a dict of named
  floats for operations registered with ``fields`` (e.g. markup),
* ``generator`` is None, one CPU ``torch.Generator`` or a sequence of B of them
  (see :mod:`corruptions.randomness`); operations that are not random ignore it,

and the result has the same shape, dtype, device and range as ``x``.

Registering an operation declares, beside its code, the values its parameter may
take (``ranges``: one :class:`Range` per number, with the value that leaves the
image unchanged) and whether severities must move away from that value
(``monotone``); ``load_preset`` checks every preset value against them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from corruptions.errors import CorruptionError, unknown_name_message

OperationFunction = Callable[..., Any]
SPATIAL_KINDS = (None, "length", "scale")


def format_number(value: float) -> str:
    """A parameter value as written in a preset: 3, 0.25, 1e+308."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


@dataclass(frozen=True)
class Range:
    """The values one parameter may take: ``low`` <= v <= ``high`` (strict at an ``open`` end).

    ``whole`` asks for whole numbers; ``identity`` is the value that leaves the
    image unchanged (how far a severity is from the clean image is measured from
    it; None when no value does).
    """

    low: float
    high: float
    identity: float | None = None
    low_open: bool = False
    high_open: bool = False
    whole: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise CorruptionError(f"range [{self.low}, {self.high}]: low must be below high")

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below and (not self.whole or float(value).is_integer())

    def distance(self, value: float) -> float:
        """How far ``value`` is from the identity (0 when there is none)."""
        return abs(float(value) - self.identity) if self.identity is not None else 0.0

    def describe(self) -> str:
        """E.g. "[0, 100]", "(0, 1]" or "[0, 100], whole numbers"."""
        interval = (f"{'(' if self.low_open else '['}{format_number(self.low)}, "
                    f"{format_number(self.high)}{')' if self.high_open else ']'}")
        return f"{interval}, whole numbers" if self.whole else interval

_OPERATIONS: dict[str, Operation] = {}


@dataclass(frozen=True)
class Operation:
    """A registered operation and what its parameter means.

    ``parameter`` names the value (e.g. "sigma"), ``unit`` says how it is measured
    (e.g. "pixels of the image the blur acts on"). ``fields`` maps the names a
    table value may hold to their default (None = required); it is empty when the
    value must be one number. ``accepts_number`` says whether a plain number is
    allowed as well as a table.

    ``spatial`` says how the value depends on the size of the image the operation
    acts on, so that it can be restated in pixels of the native image (see
    :mod:`corruptions.native`): "length" for a length in its pixels (a blur
    sigma, a downsampling factor), "scale" for a number of its pixels per pixel
    of the image (pixelate's fraction of each side kept), None when it does not
    depend on the size (colour changes, markup widths given as fractions of the
    image).
    ``ranges`` gives each number of the value its :class:`Range`: keyed by the
    ``fields`` of a table value, or by ``parameter`` for a plain number.
    ``monotone``: every severity of a preset must be further from the clean image
    than the one before: no number closer to its range's identity, at least one
    further away (False where the parameter alone does not say so).
    ``validate``, when given, checks a table value (raising CorruptionError)
    instead of a trial run of the operation on a tiny image when a preset loads.
    ``nested`` (random operations only): with the same generator, a value further
    from clean keeps every artefact of a milder one (the same fold, wider; the same
    spots plus more), so seed it once for all severities (see
    :mod:`corruptions.randomness`).
    """

    name: str
    function: OperationFunction
    parameter: str
    unit: str
    description: str
    random: bool = False
    fields: Mapping[str, float | None] = field(default_factory=dict)
    accepts_number: bool = True
    spatial: str | None = None
    validate: Callable[[Any], None] | None = None
    ranges: Mapping[str, Range] = field(default_factory=dict)
    monotone: bool = True
    nested: bool = False

    def __call__(self, x, value, *, generator=None):
        return self.function(x, value, generator=generator)

    def range_of(self, number: str | None = None) -> Range:
        """The Range of field ``number`` of a table value, or of the plain number (None)."""
        return self.ranges[self.parameter if number is None else number]


def _check_ranges(name: str, parameter: str, fields: Mapping, accepts_number: bool, ranges: Mapping) -> None:
    """Every number an operation takes has a declared Range, and nothing else does."""
    expected = set(fields) if fields else {parameter}
    if accepts_number and fields and parameter not in fields:
        raise CorruptionError(f"operation '{name}': a plain number is its field '{parameter}', which is not in fields")
    if set(ranges) != expected or not all(isinstance(r, Range) for r in ranges.values()):
        raise CorruptionError(
            f"operation '{name}' must declare ranges={{...}} with one corruptions.registry.Range for each of "
            f"{', '.join(sorted(expected))}; got {sorted(ranges)}"
        )


def register_operation(
    name: str,
    *,
    parameter: str,
    unit: str,
    description: str,
    random: bool = False,
    fields: Mapping[str, float | None] | None = None,
    accepts_number: bool = True,
    spatial: str | None = None,
    validate: Callable[[Any], None] | None = None,
    ranges: Mapping[str, Range],
    monotone: bool = True,
    nested: bool = False,
) -> Callable[[OperationFunction], OperationFunction]:
    """Decorator: register ``op(x, value, *, generator=None)`` under ``name``.

    ``ranges`` is required: the allowed values of every number the operation takes
    (see :class:`Operation`).  Registering a name twice raises
    :class:`CorruptionError` (no silent overwrite).  The decorated function is
    returned unchanged.
    """
    if not fields and not accepts_number:
        raise CorruptionError(f"operation '{name}' must accept a number or declare fields")
    _check_ranges(name, parameter, fields or {}, accepts_number, ranges)
    if nested and not random:
        raise CorruptionError(f"operation '{name}': only a random operation can be nested")
    if spatial not in SPATIAL_KINDS:
        raise CorruptionError(f"operation '{name}': spatial must be one of {SPATIAL_KINDS}; got {spatial!r}")

    def decorator(function: OperationFunction) -> OperationFunction:
        if name in _OPERATIONS:
            raise CorruptionError(
                f"operation '{name}' is already registered "
                f"(by {_OPERATIONS[name].function.__module__}); choose another name"
            )
        _OPERATIONS[name] = Operation(
            name=name,
            function=function,
            parameter=parameter,
            unit=unit,
            description=description,
            random=random,
            fields=MappingProxyType(dict(fields or {})),
            accepts_number=accepts_number,
            spatial=spatial,
            validate=validate,
            ranges=MappingProxyType(dict(ranges)),
            monotone=monotone,
            nested=nested,
        )
        return function

    return decorator


def list_operations() -> list[str]:
    """Names of every registered operation, sorted."""
    return sorted(_OPERATIONS)


def get_operation(name: str) -> Operation:
    """The registered :class:`Operation` called ``name``; unknown names raise with a suggestion."""
    try:
        return _OPERATIONS[name]
    except KeyError:
        raise CorruptionError(unknown_name_message("operation", name, _OPERATIONS)) from None
