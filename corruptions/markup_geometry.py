"""Shapes of pen strokes, built from uniform random numbers (no randomness of its own).

Pathologists mark slides with felt-tip pens: free-hand lines, loops around a region
of interest, and check marks. Each stroke here is a polyline of
``POINTS_PER_STROKE`` points, placed relative to the image (anchor as a fraction of
width and height, sizes as fractions of min(H, W)), so the same random numbers
draw the same marks on a 40x40 patch and on its 224x224 resize.

* curve (65 %): a Catmull-Rom spline through 4 control points that walk in a
  slowly bending direction; length about 0.6-1.35 x min(H, W);
* loop (20 %): an open or slightly overlapping ellipse (0.8-1.1 turns), radius
  0.12-0.37 x min(H, W);
* tick (15 %): a check mark of two straight legs, 0.08-0.2 x min(H, W).
"""
from __future__ import annotations

import math

import torch

SEGMENTS_PER_SPAN = 8
POINTS_PER_STROKE = 3 * SEGMENTS_PER_SPAN + 1
DRAWS_PER_STROKE = 10  # uniform numbers consumed per stroke, whatever its kind
CURVE_SHARE, LOOP_SHARE = 0.65, 0.20


def _catmull_rom(control: torch.Tensor) -> torch.Tensor:
    """(..., 4, 2) control points -> (..., POINTS_PER_STROKE, 2) points on the spline through them."""
    first = 2 * control[..., :1, :] - control[..., 1:2, :]
    last = 2 * control[..., -1:, :] - control[..., -2:-1, :]
    padded = torch.cat([first, control, last], dim=-2)  # (..., 6, 2)
    t = torch.linspace(0, 1, SEGMENTS_PER_SPAN + 1, dtype=control.dtype)[:-1].view(-1, 1)
    t2, t3 = t * t, t * t * t
    spans = []
    for i in range(3):
        p0, p1, p2, p3 = (padded[..., i + k : i + k + 1, :] for k in range(4))
        spans.append(
            0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t3)
        )
    spans.append(control[..., -1:, :])
    return torch.cat(spans, dim=-2)


def _rotate(points: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate (..., P, 2) points about the origin by angle (...,) radians."""
    cos, sin = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1)
    x, y = points[..., 0], points[..., 1]
    return torch.stack([x * cos - y * sin, x * sin + y * cos], dim=-1)


def stroke_polylines(uniform: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Polylines for strokes described by ``uniform`` (..., DRAWS_PER_STROKE) numbers in [0, 1).

    Returns (..., POINTS_PER_STROKE, 2) float64 CPU tensor of pixel coordinates
    (x in [0, W] left to right, y in [0, H] top to bottom; points may fall outside
    the image). The anchor scales with the image sides, the shape with min(H, W),
    so a loop stays round on non-square images.
    """
    u = uniform.to(torch.float64)
    kind, anchor_x, anchor_y, direction, size = u[..., 0], u[..., 1], u[..., 2], u[..., 3], u[..., 4]
    anchor = torch.stack([(0.1 + 0.8 * anchor_x) * width, (0.1 + 0.8 * anchor_y) * height], dim=-1)
    heading = 2 * math.pi * direction

    # curve: a random walk of three steps whose heading bends by up to +-0.6 rad each step
    step = 0.2 + 0.25 * size
    bends = (u[..., 5:8] - 0.5) * 1.2
    headings = heading.unsqueeze(-1) + torch.cumsum(bends, dim=-1)
    steps = step.unsqueeze(-1).unsqueeze(-1) * torch.stack([torch.cos(headings), torch.sin(headings)], dim=-1)
    control = torch.cat([torch.zeros_like(steps[..., :1, :]), torch.cumsum(steps, dim=-2)], dim=-2)
    curve = _catmull_rom(control)  # relative to the anchor

    # loop: part of an ellipse round the anchor
    radius_x = 0.12 + 0.25 * size
    radius_y = radius_x * (0.5 + 0.5 * u[..., 5])
    t = torch.linspace(0, 1, POINTS_PER_STROKE, dtype=torch.float64)
    angles = 2 * math.pi * u[..., 6:7] + 2 * math.pi * (0.8 + 0.3 * u[..., 7:8]) * t
    ellipse = torch.stack([radius_x.unsqueeze(-1) * torch.cos(angles), radius_y.unsqueeze(-1) * torch.sin(angles)], dim=-1)
    loop = _rotate(ellipse, heading)

    # tick: short leg down-right, long leg up-right, tilted by up to +-0.4 rad
    length = (0.08 + 0.12 * size).view(*size.shape, 1, 1)
    legs = POINTS_PER_STROKE // 2
    s1 = torch.linspace(0, 1, legs + 1, dtype=torch.float64).view(-1, 1)
    s2 = torch.linspace(0, 1, POINTS_PER_STROKE - legs, dtype=torch.float64)[1:].view(-1, 1)
    corner, end = torch.tensor([0.35, 0.35], dtype=torch.float64), torch.tensor([1.0, -0.6], dtype=torch.float64)
    tick_shape = torch.cat([s1 * corner, corner + s2 * (end - corner)], dim=0)  # (P, 2)
    tick = _rotate(length * tick_shape, (direction - 0.5) * 0.8)

    is_curve = (kind < CURVE_SHARE).view(*kind.shape, 1, 1)
    is_loop = ((kind >= CURVE_SHARE) & (kind < CURVE_SHARE + LOOP_SHARE)).view(*kind.shape, 1, 1)
    shape = torch.where(is_curve, curve, torch.where(is_loop, loop, tick))
    return anchor.unsqueeze(-2) + shape * min(height, width)

