"""Corruptions against independent references: scikit-image, OpenCV, PIL, numpy."""
import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian

from corruptions import get_operation

IMAGE = data.immunohistochemistry()[150:214, 250:314].astype(np.float64) / 255.0  # (64, 64, 3)


def _run(name, value, image=IMAGE):
    x = torch.from_numpy(image).permute(2, 0, 1)[None].double()
    return get_operation(name).function(x, value)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0, 6.0])
def test_gaussian_blur_matches_scikit_image(sigma):
    expected = gaussian(IMAGE, sigma=sigma, mode="nearest", truncate=4.0, channel_axis=-1)
    assert np.abs(_run("gaussian_blur", sigma) - expected).max() < 1e-6


def test_gaussian_blur_matches_opencv_on_float32():
    sigma = 2.0
    radius = int(4 * sigma + 0.5)
    image = IMAGE.astype(np.float32)
    expected = cv2.GaussianBlur(image, (2 * radius + 1, 2 * radius + 1), sigma, borderType=cv2.BORDER_REPLICATE)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    ours = get_operation("gaussian_blur").function(x, sigma)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - expected).max() < 1e-5


def _hsv_reference(transform):
    hsv = rgb2hsv(IMAGE)
    transform(hsv)
    return np.clip(hsv2rgb(hsv), 0, 1)


def test_brightness_saturation_hue_match_scikit_image_hsv():
    def brighter(hsv):
        hsv[..., 2] = np.clip(hsv[..., 2] + 0.3, 0, 1)

    def faded(hsv):
        hsv[..., 1] = np.clip(hsv[..., 1] * 0.3, 0, 1)

    def shifted(hsv):
        hsv[..., 0] = np.mod(hsv[..., 0] + 0.7, 1.0)

    assert np.abs(_run("brightness", 0.3) - _hsv_reference(brighter)).max() < 1e-6
    assert np.abs(_run("saturation", 0.3) - _hsv_reference(faded)).max() < 1e-6
    assert np.abs(_run("hue", 0.7) - _hsv_reference(shifted)).max() < 1e-6


def test_contrast_by_hand():
    means = IMAGE.mean(axis=(0, 1), keepdims=True)
    expected = np.clip((IMAGE - means) * 0.3 + means, 0, 1)
    assert np.abs(_run("contrast", 0.3) - expected).max() < 1e-12


def test_resolution_downsampling_is_opencv_area_then_bilinear():
    factor = 4
    low = cv2.resize(IMAGE, (16, 16), interpolation=cv2.INTER_AREA)
    expected = cv2.resize(low, (64, 64), interpolation=cv2.INTER_LINEAR)
    assert np.abs(_run("resolution", factor) - expected).max() < 1e-6


def test_pixelate_matches_pil_box_then_nearest():
    image8 = (IMAGE * 255).round().astype(np.uint8)
    pil = Image.fromarray(image8).resize((32, 32), Image.BOX).resize((64, 64), Image.NEAREST)
    ours = _run("pixelate", 2.0, image8.astype(np.float64) / 255.0)
    difference = np.abs(ours * 255 - np.asarray(pil, dtype=np.float64))
    assert difference.max() <= 1.0 + 1e-9 and difference.mean() < 0.5  # PIL rounds the box means to 8 bits
