"""Tile seam: a brightness step along a straight line where two scanner tiles meet.

Whole-slide scanners stitch the slide from camera tiles; when two neighbouring
tiles were exposed or white-balanced differently, a patch that straddles the join
shows a straight, axis-aligned step in brightness.

``tile_seam(x, factor)``: per sample, from 3 uniform numbers of its generator: the
seam's orientation (u0 < 0.5: a vertical seam between two columns, else a
horizontal one between two rows), its position (the first scaled row or column is
round((0.25 + 0.5 u1) * side)) and the side scaled (u2 < 0.5: the pixels before the
seam, else those from it on). Pixels on that side are multiplied by ``factor``, the
others are unchanged. The draws do not depend on the factor, so severities share
one seam and only the step grows (nested).
"""
from __future__ import annotations

import torch

from corruptions.registry import register_operation
from corruptions.values import Field, field_ranges, read_random_value

FACTOR = {"factor": Field(0.0, 1.0)}


def seam_mask(uniform: torch.Tensor, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(B, 1, H, W) bool: the pixels on the scaled side of each sample's seam; uniform (B, 3) float64."""
    vertical = uniform[:, 0] < 0.5
    side = torch.where(vertical, torch.tensor(float(width), dtype=torch.float64), torch.tensor(float(height), dtype=torch.float64))
    first = torch.floor((0.25 + 0.5 * uniform[:, 1]) * side + 0.5)  # first row / column of the far side
    far_side = uniform[:, 2] >= 0.5
    rows = torch.arange(height, device=device).view(1, height, 1)
    columns = torch.arange(width, device=device).view(1, 1, width)
    first, vertical, far_side = first.to(device).view(-1, 1, 1), vertical.to(device).view(-1, 1, 1), far_side.to(device).view(-1, 1, 1)
    beyond = torch.where(vertical, columns >= first, rows >= first)
    return (beyond == far_side).unsqueeze(1)


@register_operation(
    "tile_seam",
    parameter="factor",
    unit="brightness factor of the pixels on one side of the seam (1 = clean)",
    description="A straight brightness step where two scanner tiles meet: one side multiplied by the factor.",
    random=True,
    nested=True,
    ranges=field_ranges(FACTOR, factor=1.0),
)
def tile_seam(x: torch.Tensor, factor: float, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] with one side of a random seam multiplied by ``factor``; same shape, dtype, device."""
    batch, _, height, width = x.shape
    parameters, uniform = read_random_value("tile_seam", factor, FACTOR, generator, batch, 3)
    factor = parameters["factor"]
    if factor == 1.0 or batch == 0:
        return x
    mask = seam_mask(uniform, height, width, x.device)
    return torch.where(mask, x * factor, x)
