"""Defocus and focus gradient against scipy.ndimage and numpy by hand.

The disk kernel is checked against a fine numerical integration in numpy (each
weight = the area of its pixel inside the disk); the blur against
``scipy.ndimage.correlate(mode="nearest")`` with that kernel (edge pixels repeated),
for images smaller and larger than the kernel.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndimage
import torch
from skimage import data

from corruptions import CorruptionError, get_corruption, get_operation, sample_generators
from corruptions.defocus import disk_kernel, fast_length, gradient_position
from corruptions.randomness import draw_uniform

IHC = data.immunohistochemistry()[100:164, 200:264].astype(np.float64) / 255.0


def _fine_disk(radius: float, half: int, samples: int = 400) -> np.ndarray:
    """Area of each pixel square inside the disk by a samples x samples grid per pixel (numpy)."""
    size = 2 * half + 1
    coordinates = -half - 0.5 + (np.arange(size * samples) + 0.5) / samples
    xs, ys = np.meshgrid(coordinates, coordinates)
    inside = (xs**2 + ys**2 <= radius**2).astype(np.float64)
    return inside.reshape(size, samples, size, samples).mean(axis=(1, 3))


@pytest.mark.parametrize("radius", [0.6, 1.0, 1.7, 2.5, 5.0, 8.3])
def test_disk_kernel_holds_the_area_of_each_pixel_inside_the_disk(radius):
    kernel = disk_kernel(radius).numpy()
    half = kernel.shape[0] // 2
    assert half == math.ceil(radius + 0.5) - 1
    fine = _fine_disk(radius, half)
    assert abs(fine.sum() - math.pi * radius**2) < 2e-3 * radius  # the areas add up to the disk
    assert np.abs(kernel - fine / fine.sum()).max() < 1e-4
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[::-1], atol=1e-15)


@pytest.mark.parametrize("radius", [0.0, 0.3, 0.5])
def test_radius_up_to_half_a_pixel_is_the_identity(radius):
    x = torch.rand(2, 3, 9, 9)
    assert torch.equal(get_operation("defocus")(x, radius), x)


@pytest.mark.parametrize("radius", [0.75, 1.0, 2.0, 3.0, 5.0, 12.0])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 5), (37, 50), (64, 64)])
def test_defocus_matches_scipy_correlate_with_edge_pixels_repeated(radius, height, width):
    image = IHC[:height, :width] if height > 3 else np.random.default_rng(height).random((height, width, 3))
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    ours = get_operation("defocus")(x, radius)[0].permute(1, 2, 0).numpy()
    kernel = disk_kernel(radius).numpy()
    expected = np.stack([ndimage.correlate(image[..., c], kernel, mode="nearest") for c in range(3)], axis=-1)
    assert np.abs(ours - expected).max() < 1e-12


def test_defocus_on_float32_images_is_close_to_scipy():
    x = torch.from_numpy(IHC).permute(2, 0, 1)[None].float()
    ours = get_operation("defocus")(x, 3.0)[0].permute(1, 2, 0).numpy()
    kernel = disk_kernel(3.0).numpy()
    expected = np.stack([ndimage.correlate(IHC[..., c], kernel, mode="nearest") for c in range(3)], axis=-1)
    assert np.abs(ours - expected).max() < 2e-6


def test_fast_lengths_have_only_small_prime_factors():
    assert [fast_length(n) for n in (1, 7, 11, 13, 97, 234, 240)] == [1, 8, 12, 15, 100, 240, 240]


def test_focus_gradient_blends_disk_blurs_along_the_drawn_direction_by_hand():
    """Radius grows linearly from 0 to the value across the image; pixels blend the blurs at 0, r / 2 and r."""
    image = IHC[:40, :56]
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    radius, ids = 6.0, ["p", "q"]
    ours = get_operation("focus_gradient")(x, radius, generator=sample_generators(0, ids, "focus_gradient", None))
    angle = 2 * math.pi * draw_uniform(sample_generators(0, ids, "focus_gradient", None), 2, 1)[:, 0].numpy()
    levels = [image] + [
        np.stack([ndimage.correlate(image[..., c], disk_kernel(radius * k / 2).numpy(), mode="nearest") for c in range(3)], -1)
        for k in (1, 2)
    ]
    ys, xs = np.mgrid[0:40, 0:56] + 0.5
    for b in range(2):
        along = xs * np.cos(angle[b]) + ys * np.sin(angle[b])
        position = 2 * (along - along.min()) / (along.max() - along.min())  # 0 .. 2 levels
        lower = np.minimum(np.floor(position).astype(int), 1)
        weight = (position - lower)[..., None]
        stacked = np.stack(levels)
        expected = (1 - weight) * np.take_along_axis(stacked, lower[None, ..., None], 0)[0] + weight * np.take_along_axis(
            stacked, (lower + 1)[None, ..., None], 0)[0]
        assert np.abs(ours[b].permute(1, 2, 0).numpy() - expected).max() < 1e-12
        sharpest = np.unravel_index(np.argmin(position), position.shape)
        np.testing.assert_allclose(ours[b].permute(1, 2, 0).numpy()[sharpest], image[sharpest], atol=1e-12)  # in focus
    assert not torch.equal(ours[0], ours[1])  # two directions


def test_gradient_position_spans_zero_to_one_and_is_zero_on_one_pixel():
    position = gradient_position(torch.tensor([0.0, 0.125, 0.6]), 5, 9)
    assert torch.allclose(position.amin(dim=(1, 2)), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(position.amax(dim=(1, 2)), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(position[0, 0], torch.linspace(0, 1, 9, dtype=torch.float64), atol=1e-15)  # angle 0: left to right
    assert torch.equal(gradient_position(torch.tensor([0.3]), 1, 1), torch.zeros(1, 1, 1, dtype=torch.float64))


def test_defocus_radii_are_the_presets_and_refuse_bad_values():
    assert [get_corruption("defocus", "slide-artefacts").parameter(s) for s in range(1, 5)] == [1.0, 2.0, 3.0, 5.0]
    with pytest.raises(CorruptionError, match=r"defocus radius = -1: expected a number in \[0, 64\]"):
        get_operation("defocus")(torch.rand(1, 3, 4, 4), -1.0)


def test_kernel_spectra_of_large_grids_are_not_kept_in_memory():
    from corruptions.defocus import _CACHED, _half_spectrum, kernel_spectrum

    cache = _CACHED[_half_spectrum]
    before = cache.cache_info().currsize
    small = kernel_spectrum(_half_spectrum, 3.0, 64, 64, torch.float32, torch.device("cpu"))
    assert kernel_spectrum(_half_spectrum, 3.0, 64, 64, torch.float32, torch.device("cpu")) is small  # cached
    large = kernel_spectrum(_half_spectrum, 3.0, 1030, 1030, torch.float32, torch.device("cpu"))
    assert large.shape == (1030, 516) and cache.cache_info().currsize <= before + 1
    assert kernel_spectrum(_half_spectrum, 3.0, 1030, 1030, torch.float32, torch.device("cpu")) is not large
