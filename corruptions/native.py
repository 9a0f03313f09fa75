"""Spatial parameters restated in pixels of the native image, whatever stage a corruption acts at.

A corruption at stage "pre" acts on the native image (e.g. a 40 px patch); at
stage "post" it acts on the model input, after the native image was resized by
s = resized side / native side (224 / 40 = 5.6). A length of L pixels of the
image it acts on is then L / s native pixels: a blur of sigma 2 after the resize
is a blur of sigma 2 * 40 / 224 = 0.36 native pixels.

How a value scales is declared by its operation (``Operation.spatial``):
"length" (sigma, downsampling factor: divided by s), "scale" (pixelate's
fraction of each side kept: multiplied by s), None (not spatial, or relative to
the image size like markup widths: unchanged, so no native equivalent is given).
"""
from __future__ import annotations

from collections.abc import Mapping

from corruptions.errors import CorruptionError
from corruptions.preset import PresetEntry
from corruptions.registry import get_operation

STAGES = ("pre", "post")


def _side(size: int | tuple[int, int] | list[int]) -> int:
    """The shorter side of a size given as one number or as (height, width)."""
    side = min(size) if isinstance(size, (tuple, list)) else size
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise CorruptionError(f"image size {size!r}: expected a positive whole number or (height, width)")
    return side


def equivalent_native_sigma(sigma: float, acting_size: int | tuple[int, int], native_size: int | tuple[int, int]) -> float:
    """A blur of ``sigma`` pixels on an image of ``acting_size`` in pixels of the native image.

    sigma * native / acting, with the shorter sides when sizes are (height, width).
    ``acting_size`` is the size the native image was resized to before the blur
    (before any centre crop): e.g. ``equivalent_native_sigma(2.0, 224, 40)`` = 0.357.
    """
    return float(sigma) * _side(native_size) / _side(acting_size)


def native_equivalent(
    entry: PresetEntry,
    severity: int,
    *,
    stage: str,
    native_size: int | tuple[int, int],
    resized_size: int | tuple[int, int],
) -> dict | None:
    """The parameter of ``severity`` in native pixels, or None when it has no size.

    ``entry``: a :class:`PresetEntry` (``preset.entry(name)``, or ``corr.entry``).
    ``stage``: "pre" (acts on the native image, so the value is already native) or
    "post" (acts after resizing ``native_size`` to ``resized_size``; sizes are one
    number or (height, width), shorter sides are used, and ``resized_size`` is the
    size before any centre crop). Returns ``{"value": v, "unit": u}`` for
    operations whose parameter is a length or a scale, None otherwise (colour
    changes, markup, imagecorruptions levels).

    >>> from corruptions import load_preset
    >>> native_equivalent(load_preset().entry("gaussian_blur"), 4, stage="post", native_size=40, resized_size=224)
    {'value': 0.5357142857142857, 'unit': 'sigma, pixels of the native image'}
    """
    if stage not in STAGES:
        raise CorruptionError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= len(entry.values):
        raise CorruptionError(f"severity {severity!r} of '{entry.name}': expected 1..{len(entry.values)}")
    operation = get_operation(entry.operation)
    value = entry.values[severity - 1]
    if operation.spatial is None or isinstance(value, Mapping):
        return None
    scale = 1.0 if stage == "pre" else _side(resized_size) / _side(native_size)
    if operation.spatial == "length":
        native = float(value) / scale
    else:  # "scale": pixels of the acting image per pixel of the image
        native = float(value) * scale
    return {"value": native, "unit": f"{operation.parameter}, pixels of the native image" if operation.spatial == "length"
            else f"{operation.parameter}, low-resolution pixels per native pixel (1 or more: no native detail lost)"}
