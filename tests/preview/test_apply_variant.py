"""robustpath.variants.apply_variant against the corruption library's steps written out by hand."""
import corruptions
import pytest
import torch
import torch.nn.functional as F

from robustpath.variants import ANY_STAGE, Variant, apply_variant

IDS = ["slide1/a", "slide1/b", "slide2/c"]
SEED = 7


def _resize(x):
    return F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False)


def _by_hand(images, name, severity, stage):
    bound = corruptions.get_corruption(name)
    generators = corruptions.sample_generators(SEED, IDS, name, None if bound.nested else severity) if bound.random else None
    x = bound(images, severity, generator=generators) if stage in ("pre", ANY_STAGE) else images
    x = _resize(x)
    return bound(x, severity, generator=generators) if stage == "post" else x


@pytest.mark.parametrize("name", ["markup", "gaussian_blur", "hue"])
@pytest.mark.parametrize("stage", ["pre", "post"])
def test_pre_resize_post_with_seeded_generators(name, stage):
    images = torch.rand(len(IDS), 3, 40, 40, generator=torch.Generator().manual_seed(0))
    bound = corruptions.get_corruption(name)
    variant = Variant(name, 2, stage)
    expected = _by_hand(images, name, 2, stage)
    fresh = apply_variant(images, variant, bound, seed=SEED, sample_ids=IDS, resize=_resize)
    pool = [torch.Generator() for _ in range(5)]
    pooled = [apply_variant(images, variant, bound, seed=SEED, sample_ids=IDS, resize=_resize, generator_pool=pool)
              for _ in range(2)]  # a re-used pool is re-seeded each time
    assert fresh.shape == (len(IDS), 3, 24, 24)
    assert torch.equal(fresh, expected)
    assert all(torch.equal(result, expected) for result in pooled)


def test_clean_variant_is_the_resize_alone():
    images = torch.rand(2, 3, 40, 40)
    out = apply_variant(images, Variant("none", 0, "none"), None, seed=SEED, sample_ids=IDS[:2], resize=_resize)
    assert torch.equal(out, _resize(images))
