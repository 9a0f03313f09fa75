"""Colour and intensity operations: brightness, contrast, saturation, hue.

Every function takes a float tensor x (B, 3, H, W) in [0, 1] on any device and
returns a new tensor of the same shape, dtype and device, clipped to [0, 1].
None of them is random; ``generator`` is accepted for the common signature and
ignored. HSV follows scikit-image (hue as a fraction of the colour circle).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from corruptions.color import hue_from_rgb, rgb_from_hue
from corruptions.errors import CorruptionError
from corruptions.registry import Range, register_operation


@register_operation(
    "brightness",
    parameter="delta",
    unit="added to HSV value (V in [0, 1]); negative darkens",
    description="Add delta to the HSV value channel and clip to [0, 1], as ImageNet-C brightness.",
    ranges={"delta": Range(-1.0, 1.0, identity=0.0)},
)
def brightness(x: torch.Tensor, delta: float, *, generator=None) -> torch.Tensor:
    """V <- clip(V + delta, 0, 1) in HSV, hue and saturation kept (ImageNet-C ``brightness``).

    Positive deltas brighten towards white-out; pixels already at V = 1 (e.g. slide
    background) stay as they are.

    Computed without a round trip through HSV: with H and S fixed every channel is
    proportional to V (RGB = V * (1 - S * ramp(H))), so RGB' = RGB * V' / V; black
    pixels (V = 0, hence S = 0) become the grey V'.
    """
    value = x.amax(dim=1, keepdim=True)
    new_value = torch.clamp(value + float(delta), 0.0, 1.0)
    lit = value > 0
    ratio = new_value / torch.where(lit, value, torch.ones_like(value))
    return torch.where(lit, x * ratio, new_value.expand_as(x)).clamp_(0.0, 1.0)


@register_operation(
    "contrast",
    parameter="factor",
    unit="multiplies deviations from each image's per-channel mean; < 1 lowers contrast",
    description="(x - mean) * factor + mean with per-image, per-channel means, clipped, as ImageNet-C contrast.",
    ranges={"factor": Range(0.0, 100.0, identity=1.0)},
)
def contrast(x: torch.Tensor, factor: float, *, generator=None) -> torch.Tensor:
    """x <- clip((x - m) * factor + m, 0, 1), m the mean of each image and channel over H, W.

    As ImageNet-C ``contrast`` (which averages over the two spatial axes only, so a
    factor of 0 gives a flat image of the mean colour, not grey). Factor < 1 lowers
    contrast, > 1 raises it.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    return ((x - mean) * float(factor) + mean).clamp_(0.0, 1.0)


def _factor_and_offset(value: float | Mapping[str, float]) -> tuple[float, float]:
    if isinstance(value, Mapping):
        unknown = set(value) - {"factor", "offset"}
        if unknown or "factor" not in value:
            raise CorruptionError(
                f"saturation value {dict(value)!r} must be a number or a table with 'factor' "
                "and optionally 'offset'"
            )
        return float(value["factor"]), float(value.get("offset", 0.0))
    return float(value), 0.0


@register_operation(
    "saturation",
    parameter="factor",
    unit="multiplies HSV saturation (S in [0, 1]); < 1 fades colour; table {factor, offset} adds offset",
    description="S <- clip(S * factor + offset, 0, 1) in HSV, as ImageNet-C saturate.",
    fields={"factor": None, "offset": 0.0},
    ranges={"factor": Range(0.0, 100.0, identity=1.0), "offset": Range(-1.0, 1.0, identity=0.0)},
)
def saturation(x: torch.Tensor, value: float | Mapping[str, float], *, generator=None) -> torch.Tensor:
    """S <- clip(S * factor + offset, 0, 1) in HSV (ImageNet-C ``saturate``).

    ``value`` is the factor, or a mapping {"factor": f, "offset": o} (offset
    defaults to 0). Factor 0 gives a grey-level image (RGB all equal to V).

    Computed without a round trip through HSV: with H and V fixed, V - RGB is
    proportional to S, so RGB' = V - (V - RGB) * S' / S. Grey pixels (S = 0) have
    hue 0 (red) in scikit-image's convention, so a positive offset tints them red:
    RGB' = (V, V (1 - S'), V (1 - S')), exactly as the HSV round trip does.
    """
    factor, offset = _factor_and_offset(value)
    value_channel = x.amax(dim=1, keepdim=True)
    spread = value_channel - x.amin(dim=1, keepdim=True)
    coloured = spread > 0  # V > 0 wherever spread > 0
    safe_spread = torch.where(coloured, spread, torch.ones_like(spread))
    sat = spread / torch.where(coloured, value_channel, torch.ones_like(value_channel))  # 0 for greys
    new_sat = torch.clamp(sat * factor + offset, 0.0, 1.0)
    out_coloured = value_channel - (value_channel - x) * (new_sat * value_channel / safe_spread)
    faded = value_channel * (1.0 - new_sat)
    out_grey = torch.cat([value_channel, faded, faded], dim=1)
    return torch.where(coloured, out_coloured, out_grey).clamp_(0.0, 1.0)


@register_operation(
    "hue",
    parameter="shift",
    unit="fraction of the colour circle (1.0 = 360 degrees), wraps around",
    description="Rotate HSV hue by shift (a fraction of the colour circle), saturation and value kept.",
    ranges={"shift": Range(-0.5, 0.5, identity=0.0)},  # half the circle either way: further is nearer again
)
def hue(x: torch.Tensor, shift: float, *, generator=None) -> torch.Tensor:
    """H <- (H + shift) mod 1 in HSV; shift 0.5 is the complementary colour.

    Grey pixels (saturation 0) are unchanged whatever the shift. Computed from
    value V and chroma C = V - min = V * S, which the rotation keeps:
    RGB' = V - C * ramp(H'), the sector formula of :func:`corruptions.color.hsv_to_rgb`.
    """
    value = x.amax(dim=1, keepdim=True)
    chroma = value - x.amin(dim=1, keepdim=True)
    rotated = torch.remainder(hue_from_rgb(x, value, chroma) + float(shift), 1.0)
    return rgb_from_hue(rotated, value, chroma).clamp_(0.0, 1.0)
