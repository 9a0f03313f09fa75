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
  point-spread function (Nagy & O'Leary 1998) with three of them. The two blurs
  share one complex FFT each way (both kernel spectra are real), whatever the radius.

The convolution is an FFT product on the images' device (a linear, not circular,
convolution over the cropped area): the image padded with its edge pixels by the
kernel radius (and up to a size of prime factors 2, 3 and 5), one FFT per image and
channel each way, the kernel's FFT cached for grids up to 1024 x 1024. Each image is
transformed on its own, so results do not depend on the batch. Results are views
into the padded buffer (not contiguous).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from corruptions.registry import register_operation
from corruptions.values import Field, field_ranges, read_random_value, read_value

RADIUS = {"radius": Field(0.0, 64.0)}
CACHE_MAX_PIXELS = 1 << 20  # kernel spectra of FFT grids up to 1024 x 1024 are cached


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


def _kernel_grid(radius: float, height: int, width: int) -> torch.Tensor:
    """(height, width) float64: the disk kernel with its centre at (0, 0), wrapped around the edges."""
    kernel = disk_kernel(radius)
    half = (kernel.shape[0] - 1) // 2
    grid = torch.zeros(height, width, dtype=torch.float64)
    grid[:kernel.shape[0], :kernel.shape[1]] = kernel
    return torch.roll(grid, shifts=(-half, -half), dims=(0, 1))


