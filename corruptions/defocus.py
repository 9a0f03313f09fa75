"""Out of focus: a disk point-spread function, over the whole tile or growing across it.

A defocused objective spreads each point into a disk (geometric optics: blur radius
about dz * tan(asin(NA)) for a focus error dz), not a Gaussian. The kernel of radius
r px is antialiased: each weight is the exact area of its pixel square inside the
disk (:func:`disk_kernel`), so weights sum to pi r^2 before they are normalised to 1.

* ``defocus`` (radius px): every pixel blurred by the disk, edge pixels repeated at
  the border (scipy.ndimage mode "nearest", like gaussian_blur), so any image size
  works, 1 px included.
* ``focus_gradient`` (radius px): a tile scanned at a tilt to the focal plane. The
  blur radius grows linearly from 0 at the image's first pixel along a random
  direction (from the sample's generator, the same at every severity) to ``radius``
  at the last one. Between the blur levels 0, radius / 2 and radius each pixel
  blends the two nearest linearly: piecewise-linear interpolation of the
  point-spread function (Nagy & O'Leary 1998) with three of them, so it costs one
  forward and two inverse FFTs whatever the radius.

The convolution is an FFT product on the images' device: the image padded by the
kernel radius (edge pixels repeated, then zeros up to a size of small prime
factors), one real FFT per image and channel, and the kernel's FFT cached per size
(a linear, not circular, convolution over the cropped area).
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from corruptions.randomness import draw_uniform
from corruptions.registry import register_operation
from corruptions.values import Field, read_value

RADIUS = {"radius": Field(0.0, 64.0)}
GRADIENT_LEVELS = 2  # blurred levels focus_gradient blends with the sharp image: radius / 2 and radius


def _quadrant_area(x: torch.Tensor, y: torch.Tensor, radius: float) -> torch.Tensor:
    """Signed area of the disk of ``radius`` (centre 0) inside [0, x] x [0, y]; odd in x and in y (float64)."""
    ax, ay = x.abs().clamp(max=radius), y.abs().clamp(max=radius)
    corner = torch.sqrt(radius * radius - ay * ay)  # where the circle crosses v = ay
    flat = torch.minimum(ax, corner)

    def primitive(u):  # integral of sqrt(r^2 - u^2) du from 0 to u
        return 0.5 * (u * torch.sqrt((radius * radius - u * u).clamp_min(0.0)) + radius * radius * torch.asin(u / radius))

    area = ay * flat + primitive(ax) - primitive(flat)
    return torch.sign(x) * torch.sign(y) * area


@functools.lru_cache(maxsize=64)
def disk_kernel(radius: float) -> torch.Tensor:
    """(2R + 1, 2R + 1) float64 CPU kernel, R = ceil(radius + 0.5) - 1: pixel-square areas inside the disk, sum 1.

    Radius below 0.5 px (the disk inside the centre pixel) gives the 1 x 1 kernel [1].
    Cached; do not modify it.
    """
    radius = float(radius)
    half = max(0, math.ceil(radius + 0.5) - 1)
    if radius <= 0.5:
        return torch.ones(1, 1, dtype=torch.float64)
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    low, high = (offsets - 0.5).view(-1, 1), (offsets + 0.5).view(-1, 1)
    x_low, x_high, y_low, y_high = low.T, high.T, low, high  # columns are x, rows are y
    area = (
        _quadrant_area(x_high, y_high, radius) - _quadrant_area(x_low, y_high, radius)
        - _quadrant_area(x_high, y_low, radius) + _quadrant_area(x_low, y_low, radius)
    )
    return area / area.sum()


def fast_length(n: int) -> int:
    """The smallest m >= n whose prime factors are 2, 3 and 5 (quick FFT sizes)."""
    m = n
    while True:
        rest = m
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return m
        m += 1


@functools.lru_cache(maxsize=32)
def _kernel_spectrum(radius: float, height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """rfft2 of the disk kernel placed with its centre at (0, 0) of a (height, width) grid (wrapped)."""
    kernel = disk_kernel(radius)
    half = (kernel.shape[0] - 1) // 2
    grid = torch.zeros(height, width, dtype=torch.float64)
    grid[:kernel.shape[0], :kernel.shape[1]] = kernel
    grid = torch.roll(grid, shifts=(-half, -half), dims=(0, 1))
    return torch.fft.rfft2(grid.to(dtype=dtype, device=device))


def disk_blurs(x: torch.Tensor, radii: list[float]) -> Iterator[torch.Tensor]:
    """x (B, C, H, W) float blurred by a disk of each radius (px), edge pixels repeated, one after the other.

    One FFT of x serves every radius; each blurred image is made when the next one is asked for.
    """
    height, width = x.shape[-2:]
    half = max(disk_kernel(float(r)).shape[0] for r in radii) // 2
    padded = F.pad(x, (half, half, half, half), mode="replicate") if half else x
    size = (fast_length(height + 2 * half), fast_length(width + 2 * half))
    spectrum = torch.fft.rfft2(padded, s=size)
    for radius in radii:
        product = spectrum * _kernel_spectrum(float(radius), *size, x.dtype, x.device)
        full = torch.fft.irfft2(product, s=size)
        yield full[..., half : half + height, half : half + width].clamp_(0.0, 1.0)


@register_operation(
    "defocus",
    parameter="radius",
    unit="radius of the disk point-spread function, px of the image it acts on",
    description="Out-of-focus blur: an antialiased disk kernel, edge pixels repeated at the border.",
    spatial="length",
)
def defocus(x: torch.Tensor, radius: float, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] blurred by a disk of ``radius`` px; same shape, dtype, device, in [0, 1]."""
    radius = read_value("defocus", radius, RADIUS)["radius"]
    if radius <= 0.5 or x.numel() == 0:
        return x  # the disk lies inside one pixel: the kernel is [1]
    return next(disk_blurs(x, [radius])).contiguous()


