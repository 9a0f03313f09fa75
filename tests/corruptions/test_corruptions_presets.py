"""The shipped presets, their names, and parameters restated in native pixels."""
from __future__ import annotations

import pytest

from corruptions import (
    CorruptionError,
    equivalent_native_sigma,
    get_corruption,
    list_corruptions,
    list_presets,
    load_preset,
    native_equivalent,
)
from corruptions.preset import PRESET_ALIASES


def test_shipped_presets_and_the_imagenet_c_alias():
    assert list_presets() == ["imagecorruptions", "imagenet-c", "pathology", "slide-artefacts", "small-patch"]
    assert PRESET_ALIASES == {"imagenet_c": "imagenet-c"}
    assert load_preset("imagenet_c") is load_preset("imagenet-c")
    assert get_corruption("pixelate", "imagenet_c").preset == "imagenet-c"
    with pytest.raises(CorruptionError, match=r"Did you mean 'imagenet-c'\?"):
        load_preset("imagenetc")


def test_imagenet_c_preset_holds_the_published_values():
    preset = load_preset("imagenet-c")
    assert list(preset.corruptions) == ["brightness", "contrast", "gaussian_blur", "saturate", "pixelate"]
    values = {name: list(entry.values) for name, entry in preset.corruptions.items()}
    assert values["brightness"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert values["contrast"] == [0.4, 0.3, 0.2, 0.1, 0.05]
    assert values["gaussian_blur"] == [1.0, 2.0, 3.0, 4.0, 6.0]
    assert values["pixelate"] == [0.6, 0.5, 0.4, 0.3, 0.25]
    assert [(v["factor"], v["offset"]) for v in values["saturate"]] == [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)]


def test_small_patch_preset_scales_the_spatial_rows_and_keeps_the_colour_rows():
    small, pathology = load_preset("small-patch"), load_preset("pathology")
    assert list_corruptions("small-patch") == list_corruptions("pathology")
    for name in ("brightness", "contrast", "saturation", "hue"):
        assert small.entry(name).values == pathology.entry(name).values
    # at 40 px the top blur and resolution levels stay below pathology's, markup is broad ink
    assert max(small.entry("gaussian_blur").values) < max(pathology.entry("gaussian_blur").values)
    assert max(small.entry("resolution").values) < max(pathology.entry("resolution").values)
    assert min(v["width"] for v in small.entry("markup").values) > max(v["width"] for v in pathology.entry("markup").values)
    text = open(small.path, encoding="utf-8").read()
    assert "Why another preset" in text and "SSIM" in text  # the reasoning is in the file


def test_equivalent_native_sigma_by_hand():
    assert equivalent_native_sigma(2.0, 224, 40) == pytest.approx(2.0 * 40 / 224)
    assert equivalent_native_sigma(1.0, (224, 300), (40, 60)) == pytest.approx(40 / 224)  # shorter sides
    assert equivalent_native_sigma(1.5, 40, 40) == 1.5


@pytest.mark.parametrize(
    ("preset", "name", "severity", "stage", "expected"),
    [
        ("pathology", "gaussian_blur", 4, "post", {"value": 3.0 * 40 / 224, "unit": "sigma, pixels of the native image"}),
        ("pathology", "gaussian_blur", 4, "pre", {"value": 3.0, "unit": "sigma, pixels of the native image"}),
        ("pathology", "resolution", 2, "post", {"value": 2.0 * 40 / 224, "unit": "factor, pixels of the native image"}),
        ("imagenet-c", "pixelate", 1, "post", {"value": 0.6 * 224 / 40,
                                                "unit": "scale, low-resolution pixels per native pixel (1 or more: no native detail lost)"}),
        ("pathology", "hue", 1, "post", None),
        ("pathology", "markup", 3, "post", None),  # widths are fractions of the image: the same at both stages
        ("imagecorruptions", "gaussian_blur", 1, "post", None),  # a level, not a length
    ],
)
def test_native_equivalent(preset, name, severity, stage, expected):
    result = native_equivalent(load_preset(preset).entry(name), severity, stage=stage, native_size=40, resized_size=224)
    if expected is None:
        assert result is None
    else:
        assert result["unit"] == expected["unit"] and result["value"] == pytest.approx(expected["value"])


def test_native_equivalent_refuses_bad_arguments():
    entry = load_preset().entry("gaussian_blur")
    with pytest.raises(CorruptionError, match="stage"):
        native_equivalent(entry, 1, stage="both", native_size=40, resized_size=224)
    with pytest.raises(CorruptionError, match=r"expected 1\.\.4"):
        native_equivalent(entry, 0, stage="pre", native_size=40, resized_size=224)
    with pytest.raises(CorruptionError, match="image size"):
        native_equivalent(entry, 1, stage="post", native_size=0, resized_size=224)
