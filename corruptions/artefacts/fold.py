"""Tissue fold: a band of doubled tissue beside a crease.

When a section wrinkles onto the slide, a strip of tissue lies folded over its
neighbour: light crosses two layers, so their transmittances multiply (Beer-Lambert:
optical densities add), and the band is darker and more saturated than the tissue
around it; the bend itself is a thin, darker crease line.

``fold(x, width)``: per sample, from 4 uniform numbers of its generator, a crease line
through the point ((0.2 + 0.6 u0) W, (0.2 + 0.6 u1) H) at angle pi u2, and the side
of it the flap lies on (u3). At signed distance d from the crease (positive on the
flap's side, in px):

* band, 0 <= d <= width: x <- x * ((1 - c) + c * m), m the image mirrored across the
  crease (bilinear, edge pixels repeated beyond the border): the folded-over layer is
  the tissue from the other side of the crease, face down. Its cover c rises over one
  pixel at the crease, is 1 up to d = width / 2 and thins out linearly to 0 at
  d = width (c = clamp(d + 0.5, 0, 1) * clamp(2 (1 - d / width), 0, 1)), so a wider
  fold covers every pixel at least as much as a narrower one and no edge of the
  milder fold is left behind;
* crease, |d| <= max(0.5, width / 16): x <- x * (1 - CREASE_DARKNESS * ramp).

Severities share the crease and side; a wider band contains a narrower one (nested):
pixel by pixel the image only darkens from one severity to the next. Glass folded
over glass stays white.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from corruptions.artefacts.geometry import pixel_centres
from corruptions.registry import register_operation
from corruptions.values import Field, field_ranges, read_random_value

WIDTH = {"width": Field(0.0, 1e5)}
CREASE_DARKNESS = 0.4
CREASE_SHARE = 1.0 / 16  # crease half-width as a share of the band width (at least 0.5 px)


def crease_geometry(uniform: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(points (B, 2), normals (B, 2)) float64 from uniform (B, 4): a point of the crease and the unit normal
    pointing to the flap's side."""
    points = torch.stack([(0.2 + 0.6 * uniform[:, 0]) * width, (0.2 + 0.6 * uniform[:, 1]) * height], dim=1)
    angle = math.pi * uniform[:, 2]
    side = torch.where(uniform[:, 3] < 0.5, -1.0, 1.0).to(torch.float64)
    normals = torch.stack([-torch.sin(angle), torch.cos(angle)], dim=1) * side.view(-1, 1)
    return points, normals


def mirrored(x: torch.Tensor, normals: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) reflected across each sample's crease: pixel p shows x at p - 2 d n (bilinear, border repeated).

    ``distance`` (B, H, W): signed distance d of each pixel centre from the crease; normals (B, 2).
    """
    height, width = x.shape[-2:]
    ys, xs = pixel_centres(height, width, dtype=distance.dtype, device=x.device)
    source_x = xs - 2 * distance * normals[:, 0].view(-1, 1, 1)
    source_y = ys - 2 * distance * normals[:, 1].view(-1, 1, 1)
    grid = torch.stack([source_x.mul_(2.0 / width).sub_(1.0), source_y.mul_(2.0 / height).sub_(1.0)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@register_operation(
    "fold",
    parameter="width",
    unit="width of the band of doubled tissue, px of the image it acts on",
    description="Tissue fold: a band of tissue doubled by its mirror image beside a darker crease line.",
    spatial="length",
    random=True,
    nested=True,
    ranges=field_ranges(WIDTH, width=0.0),
)
def fold(x: torch.Tensor, width: float, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] with a fold of ``width`` px; same shape, dtype, device, in [0, 1]."""
    batch, _, height, image_width = x.shape
    parameters, uniform = read_random_value("fold", width, WIDTH, generator, batch, 4)
    band_width = parameters["width"]
    if band_width == 0.0 or batch == 0:
        return x
    points, normals = crease_geometry(uniform, height, image_width)
    return render_fold(x, points, normals, band_width)


def render_fold(x: torch.Tensor, points: torch.Tensor, normals: torch.Tensor, band_width: float) -> torch.Tensor:
    """x (B, 3, H, W) with a fold of ``band_width`` px beside each sample's crease (points, unit normals (B, 2) px).

    Distances are computed in x.dtype (float32: a thousandth of a pixel at 4,000 px).
    """
    height, width = x.shape[-2:]
    points, normals = points.to(device=x.device, dtype=x.dtype), normals.to(device=x.device, dtype=x.dtype)
    ys, xs = pixel_centres(height, width, dtype=x.dtype, device=x.device)
    normal_x, normal_y = normals[:, 0].view(-1, 1, 1), normals[:, 1].view(-1, 1, 1)
    distance = (xs - points[:, 0].view(-1, 1, 1)) * normal_x + (ys - points[:, 1].view(-1, 1, 1)) * normal_y  # (B, H, W)
    cover = (distance + 0.5).clamp_(0.0, 1.0).mul_((2.0 - distance * (2.0 / band_width)).clamp_(0.0, 1.0)).unsqueeze(1)
    crease_half = max(0.5, band_width * CREASE_SHARE)
    crease = (crease_half + 0.5 - distance.abs()).clamp_(0.0, 1.0).mul_(-CREASE_DARKNESS).add_(1.0).unsqueeze(1)
    flap = mirrored(x, normals, distance)  # 1 - cover + cover * flap = 1 + cover * (flap - 1)
    return flap.sub_(1.0).mul_(cover).add_(1.0).mul_(crease).mul_(x).clamp_(0.0, 1.0)