def gradient_position(uniform: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W) float64 in [0, 1]: each pixel centre's position along a direction at angle 2 pi u, u (B,).

    0 at the first pixel centre the direction meets, 1 at the last (0 everywhere on a 1 x 1 image).
    """
    angle = 2 * math.pi * uniform.to(torch.float64)
    ys = torch.arange(height, dtype=torch.float64).view(1, -1, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float64).view(1, 1, -1) + 0.5
    along = xs * torch.cos(angle).view(-1, 1, 1) + ys * torch.sin(angle).view(-1, 1, 1)
    low = along.amin(dim=(1, 2), keepdim=True)
    span = along.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (along - low) / span.clamp_min(1e-12), torch.zeros_like(along))


@register_operation(
    "focus_gradient",
    parameter="radius",
    unit="disk radius at the far edge, px of the image it acts on (0 at the near edge, linear between)",
    description="A tile tilted out of the focal plane: disk blur growing across the tile along a random direction.",
    spatial="length",
    random=True,
    nested=True,
)
def focus_gradient(x: torch.Tensor, radius: float, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] blurred by a disk whose radius grows from 0 to ``radius`` px across the image.

    One uniform number per sample (the direction's angle) from the generator.
    """
    radius = read_value("focus_gradient", radius, RADIUS)["radius"]
    batch, _, height, width = x.shape
    uniform = draw_uniform(generator, batch, 1)[:, 0]
    if radius <= 0.5 or x.numel() == 0:
        return x
    count = GRADIENT_LEVELS
    position = (gradient_position(uniform, height, width) * count).to(dtype=x.dtype, device=x.device).unsqueeze(1)
    levels = itertools.chain([x], disk_blurs(x, [radius * (k + 1) / count for k in range(count)]))
    out = torch.zeros_like(x)
    for k, level in enumerate(levels):
        weight = (position - k).abs_().neg_().add_(1.0).clamp_(min=0.0)  # hat: 1 at level k, 0 at k - 1 and k + 1
        out.addcmul_(weight, level)
    return out.clamp_(0.0, 1.0)
