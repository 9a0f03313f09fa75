"""Pixel grids, per-sample random items and soft-edged shapes shared by the physical artefacts.

Coordinates are in pixels of the image an artefact is drawn on: x from 0 (left edge)
to W, y from 0 (top edge) to H, pixel (row i, column j) centred at (j + 0.5, i + 0.5).
Shapes have a one-pixel soft edge, so their coverage of a pixel is a number in [0, 1].

Random items (spots, bubbles) come from :func:`item_uniforms`: a fixed number of
uniform numbers per sample whatever the count asked for, so that with the same
generator n + 1 items are the n items plus one more (nested severities).
"""
from __future__ import annotations

import torch

from corruptions.values import Field, field_defaults, read_random_value

MAX_ITEMS = 64
ITEM_FIELDS = {"count": Field(0.0, float(MAX_ITEMS), whole=True), "radius": Field(0.0, 1e5)}
ITEM_FIELD_DEFAULTS = field_defaults(ITEM_FIELDS)


def read_items(operation: str, value, generator, batch: int, draws: int) -> tuple[int, float, torch.Tensor]:
    """(count, radius, uniform (batch, count, draws) float64) for a {count, radius} value.

    ``MAX_ITEMS * draws`` uniform numbers are drawn per sample whatever the count,
    so the first ``count`` items are the same for every count.
    """
    parameters, uniform = read_random_value(operation, value, ITEM_FIELDS, generator, batch, MAX_ITEMS * draws)
    count = int(parameters["count"])
    return count, parameters["radius"], uniform.view(batch, MAX_ITEMS, draws)[:, :count]


def pixel_centres(height: int, width: int, *, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ys (1, H, 1), xs (1, 1, W)): the pixel-centre coordinates, ready to broadcast over (B, H, W)."""
    ys = torch.arange(height, dtype=dtype, device=device).add_(0.5).view(1, height, 1)
    xs = torch.arange(width, dtype=dtype, device=device).add_(0.5).view(1, 1, width)
    return ys, xs


def distance_to_points(points: torch.Tensor, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, H, W): distance from each pixel centre to the point (x, y) of its sample; points (B, 2) on the device."""
    ys, xs = pixel_centres(height, width, dtype=dtype, device=points.device)
    points = points.to(dtype)
    return torch.hypot(xs - points[:, 0].view(-1, 1, 1), ys - points[:, 1].view(-1, 1, 1))


def soft_inside(distance: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Coverage in [0, 1] of a disk of ``radius`` (B,) at pixels ``distance`` (B, H, W) from its centre.

    clamp(radius + 0.5 - distance, 0, 1): 1 inside, 0 outside, a one-pixel ramp across the edge.
    """
    return (radius.view(-1, 1, 1) + 0.5 - distance).clamp_(0.0, 1.0)


def soft_ring(distance: torch.Tensor, radius: torch.Tensor, half_width: torch.Tensor) -> torch.Tensor:
    """Coverage in [0, 1] of a ring of ``half_width`` (B,) around the circle of ``radius`` (B,)."""
    return (half_width.view(-1, 1, 1) + 0.5 - (distance - radius.view(-1, 1, 1)).abs()).clamp_(0.0, 1.0)
