"""Air bubble under the coverslip: a dark refractive rim round a hazy, brighter interior.

Light bends at the edge of a trapped air bubble, so its outline shows as a dark
ring; inside, the mounting medium is missing and the tissue looks washed out: brighter
and lower in contrast (x <- x + HAZE * (1 - x)).

``bubble(x, {count, radius})``: ``count`` bubbles per image, bubble k centred at
(u0 W, u1 H) with radius ``radius`` * (0.7 + 0.6 u2) px, from 3 uniform numbers per
bubble of the sample's generator (a fixed set of :data:`~corruptions.artefacts.geometry.MAX_ITEMS`
bubbles is drawn, so n + 1 bubbles are the n bubbles plus one: nested severities).
Each bubble is drawn over the previous ones: haze inside (one-pixel soft edge), then
the rim, a ring of half-width max(0.5, RIM_SHARE * r) px on the circle, darkened by
RIM_DARKNESS.
"""
from __future__ import annotations

import torch

from corruptions.artefacts.geometry import ITEM_FIELD_DEFAULTS, ITEM_FIELDS, distance_to_points, read_items, soft_inside, soft_ring
from corruptions.registry import register_operation
from corruptions.values import field_ranges

HAZE = 0.35
RIM_DARKNESS = 0.6
RIM_SHARE = 0.08


def bubble_geometry(uniform: torch.Tensor, radius: float, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centres (B, N, 2), radii (B, N)) float64 px from uniform (B, N, 3)."""
    centres = torch.stack([uniform[..., 0] * width, uniform[..., 1] * height], dim=-1)
    return centres, radius * (0.7 + 0.6 * uniform[..., 2])


@register_operation(
    "bubble",
    parameter="count, radius",
    unit="count: bubbles per image; radius: nominal bubble radius, px of the image it acts on (each 0.7-1.3 times it)",
    description="Air bubbles: a dark refractive rim round a hazy, brighter, low-contrast interior.",
    random=True,
    nested=True,
    fields=ITEM_FIELD_DEFAULTS,
    accepts_number=False,
    ranges=field_ranges(ITEM_FIELDS, count=0.0, radius=0.0),
)
def bubble(x: torch.Tensor, value, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] under ``count`` air bubbles; same shape, dtype, device, in [0, 1]."""
    batch, _, height, width = x.shape
    count, radius, uniform = read_items("bubble", value, generator, batch, 3)
    if count == 0 or radius == 0.0 or batch == 0:
        return x
    return render_bubbles(x, *bubble_geometry(uniform, radius, height, width))


def render_bubbles(x: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """x (B, 3, H, W) under bubbles at ``centres`` (B, N, 2) px with ``radii`` (B, N) px, drawn in order."""
    height, width = x.shape[-2:]
    centres, radii = centres.to(x.device), radii.to(device=x.device, dtype=x.dtype)
    out = x
    for k in range(centres.shape[1]):
        distance = distance_to_points(centres[:, k], height, width, x.dtype)
        haze = soft_inside(distance, radii[:, k]).mul_(HAZE).unsqueeze(1)  # x <- x + haze (1 - x)
        rim = soft_ring(distance, radii[:, k], (RIM_SHARE * radii[:, k]).clamp(min=0.5)).mul_(-RIM_DARKNESS).add_(1.0)
        out = out.mul(1.0 - haze).add_(haze).mul_(rim.unsqueeze(1))
    return out.clamp_(0.0, 1.0)