def _half_spectrum(radius: float, height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """rfft2 of :func:`_kernel_grid` (half spectrum), cast for x."""
    return torch.fft.rfft2(_kernel_grid(radius, height, width).to(dtype=dtype, device=device))


def _paired_spectrum(radii: tuple[float, float], height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """K_a + i K_b, K the full fft2 of each kernel grid: real, since the disk is symmetric about its centre."""
    first, second = (torch.fft.fft2(_kernel_grid(r, height, width)).real for r in radii)
    return torch.complex(first, second).to(device=device, dtype=torch.complex64 if dtype != torch.float64 else torch.complex128)


_CACHED = {_half_spectrum: functools.lru_cache(maxsize=16)(_half_spectrum),
           _paired_spectrum: functools.lru_cache(maxsize=16)(_paired_spectrum)}


def kernel_spectrum(build, key, height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``build(key, height, width, dtype, device)``, cached for grids up to CACHE_MAX_PIXELS.

    Batch after batch has the same size and radii; larger grids are rebuilt each
    time rather than held in memory. Do not modify the result.
    """
    function = _CACHED[build] if height * width <= CACHE_MAX_PIXELS else build
    return function(key, height, width, dtype, device)


def _padded(x: torch.Tensor, radius: float) -> tuple[torch.Tensor, int]:
    """x padded with its edge pixels by the kernel radius, and at the bottom and right up to an FFT-friendly size.

    The pixels added for the size never reach the cropped output (the convolution is
    linear, not circular, over it). Returns (padded, kernel half-width).
    """
    height, width = x.shape[-2:]
    half = disk_kernel(float(radius)).shape[0] // 2
    extra_rows = fast_length(height + 2 * half) - height - 2 * half
    extra_columns = fast_length(width + 2 * half) - width - 2 * half
    return F.pad(x, (half, half + extra_columns, half, half + extra_rows), mode="replicate"), half


def disk_blur(x: torch.Tensor, radius: float) -> torch.Tensor:
    """x (B, C, H, W) float blurred by a disk of ``radius`` px, edge pixels repeated; a view into a padded buffer.

    Half-spectrum FFTs (rfft2, then the inverse as ifft over rows and irfft over
    columns: the same result as irfft2, faster in torch).
    """
    height, width = x.shape[-2:]
    padded, half = _padded(x, radius)
    size = padded.shape[-2:]
    product = torch.fft.rfft2(padded).mul_(kernel_spectrum(_half_spectrum, float(radius), *size, x.dtype, x.device))
    full = torch.fft.irfft(torch.fft.ifft(product, dim=-2), n=size[1], dim=-1)
    return full[..., half : half + height, half : half + width].clamp_(0.0, 1.0)


def disk_blur_pair(x: torch.Tensor, smaller: float, larger: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x blurred by disks of two radii with one complex FFT each way.

    Both kernel spectra are real, so ifft2(fft2(x) * (K_a + i K_b)) holds x * k_a in its
    real part and x * k_b in its imaginary part; each image is transformed on its own.
    Views into one complex buffer, not clipped (values leave [0, 1] only by rounding).
    """
    height, width = x.shape[-2:]
    padded, half = _padded(x, larger)
    size = padded.shape[-2:]
    spectrum = kernel_spectrum(_paired_spectrum, (float(smaller), float(larger)), *size, x.dtype, x.device)
    both = torch.fft.ifft2(torch.fft.fft2(padded).mul_(spectrum))
    crop = (..., slice(half, half + height), slice(half, half + width))
    return both.real[crop], both.imag[crop]


@register_operation(
    "defocus",
    parameter="radius",
    unit="radius of the disk point-spread function, px of the image it acts on",
    description="Out-of-focus blur: an antialiased disk kernel, edge pixels repeated at the border.",
    spatial="length",
    ranges=field_ranges(RADIUS, radius=0.0),
)
def defocus(x: torch.Tensor, radius: float, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] blurred by a disk of ``radius`` px; same shape, dtype, device, in [0, 1]."""
    radius = read_value("defocus", radius, RADIUS)["radius"]
    if radius <= 0.5 or x.numel() == 0:
        return x  # the disk lies inside one pixel: the kernel is [1]
    return disk_blur(x, radius)


def gradient_position(uniform: torch.Tensor, height: int, width: int, *,
                      dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, H, W) in [0, 1]: each pixel centre's position along a direction at angle 2 pi u, u (B,).

    0 at the first pixel centre the direction meets, 1 at the last (0 everywhere on a
    1 x 1 image). The position is linear, so its extremes lie at the corner pixels:
    the row and column terms are scaled in float64 and added once in ``dtype``.
    """
    angle = 2 * math.pi * uniform.to(torch.float64)
    cos, sin = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    along_x = (torch.arange(width, dtype=torch.float64).view(1, 1, -1) + 0.5) * cos  # (B, 1, W)
    along_y = (torch.arange(height, dtype=torch.float64).view(1, -1, 1) + 0.5) * sin  # (B, H, 1)
    low = along_x.amin(dim=2, keepdim=True) + along_y.amin(dim=1, keepdim=True)
    span = along_x.amax(dim=2, keepdim=True) + along_y.amax(dim=1, keepdim=True) - low
    scale = torch.where(span > 1e-9, 1.0 / span.clamp_min(1e-9), torch.zeros_like(span))
    columns = ((along_x - low) * scale).to(dtype=dtype, device=device)
    rows = (along_y * scale).to(dtype=dtype, device=device)
    return (columns + rows).clamp_(0.0, 1.0)


@register_operation(
    "focus_gradient",
    parameter="radius",
    unit="disk radius at the far edge, px of the image it acts on (0 at the near edge, linear between)",
    description="A tile tilted out of the focal plane: disk blur growing across the tile along a random direction.",
    spatial="length",
    random=True,
    nested=True,
    ranges=field_ranges(RADIUS, radius=0.0),
)
def focus_gradient(x: torch.Tensor, radius: float, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] blurred by a disk whose radius grows from 0 to ``radius`` px across the image.

    One uniform number per sample (the direction's angle) from the generator.
    """
    batch, _, height, width = x.shape
    parameters, uniform = read_random_value("focus_gradient", radius, RADIUS, generator, batch, 1)
    radius, uniform = parameters["radius"], uniform[:, 0]
    if radius <= 0.5 or x.numel() == 0:
        return x
    position = gradient_position(uniform, height, width, dtype=x.dtype, device=x.device).mul_(2.0).unsqueeze(1)
    half_blur, full_blur = disk_blur_pair(x, radius / 2, radius)  # the levels at positions 1 and 2 (x at 0)
    sharp_weight = (1.0 - position).clamp_(min=0.0)  # hat functions: 1 at their level, 0 at the next ones
    far_weight = position.sub_(1.0).clamp_(min=0.0)
    out = torch.addcmul(half_blur, sharp_weight, x - half_blur)
    out.addcmul_(far_weight, full_blur - half_blur)
    return out.clamp_(0.0, 1.0)
