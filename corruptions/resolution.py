"""Loss of resolution: downsample, then bring back to the original size.

Both operations take a float tensor x (B, 3, H, W) in [0, 1] on any device and a
downsampling ``factor`` >= 1 (2 = half the pixels along each side) and return the
same shape, dtype and device, in [0, 1]. The low-resolution size is
(max(1, round(H / factor)), max(1, round(W / factor))), rounding halves up.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from corruptions.registry import register_operation


def reduced_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """Low-resolution (height, width) for a downsampling factor: max(1, round(side / factor))."""
    return (
        max(1, int(math.floor(height / float(factor) + 0.5))),
        max(1, int(math.floor(width / float(factor) + 0.5))),
    )


def area_downsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Average over the input pixels covering each output pixel (``mode="area"``).

    For integer factors this is the exact box mean (= cv2 INTER_AREA, PIL BOX); for
    other factors torch's adaptive average pooling windows are used.
    """
    return F.interpolate(x, size=size, mode="area")


@register_operation(
    "resolution",
    parameter="factor",
    unit="downsampling factor per side (2 = half size), then upsampled back",
    description="Area (box-average) downsample by factor, bilinear upsample back to the original size.",
)
def resolution(x: torch.Tensor, factor: float, *, generator=None) -> torch.Tensor:
    """Area-downsample by ``factor``, then bilinear-upsample (align_corners=False) to (H, W).

    Models a lower scanning magnification / resolution: fine detail is averaged
    away, edges come back smooth rather than blocky. ``factor`` <= 1 returns x.
    """
    height, width = x.shape[-2:]
    size = reduced_size(height, width, factor)
    if float(factor) <= 1 or size == (height, width):
        return x
    low = area_downsample(x, size)
    return F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)


@register_operation(
    "pixelate",
    parameter="factor",
    unit="downsampling factor per side (2 = half size), then upsampled back (ImageNet-C scale c = 1 / factor)",
    description="Area (box) downsample by factor, nearest-neighbour upsample back, as ImageNet-C pixelate.",
)
def pixelate(x: torch.Tensor, factor: float, *, generator=None) -> torch.Tensor:
    """Area-downsample by ``factor``, then nearest-neighbour upsample to (H, W): visible blocks.

    As ImageNet-C ``pixelate`` (PIL BOX down, NEAREST up; "nearest-exact" here
    samples at pixel centres like PIL). ImageNet-C's scale c is 1 / factor, and its
    size int(side * c) can differ by one pixel from the rounding used here.
    """
    height, width = x.shape[-2:]
    size = reduced_size(height, width, factor)
    if float(factor) <= 1 or size == (height, width):
        return x
    low = area_downsample(x, size)
    return F.interpolate(low, size=(height, width), mode="nearest-exact")
