"""The corruption contract, for every corruption of every built-in preset."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import corruptions
from corruptions import CorruptionError, get_corruption, list_corruptions, list_presets, load_preset, sample_generators

CASES = [(preset, name) for preset in list_presets() for name in list_corruptions(preset)]


def _ihc(size):
    """A real (1, 3, size, size) crop of scikit-image's IHC image, in [0, 1]."""
    from skimage import data

    crop = data.immunohistochemistry()[100 : 100 + size, 200 : 200 + size].copy()
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255


def _generators(n, name, severity, seed=0):
    return sample_generators(seed, [f"s{i}" for i in range(n)], name, severity)


@pytest.mark.parametrize("preset, name", CASES)
def test_contract(preset, name):
    corr = get_corruption(name, preset)
    rng = torch.Generator().manual_seed(1)
    for shape in [(2, 3, 1, 1), (2, 3, 3, 5), (3, 3, 40, 40), (1, 3, 64, 48)]:
        x = torch.rand(shape, generator=rng)
        assert corr(x, 0) is x  # severity 0 is the identity
        for severity in range(1, corr.max_severity + 1):
            y = corr(x, severity, generator=_generators(shape[0], name, severity))
            assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
            assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("preset, name", CASES)
def test_deterministic_and_batch_independent(preset, name):
    corr = get_corruption(name, preset)
    x = torch.cat([_ihc(40), torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(2))])
    severity = corr.max_severity
    batch = corr(x, severity, generator=_generators(4, name, severity))
    again = corr(x, severity, generator=_generators(4, name, severity))
    assert torch.equal(batch, again)
    ids = [f"s{i}" for i in range(4)]
    single = torch.cat(
        [corr(x[i : i + 1], severity, generator=sample_generators(0, [ids[i]], name, severity)) for i in range(4)]
    )
    assert torch.allclose(batch, single, atol=1e-6)
    reversed_order = corr(x.flip(0), severity, generator=sample_generators(0, ids[::-1], name, severity))
    assert torch.allclose(batch, reversed_order.flip(0), atol=1e-6)


KNOWN_NON_MONOTONE = {
    # ImageNet-C's own pixelate table (scale 0.6 then 0.5): at 224 px the non-integer
    # factor 1/0.6 misaligns the nearest-neighbour blocks and moves further from the
    # clean image than factor 2 does. Kept as published; see the preset's note.
    ("imagenet_c", "pixelate", 224),
}
MONOTONE_CASES = [
    pytest.param(
        preset, name, size,
        marks=[pytest.mark.xfail(strict=True, reason="published table")] if (preset, name, size) in KNOWN_NON_MONOTONE else [],
    )
    for preset, name in CASES
    for size in (40, 224)
]


@pytest.mark.parametrize("preset, name, size", MONOTONE_CASES)
def test_distance_from_clean_grows_with_severity(preset, name, size):
    corr = get_corruption(name, preset)
    x = _ihc(size).repeat(4, 1, 1, 1)  # four samples: markup differs per sample id
    distances = [
        (corr(x, s, generator=_generators(4, name, s)) - x).abs().mean().item()
        for s in range(corr.max_severity + 1)
    ]
    assert all(b > a for a, b in zip(distances, distances[1:])), distances


def test_random_corruption_follows_its_generator():
    corr = get_corruption("markup")
    x = _ihc(40).repeat(2, 1, 1, 1)
    a = corr(x, 3, generator=sample_generators(0, ["a", "b"], "markup", 3))
    assert not torch.equal(a[0], a[1])  # different sample ids, different strokes
    b = corr(x, 3, generator=sample_generators(1, ["a", "b"], "markup", 3))
    assert not torch.equal(a, b)  # another run seed, other strokes


def test_errors_are_one_line_and_helpful():
    with pytest.raises(CorruptionError, match="did you mean 'gaussian_blur'"):
        get_corruption("gausian_blur")
    corr = get_corruption("hue")
    with pytest.raises(CorruptionError, match=r"expected an integer 0\.\.4"):
        corr(torch.rand(1, 3, 4, 4), 5)
    with pytest.raises(CorruptionError, match=r"\(B, 3, H, W\)"):
        corr(torch.rand(3, 4, 4), 1)


@pytest.mark.parametrize(
    "body, message",
    [
        ("[preset]\nname='x'\n", "corruptions"),
        ("[preset]\nname='x'\n[corruptions.a]\noperation='blurr'\nunit='px'\nvalues=[1.0]\nsources=['s']\n", "gaussian_blur"),
        ("[preset]\nname='x'\n[corruptions.a]\noperation='hue'\nunit='f'\nvalues=[]\nsources=['s']\n", "values"),
        ("[preset]\nname='x'\n[corruptions.a]\noperation='hue'\nunit='f'\nvalues=['big']\nsources=['s']\n", "values"),
        ("[preset]\nname='x'\n[corruptions.a]\noperation='hue'\nunit='f'\nvalues=[0.1, 0.2]\nsources=['s','t','u']\n", "sources"),
        ("[preset\nname='x'\n", "TOML"),
    ],
)
def test_malformed_preset_names_file_and_key(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(CorruptionError) as info:
        load_preset(str(path))
    text = str(info.value)
    assert "bad.toml" in text and message.lower() in text.lower() and "\n" not in text


def test_package_never_imports_robustpath():
    code = "import corruptions, sys; assert not any(m.startswith('robustpath') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert corruptions.__name__ == "corruptions"


def test_float16_images_keep_their_dtype():
    x = _ihc(40).half()
    y = get_corruption("gaussian_blur")(x, 2)
    assert y.dtype == torch.float16 and np.isfinite(y.float().numpy()).all()
