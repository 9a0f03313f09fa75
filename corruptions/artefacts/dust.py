"""Dark spots and dust: small dark blobs on the slide or the coverslip.

Dust, debris and stain precipitate show as small, nearly neutral dark blobs that
block light: x <- x * (1 - opacity * c), c the blob's coverage of the pixel.

``dust(x, {count, radius})``: ``count`` spots per image, spot k centred at (u0 W, u1 H)
with radius ``radius`` * (0.5 + u2) px and opacity 0.6 + 0.35 u3, from 4 uniform numbers
per spot of the sample's generator (a fixed set of
:data:`~corruptions.artefacts.geometry.MAX_ITEMS` spots is drawn, so n + 1 spots are the n
spots plus one: nested severities). Coverage has a one-pixel soft edge, so a spot of
radius 0.2 px is a faint dot, never nothing.
"""
from __future__ import annotations

import torch

from corruptions.artefacts.geometry import ITEM_FIELD_DEFAULTS, ITEM_FIELDS, distance_to_points, read_items, soft_inside
from corruptions.registry import register_operation
from corruptions.values import field_ranges



def dust_geometry(uniform: torch.Tensor, radius: float, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """(centres (B, N, 2), radii (B, N), opacities (B, N)) float64 from uniform (B, N, 4)."""
    centres = torch.stack([uniform[..., 0] * width, uniform[..., 1] * height], dim=-1)
    return centres, radius * (0.5 + uniform[..., 2]), 0.6 + 0.35 * uniform[..., 3]


@register_operation(
    "dust",
    parameter="count, radius",
    unit="count: spots per image; radius: nominal spot radius, px of the image it acts on (each 0.5-1.5 times it)",
    description="Dark spots and dust: small, nearly opaque dark blobs with soft edges.",
    random=True,
    nested=True,
    fields=ITEM_FIELD_DEFAULTS,
    accepts_number=False,
    ranges=field_ranges(ITEM_FIELDS, count=0.0, radius=0.0),
)
def dust(x: torch.Tensor, value, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] with ``count`` dark spots; same shape, dtype, device, in [0, 1]."""
    batch, _, height, width = x.shape
    count, radius, uniform = read_items("dust", value, generator, batch, 4)
    if count == 0 or radius == 0.0 or batch == 0:
        return x
    return render_dust(x, *dust_geometry(uniform, radius, height, width))


def render_dust(x: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, opacities: torch.Tensor) -> torch.Tensor:
    """x (B, 3, H, W) times the transmittance of spots at ``centres`` (B, N, 2) px, ``radii`` and ``opacities`` (B, N)."""
    batch, _, height, width = x.shape
    centres = centres.to(x.device)
    radii, opacities = radii.to(device=x.device, dtype=x.dtype), opacities.to(device=x.device, dtype=x.dtype)
    transmitted = torch.ones((batch, 1, height, width), dtype=x.dtype, device=x.device)
    for k in range(centres.shape[1]):
        coverage = soft_inside(distance_to_points(centres[:, k], height, width, x.dtype), radii[:, k]).unsqueeze(1)
        transmitted = transmitted * (1.0 - opacities[:, k].view(-1, 1, 1, 1) * coverage)
    return x * transmitted
