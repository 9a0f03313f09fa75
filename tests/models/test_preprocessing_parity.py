"""Our decomposed preprocessing (resize_to_input + normalise on a float tensor) against each
library's own preprocessing of the same PIL image: open_clip's transform, the transformers
image processor (default torchvision backend and the PIL one) and timm's eval transform.

Tolerance, in normalised units (a pixel step of 1/255 is about 0.017 at std 0.229):
mean |diff| < 0.01 and max |diff| < 0.05.  Measured here: mean 0.004-0.006, max 0.012-0.02;
the difference is the libraries' uint8 rounding after the resize (PIL resizes uint8 images)
plus PIL's vs torch's antialiased bicubic kernels.  A wrong geometry (crop, size, mean/std)
gives mean differences of 0.1 and more.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from model_fixtures import (  # noqa: E402,F401
    OPEN_CLIP_ARCH,
    tiny_hf_clip,
    tiny_hf_dinov2,
    tiny_hf_dinov2_resized,
    tiny_open_clip,
    tiny_timm,
)
from PIL import Image  # noqa: E402

from robustpath.models import load_encoder  # noqa: E402
from robustpath.models.preprocess import normalise, resize_to_input  # noqa: E402

MEAN_TOLERANCE, MAX_TOLERANCE = 0.01, 0.05
SIZES = [(57, 45), (20, 26), (40, 40), (300, 240)]  # (width, height): down- and upscaling, both aspect ratios


def tissue_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour structure plus pixel noise, like a stained patch (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(xx / 5.0) + np.cos(yy / 7.0), np.sin((xx + yy) / 9.0), np.cos(xx / 3.0) * np.sin(yy / 4.0)], -1)
    base = (base - base.min()) / (base.max() - base.min()) * 200
    return Image.fromarray((base + rng.integers(0, 55, (height, width, 3))).clip(0, 255).astype(np.uint8))


def ours(encoder, image: Image.Image) -> torch.Tensor:
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0
    prep = encoder.preprocessing
    return normalise(resize_to_input(x, prep), prep)[0]


def assert_close(mine: torch.Tensor, theirs: torch.Tensor) -> None:
    assert mine.shape == theirs.shape
    diff = (mine - theirs).abs()
    assert diff.mean() < MEAN_TOLERANCE and diff.max() < MAX_TOLERANCE, (float(diff.mean()), float(diff.max()))


@pytest.mark.parametrize("size", SIZES)
def test_open_clip_transform(tiny_open_clip, size):
    import open_clip

    local_dir = f"local-dir:{tiny_open_clip.extra['local_dir']}"
    for spec, (name, pretrained) in ((tiny_open_clip.spec, (OPEN_CLIP_ARCH, str(tiny_open_clip.path))),
                                     (f"open_clip:{local_dir}", (local_dir, None))):
        encoder = load_encoder(spec)
        _, _, transform = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        image = tissue_like(*size)
        assert_close(ours(encoder, image), transform(image))


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("fixture", ["tiny_hf_clip", "tiny_hf_dinov2",
                                     "tiny_hf_dinov2_resized"])
def test_transformers_image_processor(request, fixture, backend):
    from transformers import AutoImageProcessor

    checkpoint = request.getfixturevalue(fixture)
    encoder = load_encoder(checkpoint.spec)
    processor = AutoImageProcessor.from_pretrained(str(checkpoint.path), backend=backend)
    for size in SIZES:
        image = tissue_like(*size)
        assert_close(ours(encoder, image), processor(images=image, return_tensors="pt").pixel_values[0])


def timm_local_dir_with_crop_pct(checkpoint, folder, crop_pct: float) -> str:
    import json

    config = json.loads((checkpoint.extra["local_dir"] / "config.json").read_text())
    config["pretrained_cfg"]["crop_pct"] = crop_pct
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((checkpoint.extra["local_dir"] / "model.safetensors").read_bytes())
    return f"timm:local-dir:{folder}"


@pytest.mark.parametrize("crop_pct", [1.0, 0.875])
def test_timm_eval_transform(tiny_timm, tmp_path, crop_pct):
    import timm

    spec = timm_local_dir_with_crop_pct(tiny_timm, tmp_path, crop_pct)
    encoder = load_encoder(spec)
    config = timm.data.resolve_data_config({}, model=encoder.model)
    assert config["crop_pct"] == crop_pct
    transform = timm.data.create_transform(**config)
    for size in SIZES:
        image = tissue_like(*size)
        assert_close(ours(encoder, image), transform(image))


def test_resize_then_crop_is_expressed(tiny_hf_dinov2_resized):
    encoder = load_encoder(tiny_hf_dinov2_resized.spec)
    assert encoder.preprocessing.resize_size == 36 and encoder.preprocessing.input_size == (32, 32)


def test_geometry_mapping_from_library_configs():
    from transformers import CLIPImageProcessor, ViTImageProcessor

    from robustpath.models.hf_adapter import preprocessing_from_image_processor
    from robustpath.models.openclip_adapter import preprocessing_from_open_clip
    from robustpath.models.timm_adapter import preprocessing_from_timm

    notes: list[str] = []
    squash = preprocessing_from_open_clip({"size": 224, "mean": (0.5,) * 3, "std": (0.5,) * 3,
                                           "interpolation": "bilinear", "resize_mode": "squash"}, notes)
    assert (squash.input_size, squash.crop, squash.resize_mode) == ((224, 224), "none", "bilinear")
    vit = preprocessing_from_image_processor(ViTImageProcessor(size={"height": 224, "width": 224}, resample=2), notes)
    assert (vit.input_size, vit.crop, vit.resize_mode) == ((224, 224), "none", "bilinear")
    clip = preprocessing_from_image_processor(CLIPImageProcessor(), notes)
    assert (clip.input_size, clip.crop, clip.resize_mode) == ((224, 224), "center", "bicubic")
    assert clip.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    timm_cfg = {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "center",
                "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    assert preprocessing_from_timm(timm_cfg, notes).crop == "center"
    assert notes == []  # all of these are exact
