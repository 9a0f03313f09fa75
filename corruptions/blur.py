"""Gaussian blur as a separable, per-channel convolution on the images' device.

Matches ``skimage.filters.gaussian(image, sigma, mode="nearest", truncate=4.0,
channel_axis=-1)`` (the scikit-image default mode, used by ImageNet-C):

* kernel: the sampled Gaussian exp(-d^2 / (2 sigma^2)) for integer offsets
  d = -r..r with radius r = int(4 * sigma + 0.5) (scipy's truncation at 4 sigma),
  normalised to sum 1;
* border: "nearest" (edge pixels repeated), which works for any image size, so
  1x1 or 2x2 images with a 25-pixel kernel are fine (reflect padding would need
  the padding to be smaller than the image).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from corruptions.registry import register_operation

TRUNCATE = 4.0


def gaussian_kernel_1d(sigma: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian, shape (2r + 1,), r = int(TRUNCATE * sigma + 0.5)."""
    radius = int(TRUNCATE * float(sigma) + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / float(sigma)) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


@register_operation(
    "gaussian_blur",
    parameter="sigma",
    unit="sigma, pixels of the image the blur acts on",
    description="Gaussian blur, kernel truncated at 4 sigma, edge pixels repeated at the border.",
)
def gaussian_blur(x: torch.Tensor, sigma: float, *, generator=None) -> torch.Tensor:
    """Blur each channel of x (B, C, H, W) with a Gaussian of standard deviation ``sigma`` pixels.

    Same shape, dtype and device out; a convex combination of input pixels, so
    values stay in [0, 1]. ``sigma`` <= 0 returns ``x`` unchanged.
    """
    if float(sigma) <= 0:
        return x
    channels = x.shape[1]
    kernel = gaussian_kernel_1d(sigma, dtype=x.dtype, device=x.device)
    radius = (kernel.numel() - 1) // 2
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, horizontal, groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    out = F.conv2d(out, vertical, groups=channels)
    return out.clamp_(0.0, 1.0)
