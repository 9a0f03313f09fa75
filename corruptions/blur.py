"""Gaussian blur as a separable, per-channel convolution on the images' device.

Matches ``skimage.filters.gaussian(image, sigma, mode="nearest", truncate=4.0,
channel_axis=-1)`` (the scikit-image default mode, used by ImageNet-C):

* kernel: the sampled Gaussian exp(-d^2 / (2 sigma^2)) for integer offsets
  d = -r..r with radius r = int(4 * sigma + 0.5) (scipy's truncation at 4 sigma),
  normalised to sum 1;
* border: "nearest" (edge pixels repeated), which works for any image size, so
  1x1 or 2x2 images with a 25-pixel kernel are fine (reflect padding would need
  the padding to be smaller than the image).

Images up to ``MATRIX_MAX_SIDE`` pixels a side are blurred by two matrix products,
B_h @ x @ B_w^T, with banded (H, H) and (W, W) matrices that hold the kernel and
the repeated edge pixels: on CPUs and GPUs this is several times faster than a
depthwise convolution. Larger images use the separable convolution. Both give
the same result up to float rounding.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from corruptions.registry import Range, register_operation

TRUNCATE = 4.0
MATRIX_MAX_SIDE = 512


def gaussian_kernel_1d(sigma: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian, shape (2r + 1,), r = int(TRUNCATE * sigma + 0.5)."""
    radius = int(TRUNCATE * float(sigma) + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / float(sigma)) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def blur_matrix(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(size, size) matrix M with (M @ v)[i] = sum_d kernel[d] * v[clamp(i + d, 0, size - 1)], d = -r..r.

    One row per output pixel; edge pixels repeated as in mode "nearest". Cached
    (the same sizes and sigmas come back batch after batch); do not modify it.
    """
    kernel = gaussian_kernel_1d(sigma, dtype=torch.float64, device=torch.device("cpu"))
    radius = (kernel.numel() - 1) // 2
    rows = torch.arange(size).unsqueeze(1).expand(size, kernel.numel())
    sources = (rows + torch.arange(-radius, radius + 1)).clamp_(0, size - 1)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.index_put_((rows, sources), kernel.expand(size, -1), accumulate=True)
    return matrix.to(dtype=dtype, device=device)


@register_operation(
    "gaussian_blur",
    parameter="sigma",
    unit="sigma, pixels of the image the blur acts on",
    description="Gaussian blur, kernel truncated at 4 sigma, edge pixels repeated at the border.",
    spatial="length",
    ranges={"sigma": Range(0.0, 100.0, identity=0.0)},  # beyond 100 px the kernel (8 sigma + 1 taps) is huge
)
def gaussian_blur(x: torch.Tensor, sigma: float, *, generator=None) -> torch.Tensor:
    """Blur each channel of x (B, C, H, W) with a Gaussian of standard deviation ``sigma`` pixels.

    Same shape, dtype and device out; a convex combination of input pixels, so
    values stay in [0, 1]. ``sigma`` <= 0 returns ``x`` unchanged.
    """
    if float(sigma) <= 0:
        return x
    height, width = x.shape[-2:]
    if max(height, width) <= MATRIX_MAX_SIDE:
        rows = blur_matrix(height, float(sigma), x.dtype, x.device)
        columns = blur_matrix(width, float(sigma), x.dtype, x.device)
        return torch.matmul(torch.matmul(rows, x), columns.transpose(0, 1)).clamp_(0.0, 1.0)
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
