"""Stain corruptions against scikit-image's colour deconvolution (rgb2hed / hed2rgb / combine_stains).

scikit-image divides optical densities by -ln(1e-6) and clips negative concentrations
to 0 in rgb2hed; our concentrations are in plain natural-log OD and keep their sign
(so that the round trip is exact). Comparisons therefore scale by -ln(1e-6), and the
images for the recomposition tests are first projected into the stain cone
(hed2rgb(rgb2hed(image)): colours three non-negative stains can make), where
scikit-image clips nothing.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.color import combine_stains, deltaE_ciede2000, hed2rgb, rgb2hed, rgb2lab, rgb_from_hed

from corruptions import CorruptionError, get_corruption, get_operation, sample_generators
from corruptions.stain import HED_FROM_RGB, mix_channels, optical_density, scale_stains, stain_signs, turn_stains

SKIMAGE_SCALE = -math.log(1e-6)
IMAGES = Path(__file__).resolve().parents[2] / "examples" / "slide_artefacts" / "images.py"


def _images_module():
    spec = importlib.util.spec_from_file_location("slide_artefact_images", IMAGES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def slide_images() -> dict[str, np.ndarray]:
    """{"ihc": ..., "he": ...}: 96 x 96 float64 crops (H, W, 3) of tissue and glass."""
    module = _images_module()
    return {"ihc": module.ihc_image()[200:296, 110:206], "he": module.he_like_image()[200:296, 110:206]}


@pytest.fixture(scope="module")
def cone_images(slide_images) -> dict[str, np.ndarray]:
    """The crops projected into the stain cone: hed2rgb(rgb2hed(crop)), so rgb2hed clips nothing."""
    return {name: hed2rgb(rgb2hed(image)) for name, image in slide_images.items()}


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def _image(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("name", ["ihc", "he"])
def test_concentrations_are_rgb2hed_without_its_scaling_and_clipping(slide_images, name):
    image = slide_images[name]
    ours = _image(mix_channels(optical_density(_tensor(image)), HED_FROM_RGB.unsqueeze(0))) / SKIMAGE_SCALE
    reference = rgb2hed(image)
    unclipped = reference > 0  # per pixel and stain
    assert unclipped.mean() > 0.5
    assert np.abs(ours[unclipped] - reference[unclipped]).max() < 1e-12
    assert (ours[~unclipped] <= 1e-12).all()  # where scikit-image clipped to 0, ours is negative


@pytest.mark.parametrize("name", ["ihc", "he"])
def test_round_trip_through_stain_space_is_the_identity_and_matches_hed2rgb(slide_images, cone_images, name):
    image = slide_images[name]
    same = scale_stains(_tensor(image), torch.ones(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64))
    assert np.abs(_image(same) - image).max() < 1e-12  # every colour, also outside the stain cone
    cone = cone_images[name]
    assert np.abs(hed2rgb(rgb2hed(cone)) - cone).max() < 1e-12  # scikit-image's round trip, inside the cone


@pytest.mark.parametrize(("name", "factors"), [("ihc", (1.5, 0.8, 2.0)), ("he", (0.5, 1.25, 1.1)), ("he", (2.0, 2.0, 1.0))])
def test_pure_concentration_scaling_matches_hed2rgb(cone_images, name, factors):
    image = cone_images[name]
    expected = hed2rgb(rgb2hed(image) * np.array(factors))
    ours = _image(scale_stains(_tensor(image), torch.tensor([factors], dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64)))
    assert np.abs(ours - expected).max() < 1e-12 and np.abs(ours - image).max() > 0.05


def test_shift_by_hand_in_numpy(slide_images):
    image = np.concatenate([slide_images["he"], np.ones((96, 8, 3))], axis=1)  # a strip of white glass
    factors, shifts = np.array([1.25, 0.8, 1.0]), np.array([0.1, -0.3, 0.05])
    density = -np.log(np.maximum(image, 1e-6))
    concentration = density @ np.linalg.inv(rgb_from_hed) * factors
    tissue = np.clip((density.sum(axis=-1, keepdims=True) - 0.2) / 0.6, 0, 1)
    shifted = np.maximum(concentration + shifts * tissue, np.minimum(concentration, 0))
    expected = np.clip(np.exp(-(shifted @ rgb_from_hed)), 0, 1)
    ours = _image(scale_stains(_tensor(image), torch.from_numpy(factors[None]), torch.from_numpy(shifts[None])))
    assert np.abs(ours - expected).max() < 1e-12
    assert (ours[:, -8:] == 1.0).all()  # glass stays white
    darker_tissue = tissue[..., 0] == 1
    assert darker_tissue.mean() > 0.1


def _turned_matrix(angles: np.ndarray) -> np.ndarray:
    """scikit-image's rgb_from_hed with each row turned in its plane with its partner (H-E, E-H, DAB-H), by hand."""
    rows = []
    for stain, partner in enumerate((1, 0, 0)):
        v, p = rgb_from_hed[stain], rgb_from_hed[partner]
        unit = v / np.linalg.norm(v)
        across = p - (p @ unit) * unit
        across /= np.linalg.norm(across)
        turned = np.maximum(np.cos(angles[stain]) * unit + np.sin(angles[stain]) * across, 0)
        rows.append(turned / np.linalg.norm(turned) * np.linalg.norm(v))
    return np.array(rows)


