"""Spatial parameters restated in native pixels in run.json and report.md.

Expected values are written out by hand: a corruption after the resize acts on an
image whose shorter side is the model's resize size, so a length of L pixels there is
L * native / resized native pixels (a sigma), and a pre-resize value is already native."""
import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
from model_fixtures import tiny_hf_dinov2_resized  # noqa: E402,F401

import robustpath  # noqa: E402
from corruptions import load_preset  # noqa: E402


def test_post_resize_blur_sigma_in_native_pixels(tmp_path, tiny_hf_dinov2_resized):
    # demo-ihc patches are 40 px; this model resizes the shorter side to 36, then crops 32
    out = tmp_path / "run"
    robustpath.evaluate(tiny_hf_dinov2_resized.spec, out=out, tasks=["retrieval"], corruptions=["gaussian_blur", "hue"],
                        severities=[2], stage="both", no_cache=True)
    variants = {(v["corruption"], v["stage"]): v for v in json.loads((out / "run.json").read_text())["preset"]["variants"]}
    sigma = load_preset("pathology").entry("gaussian_blur").values[1]
    assert variants[("gaussian_blur", "post")]["native_equivalent"]["value"] == pytest.approx(sigma * 40 / 36)
    assert variants[("gaussian_blur", "pre")]["native_equivalent"]["value"] == pytest.approx(sigma)
    assert "native image" in variants[("gaussian_blur", "post")]["native_equivalent"]["unit"]
    assert variants[("hue", "post")]["native_equivalent"] is None  # a colour change has no size

    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| corruption | stage | severity"))
    assert header.rstrip(" |").endswith("in native pixels")
    post_row = next(line for line in report.splitlines() if line.startswith("| gaussian_blur | post |"))
    assert post_row.split("|")[-2].strip() == f"{sigma * 40 / 36:.3g}"
