"""JPEG corruption against Pillow itself: the same file bytes and the same decoded pixels.

The reference encodes with PIL.Image.save(format="JPEG", quality=q) at Pillow's
defaults, written here from the uint8 image, and decodes with PIL.Image.open; the
operation must give exactly those pixels (bit-exact), for any image size.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, features
from skimage import data

from corruptions import CorruptionError, get_corruption, get_operation, load_preset
from corruptions.jpeg import jpeg_bytes

IHC = data.immunohistochemistry()


def _pillow_jpeg(image: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return buffer.getvalue(), np.asarray(decoded)


def test_pillow_codes_jpeg_with_libjpeg_turbo():
    assert features.check_feature("libjpeg_turbo")


@pytest.mark.parametrize("quality", [95, 90, 80, 70, 50, 10])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 13), (40, 40), (64, 48), (224, 224)])
def test_jpeg_is_bit_exact_with_pillow(quality, height, width):
    images = np.stack([IHC[y : y + height, x : x + width] for y, x in ((0, 0), (150, 200), (280, 280))])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255.0
    out = get_operation("jpeg")(x, float(quality))
    assert out.dtype == x.dtype and out.shape == x.shape
    ours = (out * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for image, decoded in zip(images, ours):
        expected_bytes, expected = _pillow_jpeg(image, quality)
        assert jpeg_bytes(image, quality) == expected_bytes
        np.testing.assert_array_equal(decoded, expected)
    assert torch.equal(out * 255.0, (out * 255.0).round())  # values are k / 255 exactly


def test_float_images_are_rounded_half_to_even_before_coding():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((2, 3, 16, 24)))
    rounded = np.rint(x.numpy() * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    out = (get_operation("jpeg")(x, 75.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for image, decoded in zip(rounded, out):
        np.testing.assert_array_equal(decoded, _pillow_jpeg(image, 75)[1])


def test_lower_quality_loses_more_on_average():
    images = torch.from_numpy(np.stack([IHC[y : y + 64, x : x + 64] for y in (0, 128, 256) for x in (0, 200)])).permute(0, 3, 1, 2)
    x = images.float() / 255.0
    corr = get_corruption("jpeg", "slide-artefacts")
    errors = [(corr(x, s) - x).abs().mean().item() for s in range(1, corr.max_severity + 1)]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors
    assert [corr.parameter(s) for s in range(1, 5)] == [90.0, 80.0, 70.0, 50.0]


@pytest.mark.parametrize("quality", [0.0, 101.0, 75.5])
def test_quality_must_be_a_whole_number_from_1_to_100(quality, tmp_path):
    with pytest.raises(CorruptionError, match=r"quality = .*: expected a whole number in \[1, 100\]"):
        get_operation("jpeg")(torch.rand(1, 3, 4, 4), quality)
    path = tmp_path / "bad.toml"
    path.write_text(f'[corruptions.j]\noperation = "jpeg"\nvalues = [{quality}]\nsources = ["x"]\n')
    with pytest.raises(CorruptionError, match=r"corruptions\.j\.values\[0\].*quality = .*\[1, 100\], whole numbers"):
        load_preset(str(path))
