"""Pen markup: semi-transparent felt-tip strokes drawn over the tissue.

``markup(x, {"strokes": n, "width": w, "alpha": a}, generator=...)`` takes a float
tensor x (B, 3, H, W) in [0, 1] on any device and returns the same shape, dtype
and device, in [0, 1].

* Per sample, on the CPU and from that sample's generator only (markup is a nested
  corruption: :meth:`corruptions.Corruption.sample_generators` seeds it from (run
  seed, sample id, corruption), the same at every severity): one ink colour, then
  ``DRAWS_PER_STROKE`` uniform numbers per stroke, stroke after stroke. So n + 1
  strokes are the n strokes plus one more, and the severities of a preset nest:
  with strokes, width and alpha non-decreasing from one severity to the next (as
  in every shipped preset), severity s + 1 draws severity s's strokes, none
  thinner or lighter, plus its extra ones, and every pixel inked at s is inked at
  least as much at s + 1. Shapes are in :mod:`corruptions.markup_geometry`.
* On x.device, for the whole batch at once: the distance from the pixel centres
  near each stroke to its polyline (a Python loop over strokes and segment
  chunks, never over pixels or images), turned into a coverage in [0, 1] with a
  one-pixel soft edge (coverage = clamp(width / 2 + 0.5 - distance, 0, 1)).
* Ink acts like a marker, multiplying what is under it:
  x <- x * (1 - alpha * coverage * (1 - ink)), stroke after stroke, so crossings
  are darker and white background takes the ink colour at opacity alpha.

Marks are rendered on every call and not cached: robustpath's engine corrupts each
batch of test images once per variant (corruption, severity, stage), so a
sample's marks are drawn once per severity and stage and a cache would never be
hit. The two stages draw the same marks (same generator, sizes relative to the
image) at two resolutions.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from corruptions.errors import CorruptionError
from corruptions.markup_geometry import DRAWS_PER_STROKE, stroke_polylines
from corruptions.randomness import draw_uniform
from corruptions.registry import Range, register_operation

# Pathology pen inks, RGB in [0, 1] (typical felt-tip marker hues on a glass slide).
INKS: dict[str, tuple[float, float, float]] = {
    "green": (0.10, 0.55, 0.25),
    "blue": (0.12, 0.25, 0.75),
    "black": (0.10, 0.10, 0.12),
    "red": (0.80, 0.12, 0.15),
}
MAX_STROKES = 100  # per image; each stroke is drawn in its own pass
ELEMENT_BUDGET = 1 << 22  # elements per (B, chunk, window) temporary when measuring distances


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
    Distances are measured only in a window around each segment: a pixel farther
    than half_width + 0.5 from a segment gets no ink from it, so each segment needs
    the pixels of its bounding box grown by half_width + 1. The windows have one
    size for the whole batch (the largest needed, at most the image), are moved
    inside the image, and their squared distances are merged per pixel with
    ``scatter_reduce(amin)``; pixels in no window are farther than every segment.
    The result does not depend on the window sizes, so not on the batch either.
    """
    batch, count = points.shape[0], points.shape[1] - 1
    dtype, device = points.dtype, points.device
    nearest2 = torch.full((batch, height * width), float("inf"), device=device, dtype=dtype)
    if count > 0 and batch > 0:
        start, delta = points[:, :-1], points[:, 1:] - points[:, :-1]  # (B, S, 2)
        length2 = (delta * delta).sum(-1).clamp_min(1e-12)
        reach = (half_width + 1.0).view(batch, 1, 1)
        low = torch.minimum(start, start + delta) - reach  # (B, S, 2) window corner before clamping
        extent = (delta.abs() + 2 * reach).amax(dim=(0, 1))  # (2,) largest window needed
        window_w = min(width, math.ceil(float(extent[0])) + 2)
        window_h = min(height, math.ceil(float(extent[1])) + 2)
        left = torch.floor(low[..., 0]).clamp_(0, width - window_w)  # (B, S), whole pixels
        top = torch.floor(low[..., 1]).clamp_(0, height - window_h)
        steps_x = torch.arange(window_w, device=device, dtype=dtype)
        steps_y = torch.arange(window_h, device=device, dtype=dtype)
        chunk = max(1, min(count, ELEMENT_BUDGET // max(1, batch * window_w * window_h)))
        for first in range(0, count, chunk):
            part = slice(first, first + chunk)
            columns = left[:, part, None] + steps_x  # (B, c, w) pixel columns of each window
            rows = top[:, part, None] + steps_y  # (B, c, h)
            px = (columns + 0.5 - start[:, part, 0, None]).unsqueeze(-2)  # (B, c, 1, w)
            py = (rows + 0.5 - start[:, part, 1, None]).unsqueeze(-1)  # (B, c, h, 1)
            dx, dy = delta[:, part, 0, None, None], delta[:, part, 1, None, None]
            t = ((px * dx + py * dy) / length2[:, part, None, None]).clamp_(0.0, 1.0)  # (B, c, h, w)
            distance2 = (px - t * dx).square_() + (py - t * dy).square_()
            index = (rows.long() * width).unsqueeze(-1) + columns.long().unsqueeze(-2)  # (B, c, h, w)
            nearest2.scatter_reduce_(1, index.reshape(batch, -1), distance2.reshape(batch, -1), reduce="amin")
    coverage = half_width.view(-1, 1) + 0.5 - nearest2.sqrt()
    return coverage.clamp_(0.0, 1.0).view(batch, height, width)


@register_operation(
    "markup",
    parameter="strokes, width, alpha",
    unit="strokes per image; width as a fraction of min(H, W) (at least 1 pixel); alpha = ink opacity",
    description="Semi-transparent pen strokes (curves, loops, ticks) in green, blue, black or red ink.",
    random=True,
    nested=True,
    fields={"strokes": None, "width": None, "alpha": None},
    accepts_number=False,
    ranges={"strokes": Range(0, MAX_STROKES, identity=0, whole=True),
            "width": Range(0.0, 1.0, identity=0.0, low_open=True), "alpha": Range(0.0, 1.0, identity=0.0)},
)
def markup(x: torch.Tensor, value: Mapping[str, float], *, generator=None) -> torch.Tensor:
    """Draw ``strokes`` pen strokes of ``width`` x min(H, W) pixels (>= 1) at opacity ``alpha``.

    Each stroke's width varies by a random 0.8-1.2 around the nominal one (the same
    factor at every severity). The marks of sample i depend only on its generator
    (the same at every severity for a nested corruption; and on the image size only through scaling),
    never on the rest of the batch.
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
