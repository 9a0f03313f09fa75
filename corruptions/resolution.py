"""Loss of resolution: downsample, then bring back to the original size.

Both operations take a float tensor x (B, 3, H, W) in [0, 1] on any device and
return the same shape, dtype and device, in [0, 1].

* ``resolution`` (ours): a downsampling ``factor`` >= 1 (2 = half the pixels along
  each side), low-resolution size (max(1, round(H / factor)), max(1, round(W /
  factor))), rounding halves up; exact area averaging down (cv2 INTER_AREA),
  bilinear back up (cv2 INTER_LINEAR): a smooth loss of detail.
* ``pixelate`` (ImageNet-C's): a ``scale`` in (0, 1] (the fraction of each side
  kept), low-resolution size int(side * scale); PIL BOX down, PIL NEAREST back up:
  visible blocks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from corruptions.errors import CorruptionError
from corruptions.registry import Range, register_operation


def reduced_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """Low-resolution (height, width) for a downsampling factor: max(1, round(side / factor))."""
    return (
        max(1, math.floor(height / float(factor) + 0.5)),
        max(1, math.floor(width / float(factor) + 0.5)),
    )


def area_weights(in_size: int, out_size: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(out_size, in_size) matrix of box-filter weights: the exact area-resampling kernel.

    Output pixel i covers the input interval [i * s, (i + 1) * s] with s =
    in_size / out_size; its weight on input pixel j is the length of the overlap of
    [j, j + 1] with that interval, divided by s (rows sum to 1). This is what
    cv2 INTER_AREA computes when shrinking, for any factor, so every output pixel
    stays centred where it belongs; for integer factors it is also PIL BOX.
    """
    scale = in_size / out_size
    starts = torch.arange(out_size, dtype=torch.float64).unsqueeze(1) * scale
    pixels = torch.arange(in_size, dtype=torch.float64).unsqueeze(0)
    overlap = (torch.minimum(pixels + 1, starts + scale) - torch.maximum(pixels, starts)).clamp_(min=0)
    return (overlap / overlap.sum(dim=1, keepdim=True)).to(dtype=dtype, device=device)


def area_downsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Shrink x (B, C, H, W) to ``size`` = (h, w) by exact area averaging (see :func:`area_weights`).

    Separable: two matrix products on x.device, so any factor and any size (down to
    1x1) work. Output (B, C, h, w), a convex combination of input pixels.
    """
    height, width = x.shape[-2:]
    rows = area_weights(height, size[0], dtype=x.dtype, device=x.device)  # (h, H)
    columns = area_weights(width, size[1], dtype=x.dtype, device=x.device)  # (w, W)
    return torch.matmul(torch.matmul(rows, x), columns.transpose(0, 1))


@register_operation(
    "resolution",
    parameter="factor",
    unit="downsampling factor per side (2 = half size), then upsampled back",
    description="Exact area (box) downsample by factor, bilinear upsample back to the original size.",
    spatial="length",
    ranges={"factor": Range(1.0, 1000.0, identity=1.0)},
)
def resolution(x: torch.Tensor, factor: float, *, generator=None) -> torch.Tensor:
    """Area-downsample by ``factor``, then bilinear-upsample (align_corners=False, i.e. pixel
    centres, as cv2 INTER_LINEAR) to (H, W).

    Models a lower scanning magnification / resolution: fine detail is averaged
    away, edges come back smooth rather than blocky. ``factor`` <= 1 returns x.
    """
    height, width = x.shape[-2:]
    size = reduced_size(height, width, factor)
    if float(factor) <= 1 or size == (height, width):
        return x
    low = area_downsample(x, size)
    return F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)


def pil_box_weights(in_size: int, out_size: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(out_size, in_size) matrix of PIL's BOX weights when shrinking: whole pixels, equal weights.

    Output pixel i averages the input pixels whose centres j + 0.5 fall in
    (c - s / 2, c + s / 2], c = (i + 0.5) * s, s = in_size / out_size (PIL's
    box filter, evaluated at pixel centres). For integer factors this equals
    :func:`area_weights`; otherwise pixels cut by the window count fully or not at all.
    """
    scale = in_size / out_size
    centres = (torch.arange(out_size, dtype=torch.float64).unsqueeze(1) + 0.5) * scale
    offsets = (torch.arange(in_size, dtype=torch.float64).unsqueeze(0) + 0.5 - centres) / scale
    inside = ((offsets > -0.5) & (offsets <= 0.5)).to(torch.float64)
    return (inside / inside.sum(dim=1, keepdim=True)).to(dtype=dtype, device=device)


def _check_scale(scale) -> None:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < float(scale) <= 1:
        raise CorruptionError(f"pixelate scale {scale!r}: expected a number in (0, 1], the fraction of each side kept")


@register_operation(
    "pixelate",
    parameter="scale",
    unit="fraction of each side kept (ImageNet-C's c): low-resolution side int(side * scale), then upsampled back",
    description="PIL BOX downsample to int(side * scale), nearest-neighbour upsample back: ImageNet-C pixelate.",
    spatial="scale",
    validate=_check_scale,
    ranges={"scale": Range(0.0, 1.0, identity=1.0, low_open=True)},
)
def pixelate(x: torch.Tensor, scale: float, *, generator=None) -> torch.Tensor:
    """ImageNet-C ``pixelate``: shrink to int(side * scale) with PIL BOX, grow back with PIL NEAREST.

    ``scale`` is ImageNet-C's c (0.6 keeps 60 % of each side). The low-resolution
    size is (max(1, int(H * scale)), max(1, int(W * scale))), truncated as
    ImageNet-C does; the shrink uses PIL BOX's weights (:func:`pil_box_weights`),
    the growth samples the low-resolution pixel under each pixel centre
    ("nearest-exact", = PIL NEAREST): visible blocks. Unlike PIL on 8-bit images
    nothing is rounded to 8 bits. ``scale`` 1 returns x.
    """
    _check_scale(scale)
    height, width = x.shape[-2:]
    size = (max(1, int(height * float(scale))), max(1, int(width * float(scale))))
    if size == (height, width):
        return x
    rows = pil_box_weights(height, size[0], dtype=x.dtype, device=x.device)
    columns = pil_box_weights(width, size[1], dtype=x.dtype, device=x.device)
    low = torch.matmul(torch.matmul(rows, x), columns.transpose(0, 1))
    return F.interpolate(low, size=(height, width), mode="nearest-exact").clamp_(0.0, 1.0)
