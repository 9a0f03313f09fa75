"""Markup severities nest: severity s + 1 keeps severity s's strokes (none thinner or lighter) and adds ink.

Checked per image, not on the mean: on demo-ihc's held-out (test split) patches at
their native 40 px and resized to 224 px (a corruption after the resize), and on
random images, for the markup of every shipped preset:

* every pixel that severity s marks (changes) is marked at s + 1, and no pixel is
  lighter at s + 1 than at s (ink only multiplies);
* per-image SSIM against the clean image (scikit-image's structural_similarity)
  does not rise from one severity to the next.
"""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

import corruptions
from corruptions import get_corruption, list_presets, load_preset, sample_generators
from corruptions.randomness import draw_uniform

MARKUP_PRESETS = [p for p in list_presets() if "markup" in load_preset(p).corruptions]
RESIZED = 8  # held-out patches also checked at 224 px (markup and SSIM at 224 px are slow)


@pytest.fixture(scope="module")
def held_out():
    """demo-ihc's 120 test patches, float64 (120, 3, 40, 40) in [0, 1], and their sample ids."""
    from robustpath.data import load_dataset

    dataset = load_dataset("demo-ihc")
    test = dataset.indices("test")
    images = torch.from_numpy(np.stack([dataset.read_image(int(i)) for i in test])).permute(0, 3, 1, 2).double() / 255
    return images, [dataset.sample_ids[int(i)] for i in test]


@pytest.fixture(scope="module", params=MARKUP_PRESETS)
def levels(request, held_out):
    """(preset, {image set: (clean images, ids, [severity 1..N images])}), computed once per preset."""
    images, ids = held_out
    resized = F.interpolate(images[:RESIZED], size=(224, 224), mode="bicubic", antialias=True).clamp(0, 1)
    noise = torch.rand(48, 3, 40, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sets = {
        "held-out 40 px": (images, ids),
        "held-out 224 px": (resized, ids[:RESIZED]),
        "random 40 px": (noise, [f"random-{i}" for i in range(len(noise))]),
    }
    corr = get_corruption("markup", request.param)
    severities = range(1, corr.max_severity + 1)
    return request.param, {
        name: (x, names, [corr(x, s, generator=corr.sample_generators(0, names, s)) for s in severities])
        for name, (x, names) in sets.items()
    }


def _ssim(clean: torch.Tensor, other: torch.Tensor) -> float:
    return structural_similarity(clean.permute(1, 2, 0).numpy(), other.permute(1, 2, 0).numpy(),
                                 channel_axis=-1, data_range=1.0)


def test_each_severity_contains_the_marks_of_the_one_before(levels):
    preset, sets = levels
    for name, (images, ids, corrupted) in sets.items():
        for severity, (lower, higher) in enumerate(itertools.pairwise(corrupted), start=1):
            marked_lower = (lower != images).any(dim=1)  # (B, H, W)
            marked_higher = (higher != images).any(dim=1)
            lost = (marked_lower & ~marked_higher).flatten(1).sum(1)
            assert not lost.any(), (preset, name, severity, [ids[i] for i in torch.flatnonzero(lost).tolist()])
            lighter = (higher > lower + 1e-12).flatten(1).any(1)
            assert not lighter.any(), (preset, name, severity, [ids[i] for i in torch.flatnonzero(lighter).tolist()])


def test_per_image_ssim_does_not_rise_with_severity(levels):
    preset, sets = levels
    for name, (images, ids, corrupted) in sets.items():
        ssim = np.array([[1.0] + [_ssim(images[i], level[i]) for level in corrupted] for i in range(len(ids))])
        rises = np.diff(ssim, axis=1) > 0
        assert not rises.any(), (preset, name, [(ids[i], np.round(ssim[i], 4).tolist()) for i in np.flatnonzero(rises.any(1))])


def test_shipped_markup_tables_never_get_fewer_thinner_or_lighter():
    for preset in MARKUP_PRESETS:
        values = load_preset(preset).entry("markup").values
        for key in ("strokes", "width", "alpha"):
            column = [float(v[key]) for v in values]
            assert column == sorted(column), (preset, key, column)


def test_markup_generators_are_the_same_at_every_severity_and_differ_per_sample_and_run():
    markup = get_corruption("markup")
    assert markup.nested
    first, third = markup.sample_generators(0, ["a", "b"], 1), markup.sample_generators(0, ["a", "b"], 3)
    assert torch.equal(draw_uniform(first, 2, 11), draw_uniform(third, 2, 31)[:, :11])
    assert not torch.equal(*draw_uniform(markup.sample_generators(0, ["a", "b"], 1), 2, 11))  # one stream per sample
    other_run = draw_uniform(markup.sample_generators(1, ["a", "b"], 1), 2, 11)
    assert not torch.equal(draw_uniform(markup.sample_generators(0, ["a", "b"], 1), 2, 11), other_run)
    # the module function seeds per severity unless asked for the nested seed
    assert not torch.equal(draw_uniform(sample_generators(0, ["a"], "markup", 1), 1, 11),
                           draw_uniform(sample_generators(0, ["a"], "markup", 3), 1, 11))


def test_plain_generators_seeded_alike_give_nested_marks():
    """A plain torch.Generator per sample, seeded alike for two severities: their marks nest."""
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    markup = corruptions.get_corruption("markup")
    low = markup(x, 1, generator=[torch.Generator().manual_seed(5)])
    high = markup(x, 4, generator=[torch.Generator().manual_seed(5)])
    assert not ((low != x) & (high == x)).any()
