"""Contract of every corruption of every built-in preset, plus the registry, presets and seeding.

Images are float tensors (B, 3, H, W) in [0, 1]; each corruption must keep shape,
dtype, device and range, be the identity at severity 0, and be reproducible and
independent of the batch with per-sample generators. That every severity moves
further from the clean image is tested in test_corruptions_monotone.py (mean SSIM
on demo-ihc patches). The imagecorruptions preset needs the optional package of
that name; its cases are skipped without it.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

import corruptions
from corruptions import (
    CorruptionError,
    get_corruption,
    list_corruptions,
    list_operations,
    list_presets,
    load_preset,
    register_operation,
    registry,
    sample_generators,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CORRUPTIONS = list_corruptions()
NEEDS_IMAGECORRUPTIONS = pytest.mark.skipif(
    importlib.util.find_spec("imagecorruptions") is None, reason="needs the optional package imagecorruptions"
)
CASES = [
    pytest.param(preset, name, id=f"{preset}-{name}", marks=[NEEDS_IMAGECORRUPTIONS] if preset == "imagecorruptions" else [])
    for preset in list_presets()
    for name in list_corruptions(preset)
]
EDGE_SIZES = [(1, 1), (3, 5), (40, 40), (64, 64)]


def _generators(ids: list[str], name: str, severity: int, seed: int = 7) -> list[torch.Generator]:
    return sample_generators(seed, ids, name, severity)


@pytest.fixture(scope="module")
def tissue_patches() -> dict[str, torch.Tensor]:
    """Real IHC tissue: six 40x40 crops (B, 3, 40, 40)."""
    image = torch.from_numpy(skimage.data.immunohistochemistry()).permute(2, 0, 1).double() / 255
    corners = [(60, 60), (200, 120), (300, 300), (100, 400), (420, 220), (250, 40)]
    return {"native": torch.stack([image[:, y : y + 40, x : x + 40] for y, x in corners]).float()}


def test_default_preset_has_seven_corruptions_with_four_severities():
    preset = load_preset()
    assert CORRUPTIONS == ["brightness", "contrast", "gaussian_blur", "resolution", "saturation", "hue", "markup"]
    assert all(preset.severities(name) == 4 for name in CORRUPTIONS)


@pytest.mark.parametrize(("preset", "name"), CASES)
def test_shape_dtype_device_and_range_are_kept(preset, name):
    corr = get_corruption(name, preset)
    torch.manual_seed(0)
    severities = range(corr.max_severity + 1)
    if preset == "imagecorruptions":  # one image at a time on the CPU: the end levels cover each code path
        severities = (0, 1, corr.max_severity)  # (e.g. spatter's liquid at 1-3 and mud at 4-5)
    for height, width in EDGE_SIZES:
        x = torch.rand(2, 3, height, width)
        for severity in severities:
            out = corr(x, severity, generator=_generators(["a", "b"], name, severity))
            assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
            assert torch.isfinite(out).all()
            assert out.min() >= 0 and out.max() <= 1, (height, width, severity)
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        x = torch.rand(2, 3, 16, 16).to(dtype)
        out = corr(x, corr.max_severity, generator=_generators(["a", "b"], name, corr.max_severity))
        assert out.dtype == dtype and out.shape == x.shape and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(("preset", "name"), CASES)
def test_severity_zero_returns_the_input_itself(preset, name):
    x = torch.rand(3, 3, 12, 9)
    assert get_corruption(name, preset)(x, 0, generator=_generators(["a", "b", "c"], name, 0)) is x


@pytest.mark.parametrize(("preset", "name"), CASES)
def test_per_sample_generators_make_results_reproducible_and_batch_independent(preset, name, tissue_patches):
    corr = get_corruption(name, preset)
    x = tissue_patches["native"][:4]
    ids = ["s0", "s1", "s2", "s3"]
    severity = corr.max_severity
    batch = corr(x, severity, generator=_generators(ids, name, severity))
    again = corr(x, severity, generator=_generators(ids, name, severity))
    assert torch.equal(batch, again)
    one_at_a_time = torch.cat(
        [corr(x[i : i + 1], severity, generator=_generators([ids[i]], name, severity)) for i in range(4)]
    )
    torch.testing.assert_close(batch, one_at_a_time, atol=1e-6, rtol=0)
    reversed_order = corr(x.flip(0), severity, generator=_generators(ids[::-1], name, severity))
    torch.testing.assert_close(batch, reversed_order.flip(0), atol=1e-6, rtol=0)
    if corr.random:
        other_seed = corr(x, severity, generator=sample_generators(8, ids, name, severity))
        assert not torch.equal(batch, other_seed)
        same_image = corr(x[:1].repeat(2, 1, 1, 1), severity, generator=_generators(["p", "q"], name, severity))
        assert not torch.equal(same_image[0], same_image[1])  # other sample id, other draws


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_out_of_range_severity_names_the_valid_range(name):
    corr = get_corruption(name)
    x = torch.rand(1, 3, 4, 4)
    for bad in (-1, corr.max_severity + 1, 1.0, True):
        with pytest.raises(CorruptionError, match=rf"0\.\.{corr.max_severity}"):
            corr(x, bad)
    with pytest.raises(CorruptionError, match=r"0\.\.4"):
        corr.parameter(5)


def test_parameter_reports_the_table_value():
    blur = get_corruption("gaussian_blur")
    assert blur.parameter(0) is None
    assert [blur.parameter(s) for s in range(1, 5)] == list(load_preset().corruptions["gaussian_blur"].values)
    assert "pixels" in blur.unit and blur.operation == "gaussian_blur" and blur.max_severity == 4
    assert dict(get_corruption("markup").parameter(np.int64(1))).keys() == {"strokes", "width", "alpha"}
    document = json.loads(json.dumps(load_preset().as_dict()))
    assert document["corruptions"]["markup"]["values"][0] == {"strokes": 1.0, "width": 0.02, "alpha": 0.5}


def test_unknown_names_suggest_the_closest_valid_name():
    with pytest.raises(CorruptionError, match=r"Did you mean 'gaussian_blur'\?.*Valid corruptions: .*hue"):
        get_corruption("gausian_blur")
    with pytest.raises(CorruptionError, match=r"Did you mean 'pixelate'\?"):
        corruptions.get_operation("pixelat")
    with pytest.raises(CorruptionError, match=r"Did you mean 'pathology'\?"):
        load_preset("patholgy")


def test_images_that_are_not_b3hw_float_are_rejected():
    corr = get_corruption("hue")
    for bad in (torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8)):
        with pytest.raises(CorruptionError, match=r"\(B, 3, H, W\)"):
            corr(bad, 1)


def test_wrong_number_of_generators_is_rejected():
    with pytest.raises(CorruptionError, match="one generator per image"):
        get_corruption("markup")(torch.rand(3, 3, 8, 8), 1, generator=sample_generators(0, ["a"], "markup", 1))


def test_sample_generators_are_seeded_by_a_stable_hash():
    first = sample_generators(0, ["a", "b"], "markup", 1)
    second = sample_generators(0, ["a", "b"], "markup", 1)
    assert [g.initial_seed() for g in first] == [g.initial_seed() for g in second]
    assert first[0].initial_seed() == 6917017181697302903  # fixed forever: results must not drift
    varied = [
        sample_generators(1, ["a"], "markup", 1)[0],
        sample_generators(0, ["c"], "markup", 1)[0],
        sample_generators(0, ["a"], "hue", 1)[0],
        sample_generators(0, ["a"], "markup", 2)[0],
    ]
    assert len({first[0].initial_seed(), first[1].initial_seed(), *(g.initial_seed() for g in varied)}) == 6


def test_registry_refuses_duplicates_and_accepts_new_operations(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "_OPERATIONS", dict(registry._OPERATIONS))
    with pytest.raises(CorruptionError, match="already registered"):
        register_operation("hue", parameter="shift", unit="u", description="d",
                           ranges={"shift": registry.Range(0, 1)})(lambda x, v, *, generator=None: x)

    @register_operation("invert_blend", parameter="amount", unit="fraction", description="Blend with 1 - x.",
                        ranges={"amount": registry.Range(0.0, 1.0, identity=0.0)})
    def invert_blend(x, amount, *, generator=None):
        return x * (1 - amount) + (1 - x) * amount

    assert "invert_blend" in list_operations()
    path = tmp_path / "mine.toml"
    path.write_text('[corruptions.invert]\noperation = "invert_blend"\nvalues = [0.1, 0.5]\nsources = ["test"]\n')
    corr = get_corruption("invert", str(path))
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(corr(x, 2), 0.5 * torch.ones_like(x))
    assert corr.unit == "fraction" and load_preset(str(path)).name == "mine"


def test_builtin_presets_are_documented_and_cover_every_builtin_operation():
    used = set()
    for preset_name in list_presets():
        preset = load_preset(preset_name)
        assert preset.name == preset_name and preset.description and preset.path.endswith(f"{preset_name}.toml")
        for entry in preset.corruptions.values():
            used.add(entry.operation)
            assert len(entry.sources) == len(entry.values) and all(entry.sources) and entry.unit
            # the PathCLIP benchmark never published its values: no preset may claim them
            assert not any("pathclip" in source.lower() or "2401.02651" in source for source in entry.sources)
    builtin = {op for op in list_operations() if registry.get_operation(op).function.__module__.startswith("corruptions.")}
    assert builtin <= used


VALID_ENTRY = 'operation = "gaussian_blur"\nvalues = [1.0, 2.0]\nsources = ["x"]\n'
BROKEN_PRESETS = [
    ('[preset]\nname = "p"\n', r"missing \[corruptions\] table"),
    ('[corruptions.blur]\noperation = "gausian_blur"\nvalues = [1.0]\n', r"corruptions\.blur\.operation: .*Did you mean 'gaussian_blur'\?"),
    ('[corruptions.blur]\noperation = "gaussian_blur"\nvalues = []\n', r"corruptions\.blur\.values must be a non-empty list"),
    ('[corruptions.blur]\noperation = "gaussian_blur"\nvalues = 2.0\n', r"corruptions\.blur\.values must be a non-empty list"),
    ('[corruptions.blur]\noperation = "gaussian_blur"\nvalues = [1.0, "two"]\n', r"corruptions\.blur\.values\[1\]: expected a number"),
    ('[corruptions.blur]\noperation = "gaussian_blur"\nvalues = [1.0, 2.0, 3.0]\nsources = ["a", "b"]\n', r"corruptions\.blur\.sources .*one per value \(3\)"),
    ('[corruptions.pen]\noperation = "markup"\nvalues = [{ strokes = 1, width = 0.1 }]\n', r"corruptions\.pen\.values\[0\]: .*missing: alpha"),
    ('[corruptions.pen]\noperation = "markup"\nvalues = [2.0]\n', r"corruptions\.pen\.values\[0\]: .*needs a table"),
    ('[corruptions.pen]\noperation = "markup"\nvalues = [{ strokes = 1.5, width = 0.1, alpha = 0.5 }]\n', r"corruptions\.pen\.values\[0\]: .*whole number"),
    ("[corruptions.blur]\n" + VALID_ENTRY + "colour = 1\n", r"corruptions\.blur has unknown key\(s\) colour"),
    ("[corruptions.blur\n", r"not valid TOML"),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN_PRESETS)
def test_malformed_preset_names_file_key_and_expectation(tmp_path, text, expected):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(CorruptionError, match=expected) as caught:
        load_preset(str(path))
    message = str(caught.value)
    assert str(path) in message and "\n" not in message


def test_missing_preset_file_is_reported(tmp_path):
    with pytest.raises(CorruptionError, match="cannot read preset file"):
        load_preset(str(tmp_path / "nope.toml"))


def test_importing_corruptions_never_imports_robustpath():
    code = "import corruptions, sys; assert not any(m.startswith('robustpath') for m in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_generator_arguments_none_and_single_are_accepted():
    corr = get_corruption("markup")
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(3)
    first = corr(x, 2)
    torch.manual_seed(3)
    assert torch.equal(first, corr(x, 2))
    single = torch.Generator().manual_seed(5)
    out = corr(x, 2, generator=single)
    assert out.shape == x.shape and not np.array_equal(out.numpy(), x.numpy())


@pytest.mark.parametrize("preset", ["pathology", "small-patch"])
def test_markup_strokes_are_bit_identical_whatever_the_batch_size(preset, tissue_patches):
    """The sweep's batch size must not move a single stroke: batches of 6, of 1 and of 2 + 4 agree exactly."""
    corr = get_corruption("markup", preset)
    x = tissue_patches["native"]
    ids = [f"p{i}" for i in range(len(x))]
    for severity in range(1, corr.max_severity + 1):
        whole = corr(x, severity, generator=_generators(ids, "markup", severity))
        ones = [corr(x[i : i + 1], severity, generator=_generators(ids[i : i + 1], "markup", severity)) for i in range(len(x))]
        split = [corr(x[a:b], severity, generator=_generators(ids[a:b], "markup", severity)) for a, b in ((0, 2), (2, 6))]
        assert torch.equal(whole, torch.cat(ones)) and torch.equal(whole, torch.cat(split))
        assert (whole != x).any(dim=1).flatten(1).any(dim=1).all()  # every image got ink