@pytest.mark.parametrize("degrees", [(5.0, -5.0, 5.0), (-15.0, 15.0, -15.0), (30.0, -30.0, 0.0)])
def test_turned_stain_vectors_match_combine_stains(cone_images, degrees):
    angles = np.radians(degrees)
    for image in cone_images.values():
        expected = combine_stains(rgb2hed(image), _turned_matrix(angles))
        ours = _image(turn_stains(_tensor(image), torch.tensor(np.array([angles]))))
        assert np.abs(ours - expected).max() < 1e-12 and np.abs(ours - image).max() > 0.02


def test_pinker_and_bluer_haematoxylin():
    haematoxylin = np.array([[[0.55, 0.45, 0.75]]])  # a purple-blue nucleus
    towards_eosin = _image(turn_stains(_tensor(haematoxylin), torch.tensor([[0.3, 0.0, 0.0]], dtype=torch.float64)))[0, 0]
    away = _image(turn_stains(_tensor(haematoxylin), torch.tensor([[-0.3, 0.0, 0.0]], dtype=torch.float64)))[0, 0]
    assert towards_eosin[0] > haematoxylin[0, 0, 0] and towards_eosin[1] < haematoxylin[0, 0, 1]  # more red, less green: pinker
    assert away[0] < haematoxylin[0, 0, 0] and away[1] > haematoxylin[0, 0, 1]  # less red: bluer


@pytest.mark.parametrize("name", ["stain_concentration", "stain_vector"])
def test_white_glass_stays_white_and_the_op_uses_the_drawn_signs(name, slide_images):
    corr = get_corruption(name, "slide-artefacts")
    white = torch.ones(2, 3, 5, 7, dtype=torch.float64)
    assert torch.equal(corr(white, corr.max_severity, generator=sample_generators(0, ["a", "b"], name, None)), white)
    x = _tensor(slide_images["he"]).repeat(2, 1, 1, 1)
    value = corr.parameter(3)
    out = corr(x, 3, generator=sample_generators(0, ["a", "b"], name, None))
    signs = stain_signs(sample_generators(0, ["a", "b"], name, None), 2)
    if name == "stain_concentration":
        expected = scale_stains(x, value["scale"] ** signs, value["shift"] * signs)
    else:
        expected = turn_stains(x, signs * math.radians(value))
    assert torch.equal(out, expected)


def test_severity_one_is_within_the_colour_variation_between_laboratories(slide_images):
    """Dunn et al. 2025: 60 % of 247 laboratories lie within 2 CIEDE2000 units of the mean H&E colour."""
    image = slide_images["he"]
    clean, tissue = rgb2lab(image), image.mean(axis=-1) < 0.8
    ids = [f"s{i}" for i in range(6)]
    for name in ("stain_concentration", "stain_vector"):
        corr = get_corruption(name, "slide-artefacts")
        out = corr(_tensor(image).repeat(6, 1, 1, 1), 1, generator=corr.sample_generators(0, ids, 1))
        delta = np.mean([deltaE_ciede2000(clean, rgb2lab(o.permute(1, 2, 0).numpy()))[tissue].mean() for o in out])
        assert 0.3 < delta < 2.0, (name, delta)


@pytest.mark.parametrize(("name", "value", "match"), [
    ("stain_concentration", {"scale": 0.5}, r"scale = 0\.5: expected a number in \[1, 20\]"),
    ("stain_concentration", {"scale": 1.2, "shfit": 0.1}, r"unknown shfit"),
    ("stain_vector", 90.0, r"angle = 90: expected a number in \[0, 45\]"),
])
def test_values_out_of_range_are_refused(name, value, match):
    with pytest.raises(CorruptionError, match=match):
        get_operation(name)(torch.rand(1, 3, 4, 4), value, generator=sample_generators(0, ["a"], name, None))
