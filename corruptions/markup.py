"""Pen markup: semi-transparent felt-tip strokes drawn over the tissue.

``markup(x, {"strokes": n, "width": w, "alpha": a}, generator=...)`` takes a float
tensor x (B, 3, H, W) in [0, 1] on any device and returns the same shape, dtype
and device, in [0, 1].

* Per sample, on the CPU and from that sample's generator only: one ink colour,
  then ``DRAWS_PER_STROKE`` uniform numbers per stroke, stroke after stroke (so
  with the same generator, n + 1 strokes are the n strokes plus one more). Shapes
  are in :mod:`corruptions.markup_geometry`.
* On x.device, for the whole batch at once: the distance from every pixel centre
  to each stroke's polyline (a Python loop over segment chunks, never over
  pixels), turned into a coverage in [0, 1] with a one-pixel soft edge
  (coverage = clamp(width / 2 + 0.5 - distance, 0, 1)).
* Ink acts like a marker, multiplying what is under it:
  x <- x * (1 - alpha * coverage * (1 - ink)), stroke after stroke, so crossings
  are darker and white background takes the ink colour at opacity alpha.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from corruptions.errors import CorruptionError
from corruptions.markup_geometry import DRAWS_PER_STROKE, stroke_polylines
from corruptions.randomness import draw_uniform
from corruptions.registry import register_operation

# Pathology pen inks, RGB in [0, 1] (typical felt-tip marker hues on a glass slide).
INKS: dict[str, tuple[float, float, float]] = {
    "green": (0.10, 0.55, 0.25),
    "blue": (0.12, 0.25, 0.75),
    "black": (0.10, 0.10, 0.12),
    "red": (0.80, 0.12, 0.15),
}
ELEMENT_BUDGET = 1 << 22  # elements per (chunk, B, H, W) temporary when measuring distances


def _markup_parameters(value: Mapping[str, float]) -> tuple[int, float, float]:
    if not isinstance(value, Mapping) or set(value) != {"strokes", "width", "alpha"}:
        raise CorruptionError(
            f"markup value {value!r} must be a table with exactly the keys strokes, width, alpha"
        )
    strokes, width, alpha = float(value["strokes"]), float(value["width"]), float(value["alpha"])
    if strokes < 0 or strokes != int(strokes) or width <= 0 or not 0 <= alpha <= 1:
        raise CorruptionError(
            f"markup value {dict(value)!r}: expected strokes a whole number >= 0, width > 0 "
            "(fraction of min(H, W)), alpha in [0, 1]"
        )
    return int(strokes), width, alpha


def _stroke_coverage(points: torch.Tensor, half_width: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Coverage (B, H, W) in [0, 1] of one stroke per sample.

    points: (B, P, 2) pixel coordinates (x, y) on the target device; half_width: (B,).
    """
    batch, count = points.shape[0], points.shape[1] - 1
    xs = torch.arange(width, device=points.device, dtype=points.dtype) + 0.5
    ys = torch.arange(height, device=points.device, dtype=points.dtype) + 0.5
    start, delta = points[:, :-1], points[:, 1:] - points[:, :-1]
    length2 = (delta * delta).sum(-1).clamp_min(1e-12)
    chunk = max(1, min(count, ELEMENT_BUDGET // max(1, batch * height * width)))
    nearest2 = torch.full((batch, height, width), float("inf"), device=points.device, dtype=points.dtype)
    for first in range(0, count, chunk):
        part = slice(first, first + chunk)
        ax, ay = start[:, part, 0, None, None], start[:, part, 1, None, None]  # (B, c, 1, 1)
        dx, dy = delta[:, part, 0, None, None], delta[:, part, 1, None, None]
        px, py = xs.view(1, 1, 1, -1) - ax, ys.view(1, 1, -1, 1) - ay  # (B, c, 1, W), (B, c, H, 1)
        t = ((px * dx + py * dy) / length2[:, part, None, None]).clamp_(0.0, 1.0)  # (B, c, H, W)
        distance2 = (px - t * dx).square_() + (py - t * dy).square_()
        nearest2 = torch.minimum(nearest2, distance2.amin(dim=1))
    return (half_width.view(-1, 1, 1) + 0.5 - nearest2.sqrt()).clamp_(0.0, 1.0)


@register_operation(
    "markup",
    parameter="strokes, width, alpha",
    unit="strokes per image; width as a fraction of min(H, W) (at least 1 pixel); alpha = ink opacity",
    description="Semi-transparent pen strokes (curves, loops, ticks) in green, blue, black or red ink.",
    random=True,
    fields={"strokes": None, "width": None, "alpha": None},
    accepts_number=False,
)
def markup(x: torch.Tensor, value: Mapping[str, float], *, generator=None) -> torch.Tensor:
    """Draw ``strokes`` pen strokes of ``width`` x min(H, W) pixels (>= 1) at opacity ``alpha``.

    Each stroke's width varies by a random 0.8-1.2 around the nominal one. The
    marks of sample i depend only on its generator (and on the image size only
    through scaling), never on the rest of the batch.
    """
    strokes, width_fraction, alpha = _markup_parameters(value)
    batch, _, height, width = x.shape
    if strokes == 0 or alpha == 0 or batch == 0:
        return x
    uniform = draw_uniform(generator, batch, 1 + strokes * DRAWS_PER_STROKE)
    ink_index = (uniform[:, 0] * len(INKS)).long().clamp_(max=len(INKS) - 1)
    per_stroke = uniform[:, 1:].reshape(batch, strokes, DRAWS_PER_STROKE)
    polylines = stroke_polylines(per_stroke, height, width)  # (B, N, P, 2), CPU float64
    width_pixels = (width_fraction * min(height, width) * (0.8 + 0.4 * per_stroke[..., 9])).clamp_(min=1.0)

    work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    polylines = polylines.to(device=x.device, dtype=work_dtype)
    half_widths = (width_pixels / 2).to(device=x.device, dtype=work_dtype)
    inks = torch.tensor(list(INKS.values()), dtype=work_dtype)[ink_index].to(x.device)  # (B, 3)
    absorbed = (alpha * (1.0 - inks)).view(batch, 3, 1, 1)
    transmitted = torch.ones((batch, 3, height, width), device=x.device, dtype=work_dtype)
    for stroke in range(strokes):
        coverage = _stroke_coverage(polylines[:, stroke], half_widths[:, stroke], height, width)
        transmitted *= 1.0 - absorbed * coverage.unsqueeze(1)
    return (x * transmitted.to(x.dtype)).clamp_(0.0, 1.0)
