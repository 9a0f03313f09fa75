"""Registry of corruption operations: the functions that presets refer to by name.

An operation is a plain function ``op(x, value, *, generator=None) -> x'`` where

* ``x`` is a float tensor (B, 3, H, W) in [0, 1] on any device,
* ``value`` is the parameter of one severity level: a float, or a dict of named
  floats for operations registered with ``fields`` (e.g. markup),
* ``generator`` is None, one CPU ``torch.Generator`` or a sequence of B of them
  (see :mod:`corruptions.randomness`); operations that are not random ignore it,

and the result has the same shape, dtype, device and range as ``x``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from corruptions.errors import CorruptionError, unknown_name_message

OperationFunction = Callable[..., Any]
SPATIAL_KINDS = (None, "length", "scale")

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
    nested: bool = False

    def __call__(self, x, value, *, generator=None):
        return self.function(x, value, generator=generator)


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
    nested: bool = False,
) -> Callable[[OperationFunction], OperationFunction]:
    """Decorator: register ``op(x, value, *, generator=None)`` under ``name``.

    Registering a name twice raises :class:`CorruptionError` (no silent overwrite).
    The decorated function is returned unchanged.
    """
    if not fields and not accepts_number:
        raise CorruptionError(f"operation '{name}' must accept a number or declare fields")
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
