"""The slide-artefacts preset as a whole: nested severities, per-image SSIM, batch independence, image sizes.

Images are real tissue: 64 px crops of scikit-image's IHC sample and of its H&E-like
recolouring (examples/slide_artefacts/images.py). Random rows are seeded as a run
seeds them (Corruption.sample_generators: one stream per sample for every severity).
"""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.color import deltaE_ciede2000, rgb2hed, rgb2lab
from skimage.metrics import structural_similarity

from corruptions import CorruptionError, get_corruption, list_corruptions, load_preset, register_operation
from corruptions.randomness import seed_for_sample
from corruptions.registry import Range
from corruptions.stain import stain_signs

PRESET = "slide-artefacts"
ROWS = list_corruptions(PRESET)
IMAGES = Path(__file__).resolve().parents[2] / "examples" / "slide_artefacts" / "images.py"
CORNERS = [(200, 110), (20, 300), (330, 40)]
IDS = [f"tile-{i}" for i in range(6)]


@pytest.fixture(scope="module")
def tissue() -> torch.Tensor:
    """(6, 3, 64, 64) float64: three H&E-like crops, then the same three IHC crops."""
    spec = importlib.util.spec_from_file_location("slide_artefact_images", IMAGES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    crops = [module.crops(image, 64, CORNERS) for image in (module.he_like_image(), module.ihc_image())]
    return torch.from_numpy(np.concatenate(crops))


def _corrupt(name: str, x: torch.Tensor, severity: int, ids=IDS) -> torch.Tensor:
    corr = get_corruption(name, PRESET)
    return corr(x, severity, generator=corr.sample_generators(7, ids, severity))


def test_preset_rows_are_documented_and_do_not_clash_with_pathology():
    preset = load_preset(PRESET)
    assert ROWS == ["stain_concentration", "stain_vector", "jpeg", "defocus", "focus_gradient", "fold", "bubble", "dust",
                    "illumination", "tile_seam"]
    assert not set(ROWS) & set(list_corruptions("pathology"))
    for name in ROWS:
        entry = preset.entry(name)
        assert len(entry.values) == 4 and len(entry.sources) == 4 and all(entry.sources) and entry.unit and entry.note
        corr = get_corruption(name, PRESET)
        assert corr.nested == corr.random  # every random row keeps its artefacts from severity to severity
    spatial = {"defocus", "focus_gradient", "fold", "bubble", "dust"}
    assert all("px" in preset.entry(name).unit for name in spatial)


def test_nested_rows_use_one_seed_for_every_severity_and_others_one_per_severity():
    fold, markup = get_corruption("fold", PRESET), get_corruption("markup")
    seeds = {fold.sample_generators(0, ["a"], s)[0].initial_seed() for s in range(1, 5)}
    assert seeds == {seed_for_sample(0, "a", "fold", None)}
    assert seed_for_sample(0, "a", "fold", None) == 8075891103631346886  # fixed forever: results must not drift
    assert {markup.sample_generators(0, ["a"], s)[0].initial_seed() for s in range(1, 5)} == {
        seed_for_sample(0, "a", "markup", None)}  # markup nests too
    # a random operation that does not nest gets one stream per severity
    assert len({seed_for_sample(0, "a", "imagecorruptions.gaussian_noise", s) for s in range(1, 5)}) == 4
    assert get_corruption("jpeg", PRESET).sample_generators(0, ["a"], 2) is None


def test_only_random_operations_can_be_nested():
    with pytest.raises(CorruptionError, match="only a random operation can be nested"):
        register_operation("steady", parameter="p", unit="u", description="d", nested=True,
                           ranges={"p": Range(0.0, 1.0, identity=0.0)})


@pytest.mark.parametrize("name", ROWS)
def test_per_image_ssim_never_rises_with_severity(name, tissue):
    x = tissue.float()
    images = [x] + [_corrupt(name, x, s) for s in range(1, 5)]
    for index in range(len(x)):
        clean = x[index].permute(1, 2, 0).numpy()
        values = [
            structural_similarity(clean, image[index].permute(1, 2, 0).numpy(), channel_axis=-1, data_range=1.0)
            for image in images
        ]
        assert all(b <= a + 1e-9 for a, b in itertools.pairwise(values)), (index, [round(v, 4) for v in values])
        assert values[-1] < values[0]


@pytest.mark.parametrize("name", [row for row in ROWS if get_corruption(row, PRESET).random])
def test_higher_severities_keep_the_artefacts_of_lower_ones(name, tissue):
    changed = [(_corrupt(name, tissue, s) != tissue).any(dim=1) for s in range(1, 5)]  # (6, 64, 64) each
    for lower, higher in itertools.pairwise(changed):
        assert not (lower & ~higher).any()  # every pixel an artefact touched at s is touched at s + 1
    assert all(c.flatten(1).any(dim=1).all() for c in changed)  # every image gets the artefact


def test_stain_concentration_keeps_each_stains_direction_and_grows(tissue):
    """Mean change of each stain's concentration (scikit-image's rgb2hed) over the crop: same sign, larger at each severity."""
    clean = [rgb2hed(image.permute(1, 2, 0).numpy()) for image in tissue]
    changes = []
    for severity in range(1, 5):
        out = _corrupt("stain_concentration", tissue, severity)
        changes.append(np.array([(rgb2hed(o.permute(1, 2, 0).numpy()) - c).mean(axis=(0, 1)) for o, c in zip(out, clean)]))
    present = [(0, 1), (0, 2)]  # H&E-like crops: haematoxylin and eosin; IHC crops: haematoxylin and DAB
    for index in range(len(tissue)):
        for stain in present[index // 3]:
            series = [change[index, stain] for change in changes]
            assert all(np.sign(v) == np.sign(series[0]) != 0 for v in series), (index, stain, series)
            assert all(abs(b) > abs(a) for a, b in itertools.pairwise(series)), (index, stain, series)


def test_stain_vector_turns_the_same_way_at_every_severity_and_further_in_colour(tissue):
    """The stain directions drawn per sample are the same at every severity; the colour difference grows."""
    corr = get_corruption("stain_vector", PRESET)
    signs = [stain_signs(corr.sample_generators(7, IDS, s), len(IDS)) for s in range(1, 5)]
    assert all(torch.equal(signs[0], other) for other in signs[1:])
    assert {tuple(row) for row in signs[0].tolist()} != {tuple(signs[0][0].tolist())}  # samples differ
    clean = [rgb2lab(image.permute(1, 2, 0).numpy()) for image in tissue]
    differences = np.array([
        [deltaE_ciede2000(c, rgb2lab(o.permute(1, 2, 0).numpy())).mean() for o, c in zip(_corrupt("stain_vector", tissue, s), clean)]
        for s in range(1, 5)
    ])  # (severity, image)
    assert (np.diff(differences, axis=0) > 0).all(), differences.round(2)


@pytest.mark.parametrize("name", ROWS)
def test_bit_identical_whatever_the_batch_size(name, tissue):
    x = tissue.float()
    for severity in range(1, 5):
        whole = _corrupt(name, x, severity)
        ones = torch.cat([_corrupt(name, x[i : i + 1], severity, IDS[i : i + 1]) for i in range(6)])
        split = torch.cat([_corrupt(name, x[a:b], severity, IDS[a:b]) for a, b in ((0, 2), (2, 6))])
        assert torch.equal(whole, ones) and torch.equal(whole, split), severity


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 3), (1, 300), (4000, 8)])
def test_every_row_works_from_one_pixel_to_4000(height, width):
    x = torch.rand(2, 3, height, width)
    for name in ROWS:
        out = _corrupt(name, x, 4, IDS[:2])
        assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1, name
