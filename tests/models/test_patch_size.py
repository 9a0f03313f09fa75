"""The small-image note names the model's own patch size, read from the loaded model by every adapter.

The tiny test models of every source are built with 8 px patches (model_fixtures); images of
6 px are smaller than one patch, images of 10 px are not (though smaller than the 16 px that
used to be assumed for models other than CustomViT).
"""
from __future__ import annotations

import numpy as np
import pytest
from engine_fixtures import torch_threads
from model_fixtures import tiny_hf_clip, tiny_hf_dinov2, tiny_open_clip, tiny_timm  # noqa: F401  (fixtures)
from PIL import Image

import robustpath

SOURCES = ["tiny_open_clip", "open_clip local-dir", "tiny_hf_clip", "tiny_hf_dinov2", "tiny_timm", "timm local-dir"]


def _spec(request, source: str) -> str:
    if source.endswith("local-dir"):
        name = source.split()[0]
        checkpoint = request.getfixturevalue(f"tiny_{name}")
        return f"{name}:local-dir:{checkpoint.extra['local_dir']}"
    return request.getfixturevalue(source).spec


def _folder(root, side: int):
    rng = np.random.default_rng(side)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / label / f"{k}.png")
    return root


def _notes(spec: str, data) -> list[str]:
    with torch_threads(1):
        table = robustpath.evaluate(spec, str(data), tasks=["embedding_drift"], corruptions=["hue"], severities=[1],
                                    device="cpu", no_cache=True)
    return [note for note in table.attrs["record"]["notes"] if "smaller than" in note]


@pytest.mark.parametrize("source", SOURCES)
def test_every_adapter_reports_the_patch_of_the_loaded_model(request, source):
    from robustpath.models import load_encoder

    assert load_encoder(_spec(request, source)).describe()["patch_size"] == 8


@pytest.mark.parametrize("source", ["tiny_open_clip", "tiny_hf_dinov2", "tiny_timm"])
def test_the_small_image_note_names_the_models_patch(request, tmp_path, source):
    spec = _spec(request, source)
    [note] = _notes(spec, _folder(tmp_path / "six", 6))
    assert "smaller than one 8 px patch of the model" in note and "16 px" not in note
    assert _notes(spec, _folder(tmp_path / "ten", 10)) == []  # 10 px: at least one 8 px patch


def test_a_model_without_patches_is_compared_with_a_typical_vit_patch():
    from robustpath.run.runner import _small_image_note

    note = _small_image_note((10, 10), {"patch_size": None}, (224, 224))
    assert "smaller than 16 px (the patch of most ViTs)" in note and "of the model" not in note
    assert _small_image_note((20, 20), {"patch_size": None}, (224, 224)) is None
