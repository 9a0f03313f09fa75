"""Geometry of the physical artefacts, checked by hand in numpy.

Each artefact is rendered on flat or simple images where the expected pixels follow
from its stated geometry: a seam scales exactly one side of a straight line by the
factor; an illumination field spans exactly [1 - amplitude, 1]; a fold doubles the
tissue (multiplies by its mirror image) in a band beside a darker crease; a bubble's
rim is darker than its hazy, brighter interior; a dust spot blocks its opacity.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from corruptions import get_corruption, get_operation, sample_generators
from corruptions.artefacts.bubble import HAZE, RIM_DARKNESS, render_bubbles
from corruptions.artefacts.dust import render_dust
from corruptions.artefacts.fold import CREASE_DARKNESS, crease_geometry, render_fold
from corruptions.randomness import draw_uniform

IDS = [f"s{i}" for i in range(8)]


def _generators(name: str, ids=IDS):
    return sample_generators(3, ids, name, None)


@pytest.mark.parametrize(("height", "width"), [(40, 40), (17, 63), (224, 224)])
def test_tile_seam_scales_one_side_of_a_straight_seam_by_the_factor(height, width):
    x = torch.rand(len(IDS), 3, height, width, dtype=torch.float64) * 0.9 + 0.05
    out = get_operation("tile_seam")(x, 0.8, generator=_generators("tile_seam"))
    orientations = set()
    for image, result in zip(x, out):
        scaled = (result != image).any(dim=0).numpy()
        np.testing.assert_array_equal(result.numpy()[:, scaled], image.numpy()[:, scaled] * 0.8)
        np.testing.assert_array_equal(result.numpy()[:, ~scaled], image.numpy()[:, ~scaled])
        rows_constant, columns_constant = (scaled == scaled[:1]).all(), (scaled == scaled[:, :1]).all()
        assert rows_constant != columns_constant  # a vertical or a horizontal seam, nothing else
        line = scaled[0] if rows_constant else scaled[:, 0]
        boundary = int(np.flatnonzero(np.diff(line.astype(int)))[0]) + 1  # one step only
        assert np.abs(np.diff(line.astype(int))).sum() == 1
        assert 0.25 * len(line) - 1 <= boundary <= 0.75 * len(line) + 1
        orientations.add(bool(rows_constant))
    assert orientations == {True, False}


def test_illumination_field_spans_exactly_one_minus_amplitude_to_one():
    white = torch.ones(len(IDS), 3, 48, 80, dtype=torch.float64)
    uniform = draw_uniform(_generators("illumination"), len(IDS), 2).numpy()
    for amplitude in (0.1, 0.45):
        field = get_operation("illumination")(white, amplitude, generator=_generators("illumination"))
        ys, xs = np.mgrid[0:48, 0:80] + 0.5
        for b, image in enumerate(field.numpy()):
            centre = ((2 * uniform[b, 0] - 0.5) * 80, (2 * uniform[b, 1] - 0.5) * 48)
            squared = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2
            expected = 1 - amplitude * (squared - squared.min()) / (squared.max() - squared.min())
            assert np.abs(image - expected).max() < 1e-12  # the same field in every channel
            assert image.min() == pytest.approx(1 - amplitude, abs=1e-12) and image.max() == pytest.approx(1.0, abs=1e-12)


def test_illumination_leaves_a_single_pixel_alone():
    x = torch.rand(2, 3, 1, 1)
    assert torch.equal(get_operation("illumination")(x, 0.45, generator=_generators("illumination", ["a", "b"])), x)


def test_fold_band_is_the_image_times_its_mirror_across_a_horizontal_crease():
    """Crease on the pixel boundary y = 10, flap below: row i (centre i + 0.5) doubles with row 19 - i."""
    x = torch.rand(1, 3, 32, 24, dtype=torch.float64) * 0.8 + 0.2
    width = 6.0
    out = render_fold(x, torch.tensor([[0.0, 10.0]]), torch.tensor([[0.0, 1.0]]), width)[0].numpy()
    image = x[0].numpy()
    crease_rows = {9, 10}  # distances -0.5 and 0.5: half-width 0.5 plus the one-pixel ramp
    for row in range(32):
        distance = row + 0.5 - 10
        band = np.clip(distance + 0.5, 0, 1) * np.clip(2 * (1 - distance / width), 0, 1)
        mirror = image[:, min(max(19 - row, 0), 31)]
        crease = np.clip(1.0 - abs(distance), 0, 1)
        expected = image[:, row] * (1 - band + band * mirror) * (1 - CREASE_DARKNESS * crease)
        np.testing.assert_allclose(out[:, row], expected, atol=1e-12)
        if row in crease_rows:
            assert (out[:, row] < image[:, row]).all()
    np.testing.assert_array_equal(out[:, :9], image[:, :9])  # the far side of the crease is untouched
    np.testing.assert_array_equal(out[:, 16:], image[:, 16:])  # beyond the band (distance >= width)


def test_fold_on_a_flat_image_doubles_the_optical_density_in_a_band_of_the_stated_width():
    flat = torch.full((len(IDS), 3, 48, 48), 0.6, dtype=torch.float64)
    width = 12.0
    out = get_operation("fold")(flat, width, generator=_generators("fold"))
    points, normals = crease_geometry(draw_uniform(_generators("fold"), len(IDS), 4), 48, 48)
    ys, xs = np.mgrid[0:48, 0:48] + 0.5
    for b in range(len(IDS)):
        distance = (xs - points[b, 0].item()) * normals[b, 0].item() + (ys - points[b, 1].item()) * normals[b, 1].item()
        doubled = (distance > 1.5) & (distance <= width / 2)
        np.testing.assert_allclose(out[b].numpy()[:, doubled], 0.36, atol=1e-12)  # 0.6 x 0.6: two layers
        crease_reach = max(0.5, width / 16) + 0.5
        np.testing.assert_array_equal(out[b].numpy()[:, (distance < -crease_reach) | (distance >= width)], 0.6)
        band = np.clip(distance + 0.5, 0, 1) * np.clip(2 * (1 - distance / width), 0, 1)
        crease = np.clip(crease_reach - np.abs(distance), 0, 1)
        expected = 0.6 * (1 - band + band * 0.6) * (1 - CREASE_DARKNESS * crease)
        np.testing.assert_allclose(out[b].numpy(), np.broadcast_to(expected, (3, 48, 48)), atol=1e-12)
        assert (out[b].numpy()[:, (distance > 0) & (distance < 0.5)] < 0.36).all()  # the crease darkens the band


def test_bubble_rim_is_darker_than_its_hazy_brighter_interior():
    grey = torch.full((1, 3, 41, 41), 0.5, dtype=torch.float64)
    radius = 12.0
    out = render_bubbles(grey, torch.tensor([[[20.5, 20.5]]], dtype=torch.float64), torch.tensor([[radius]], dtype=torch.float64))
    out = out[0].numpy()
    ys, xs = np.mgrid[0:41, 0:41] + 0.5
    distance = np.hypot(xs - 20.5, ys - 20.5)
    rim_half = max(0.5, 0.08 * radius)
    inside = np.clip(radius + 0.5 - distance, 0, 1)
    ring = np.clip(rim_half + 0.5 - np.abs(distance - radius), 0, 1)
    expected = (0.5 + HAZE * inside * 0.5) * (1 - RIM_DARKNESS * ring)
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=1e-12)
    interior = distance < radius - rim_half - 1.0
    np.testing.assert_allclose(out[:, interior], 0.5 + HAZE * 0.5, atol=1e-12)  # brighter
    np.testing.assert_array_equal(out[:, distance > radius + rim_half + 1.0], 0.5)  # outside: unchanged
    on_rim = np.abs(distance - radius) < rim_half
    assert on_rim.sum() > 20 and (out[:, on_rim] < 0.5).all() and (out[:, on_rim] < out[:, interior].min()).all()


def test_bubble_interior_has_lower_contrast():
    x = torch.rand(1, 3, 41, 41, dtype=torch.float64)
    out = render_bubbles(x, torch.tensor([[[20.5, 20.5]]], dtype=torch.float64), torch.tensor([[15.0]], dtype=torch.float64))
    inside = (slice(None), slice(None), slice(14, 27), slice(14, 27))
    assert out[inside].std().item() == pytest.approx((1 - HAZE) * x[inside].std().item(), rel=1e-9)
    assert (out[inside] > x[inside]).all()


def test_dust_spots_block_their_opacity_inside_and_nothing_outside():
    white = torch.ones(1, 3, 30, 30, dtype=torch.float64)
    centres = torch.tensor([[[8.0, 8.0], [21.5, 20.0]]], dtype=torch.float64)
    radii, opacities = torch.tensor([[3.0, 2.0]], dtype=torch.float64), torch.tensor([[0.9, 0.6]], dtype=torch.float64)
    out = render_dust(white, centres, radii, opacities)[0, 0].numpy()
    ys, xs = np.mgrid[0:30, 0:30] + 0.5
    first, second = np.hypot(xs - 8.0, ys - 8.0), np.hypot(xs - 21.5, ys - 20.0)
    np.testing.assert_allclose(out[first < 2.5], 0.1, atol=1e-12)
    np.testing.assert_allclose(out[second < 1.5], 0.4, atol=1e-12)
    np.testing.assert_array_equal(out[(first > 3.5) & (second > 2.5)], 1.0)


@pytest.mark.parametrize("name", ["bubble", "dust"])
def test_item_counts_add_items_to_the_same_ones(name):
    corr = get_corruption(name, "slide-artefacts")
    value = dict(corr.parameter(2))
    x = torch.rand(2, 3, 40, 40, dtype=torch.float64) * 0.8 + 0.1
    none = get_operation(name)(x, {**value, "count": 0}, generator=_generators(name, ["a", "b"]))
    assert torch.equal(none, x)
    fewer = get_operation(name)(x, value, generator=_generators(name, ["a", "b"]))
    more = get_operation(name)(x, {**value, "count": value["count"] + 3}, generator=_generators(name, ["a", "b"]))
    changed_fewer, changed_more = (fewer != x).any(1), (more != x).any(1)
    assert changed_fewer.any() and (changed_more | ~changed_fewer).all() and (changed_more & ~changed_fewer).any()
