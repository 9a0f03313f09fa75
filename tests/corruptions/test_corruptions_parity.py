"""The imagenet-c preset against imagecorruptions itself, and blur before vs after a resize.

imagecorruptions (the reference code of ImageNet-C) works on 8-bit images and
truncates its output to 8 bits; our operations stay in float. So the comparison is a
mean absolute difference of at most 1/255 (measured: at most 0.51/255 on these
crops) on 224 px images. imagecorruptions is optional: those tests are skipped
without it (CI installs it).
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from corruptions import equivalent_native_sigma, get_corruption, get_operation

CROPS = [(0, 0), (200, 150), (288, 288)]  # three 224 px crops of scikit-image's IHC image
# A plain `import imagecorruptions` fails on current setuptools (no pkg_resources): check it is installed.
NEEDS_IMAGECORRUPTIONS = pytest.mark.skipif(
    importlib.util.find_spec("imagecorruptions") is None, reason="needs the optional package imagecorruptions"
)


@pytest.fixture(scope="module")
def images_224() -> list[np.ndarray]:
    image = data.immunohistochemistry()
    return [np.ascontiguousarray(image[y : y + 224, x : x + 224]) for y, x in CROPS]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("brightness", "brightness"), ("contrast", "contrast"), ("saturate", "saturate"), ("pixelate", "pixelate"),
     ("gaussian_blur", "gaussian_blur")],
)
@NEEDS_IMAGECORRUPTIONS
def test_imagenet_c_preset_matches_imagecorruptions(ours, theirs, images_224):
    from corruptions.imagenet_c_compat import load_imagecorruptions  # the package, made importable

    reference = load_imagecorruptions()
    corr = get_corruption(ours, "imagenet-c")
    assert corr.max_severity == 5
    batch = torch.from_numpy(np.stack(images_224)).permute(0, 3, 1, 2).double() / 255
    for severity in range(1, 6):
        result = corr(batch, severity).permute(0, 2, 3, 1).numpy() * 255
        for image, ours_image in zip(images_224, result):
            expected = reference.corrupt(image, severity=severity, corruption_name=theirs).astype(np.float64)
            difference = np.abs(ours_image - expected).mean()
            assert difference <= 1.0, (ours, severity, difference)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="module")
def demo_patches() -> tuple[torch.Tensor, torch.Tensor]:
    """64 demo-ihc patches spread over the dataset, float64 in [0, 1]: (64, 3, 40, 40) and resized to 224."""
    from robustpath.data import load_dataset

    dataset = load_dataset("demo-ihc")
    chosen = np.linspace(0, len(dataset) - 1, 64).astype(int)
    native = torch.from_numpy(np.stack([dataset.read_image(i) for i in chosen])).permute(0, 3, 1, 2).double() / 255
    return native, _resize(native, 224)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.0])
def test_blur_after_the_resize_with_scaled_sigma_matches_blur_before_it(sigma, demo_patches):
    """Blurring a 40 px patch at sigma and resizing it to 224 px is close to resizing first and
    blurring at sigma * 224 / 40: the blur's sigma is in pixels of the image it acts on.

    Tolerance, measured on 64 demo-ihc patches: mean absolute difference 0.13-0.47/255
    (largest at sigma 0.5, where the bicubic kernel is as wide as the blur), at most
    8.3/255 at single pixels on the image border (edge pixels are repeated at two
    different resolutions). Asserted: mean <= 0.6/255, maximum <= 10/255, and less than
    half the difference left by blurring after the resize with the unscaled sigma.
    """
    native, resized = demo_patches
    blur = get_operation("gaussian_blur")
    before = _resize(blur(native, sigma), 224)
    after = blur(resized, sigma * 224 / 40)
    assert equivalent_native_sigma(sigma * 224 / 40, 224, 40) == pytest.approx(sigma)
    difference = (before - after).abs() * 255
    assert difference.mean() <= 0.6 and difference.max() <= 10.0, (difference.mean().item(), difference.max().item())
    unscaled = (before - blur(resized, sigma)).abs().mean() * 255
    assert unscaled > 2 * difference.mean(), (unscaled.item(), difference.mean().item())
