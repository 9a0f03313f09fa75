"""Corruptions against independent references: scikit-image, OpenCV, PIL, numpy.

Each operation is run on float64 (1, 3, H, W) tensors and compared with the same
operation computed by another library (or by hand in numpy), never with our own
output.
"""
import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian

from corruptions import get_operation, sample_generators
from corruptions.color import hsv_to_rgb, rgb_to_hsv
from corruptions.markup import INKS, _stroke_coverage

IMAGE = data.immunohistochemistry()[150:214, 250:314].astype(np.float64) / 255.0  # (64, 64, 3)


def _run(name, value, image=IMAGE, generator=None):
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].double()
    return get_operation(name).function(x, value, generator=generator)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0, 6.0])
def test_gaussian_blur_matches_scikit_image(sigma):
    expected = gaussian(IMAGE, sigma=sigma, mode="nearest", truncate=4.0, channel_axis=-1)
    assert np.abs(_run("gaussian_blur", sigma) - expected).max() < 1e-6


@pytest.mark.parametrize(("height", "width", "sigma"), [(1, 1, 2.0), (2, 2, 3.0), (5, 3, 2.0), (40, 40, 6.0)])
def test_gaussian_blur_matches_scikit_image_on_images_smaller_than_the_kernel(height, width, sigma):
    image = np.random.default_rng(0).random((height, width, 3))
    expected = gaussian(image, sigma=sigma, mode="nearest", truncate=4.0, channel_axis=-1)
    assert np.abs(_run("gaussian_blur", sigma, image) - expected).max() < 1e-6


def test_gaussian_blur_of_a_wide_image_uses_the_convolution_and_matches_scikit_image():
    from corruptions.blur import MATRIX_MAX_SIDE

    image = np.random.default_rng(3).random((6, MATRIX_MAX_SIDE + 9, 3))
    expected = gaussian(image, sigma=2.5, mode="nearest", truncate=4.0, channel_axis=-1)
    assert np.abs(_run("gaussian_blur", 2.5, image) - expected).max() < 1e-6


def test_gaussian_blur_matches_opencv_on_float32():
    sigma = 2.0
    radius = int(4 * sigma + 0.5)
    image = IMAGE.astype(np.float32)
    expected = cv2.GaussianBlur(image, (2 * radius + 1, 2 * radius + 1), sigma, borderType=cv2.BORDER_REPLICATE)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    ours = get_operation("gaussian_blur").function(x, sigma)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - expected).max() < 1e-5


def test_rgb_hsv_conversions_match_scikit_image():
    edge_colours = np.array(
        [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0.2, 0.2, 0.7]]
    ).reshape(1, 10, 3)
    for image in (IMAGE, edge_colours, np.random.default_rng(1).random((7, 9, 3))):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].double()
        hsv = rgb_to_hsv(x)[0].permute(1, 2, 0).numpy()
        assert np.abs(hsv - rgb2hsv(image)).max() < 1e-9
        back = hsv_to_rgb(torch.from_numpy(rgb2hsv(image)).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
        assert np.abs(back - hsv2rgb(rgb2hsv(image))).max() < 1e-9


def _hsv_reference(transform):
    hsv = rgb2hsv(IMAGE)
    transform(hsv)
    return np.clip(hsv2rgb(hsv), 0, 1)


def test_brightness_saturation_hue_match_scikit_image_hsv():
    def brighter(hsv):
        hsv[..., 2] = np.clip(hsv[..., 2] + 0.3, 0, 1)

    def darker(hsv):
        hsv[..., 2] = np.clip(hsv[..., 2] - 0.4, 0, 1)

    def faded(hsv):
        hsv[..., 1] = np.clip(hsv[..., 1] * 0.3, 0, 1)

    def oversaturated(hsv):  # ImageNet-C saturate severity 4
        hsv[..., 1] = np.clip(hsv[..., 1] * 5 + 0.1, 0, 1)

    def shifted(hsv):
        hsv[..., 0] = np.mod(hsv[..., 0] + 0.7, 1.0)

    assert np.abs(_run("brightness", 0.3) - _hsv_reference(brighter)).max() < 1e-6
    assert np.abs(_run("brightness", -0.4) - _hsv_reference(darker)).max() < 1e-6
    assert np.abs(_run("saturation", 0.3) - _hsv_reference(faded)).max() < 1e-6
    assert np.abs(_run("saturation", {"factor": 5.0, "offset": 0.1}) - _hsv_reference(oversaturated)).max() < 1e-6
    assert np.abs(_run("hue", 0.7) - _hsv_reference(shifted)).max() < 1e-6


@pytest.mark.parametrize(
    ("name", "value", "channel", "change"),
    [
        ("brightness", 0.3, 2, lambda v: np.clip(v + 0.3, 0, 1)),
        ("brightness", -0.5, 2, lambda v: np.clip(v - 0.5, 0, 1)),
        ("saturation", 0.3, 1, lambda s: np.clip(s * 0.3, 0, 1)),
        ("saturation", {"factor": 20.0, "offset": 0.2}, 1, lambda s: np.clip(s * 20 + 0.2, 0, 1)),
        ("hue", 0.35, 0, lambda h: np.mod(h + 0.35, 1.0)),
    ],
)
def test_hsv_operations_on_greys_black_white_and_primaries_match_scikit_image(name, value, channel, change):
    colours = np.array(
        [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [0.02, 0.02, 0.02], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0],
         [0, 1, 1], [1, 0, 1], [0.2, 0.2, 0.7], [0.9, 0.1, 0.1], [0.3, 0.6, 0.3], [1, 0.999, 0.998]]
    ).reshape(2, 7, 3)
    hsv = rgb2hsv(colours)
    hsv[..., channel] = change(hsv[..., channel])  # greys have hue 0 (red): an offset tints them red
    expected = np.clip(hsv2rgb(hsv), 0, 1)
    assert np.abs(_run(name, value, colours) - expected).max() < 1e-9


def test_contrast_by_hand():
    means = IMAGE.mean(axis=(0, 1), keepdims=True)  # per image and channel, as ImageNet-C
    for factor in (0.3, 1.5):
        expected = np.clip((IMAGE - means) * factor + means, 0, 1)
        assert np.abs(_run("contrast", factor) - expected).max() < 1e-12


@pytest.mark.parametrize(("factor", "low_size"), [(2.0, 32), (4.0, 16), (1.5, 43), (3.0, 21)])
def test_resolution_is_opencv_area_then_bilinear(factor, low_size):
    low = cv2.resize(IMAGE, (low_size, low_size), interpolation=cv2.INTER_AREA)
    expected = cv2.resize(low, (64, 64), interpolation=cv2.INTER_LINEAR)
    assert np.abs(_run("resolution", factor) - expected).max() < 1e-6


def _pil_resize(image, size, resample):
    """PIL resize to size = (height, width), channel by channel in 32-bit float mode (no 8-bit rounding)."""
    channels = [
        Image.fromarray(image[..., c].astype(np.float32), mode="F").resize((size[1], size[0]), resample)
        for c in range(3)
    ]
    return np.stack([np.asarray(c, dtype=np.float64) for c in channels], axis=-1)


@pytest.mark.parametrize(("scale", "low_size"), [(0.5, 32), (0.25, 16), (0.6, 38), (0.4, 25), (0.3, 19)])
def test_pixelate_is_pil_box_to_int_side_times_scale_then_pil_nearest(scale, low_size):
    # ImageNet-C: x.resize((int(w * c), int(h * c)), BOX).resize((w, h), NEAREST); PIL in float mode (no 8-bit rounding)
    assert int(64 * scale) == low_size
    expected = _pil_resize(_pil_resize(IMAGE, (low_size, low_size), Image.BOX), (64, 64), Image.NEAREST)
    assert np.abs(_run("pixelate", scale) - expected).max() < 1e-5


def test_pixelate_on_a_non_square_image_matches_pil():
    # 56 -> 33 columns: no output pixel centre falls exactly on a block edge, where PIL's
    # float arithmetic can pick either block (e.g. column 28 of 57 -> 34)
    image = IMAGE[:40, :56]
    expected = _pil_resize(_pil_resize(image, (24, 33), Image.BOX), (40, 56), Image.NEAREST)  # int(40 * .6), int(56 * .6)
    assert np.abs(_run("pixelate", 0.6, image) - expected).max() < 1e-5


def test_pixelate_matches_pil_on_8_bit_images():
    image8 = (IMAGE * 255).round().astype(np.uint8)
    pil = Image.fromarray(image8).resize((38, 38), Image.BOX).resize((64, 64), Image.NEAREST)
    ours = _run("pixelate", 0.6, image8.astype(np.float64) / 255.0)
    difference = np.abs(ours * 255 - np.asarray(pil, dtype=np.float64))
    assert difference.max() <= 1.0 + 1e-9 and difference.mean() < 0.5  # PIL rounds the box means to 8 bits


@pytest.mark.parametrize(
    ("height", "width", "half_width", "spread", "points"),
    [
        (23, 31, 1.7, 1.0, 6),  # short segments inside the image
        (40, 40, 0.5, 1.0, 25),  # a thin 24-segment stroke, as markup draws
        (17, 45, 6.0, 1.6, 4),  # a wide stroke with long segments leaving the image
        (9, 9, 3.0, 3.0, 2),  # one segment far larger than the image
    ],
)
def test_markup_stroke_coverage_matches_numpy_distance_to_segments(height, width, half_width, spread, points):
    rng = np.random.default_rng(2)
    centre = np.array([width, height]) / 2
    polylines = centre + (rng.random((3, points, 2)) - 0.5) * spread * np.array([width, height])  # three samples
    half_widths = np.array([half_width, half_width * 0.5, half_width * 1.5])  # each sample its own width
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    expected = np.empty((3, height, width))
    for b in range(3):
        nearest = np.full((height, width), np.inf)
        for a, c in zip(polylines[b, :-1], polylines[b, 1:]):
            direction = c - a
            t = np.clip(((xs - a[0]) * direction[0] + (ys - a[1]) * direction[1]) / (direction @ direction), 0, 1)
            nearest = np.minimum(nearest, np.hypot(xs - a[0] - t * direction[0], ys - a[1] - t * direction[1]))
        expected[b] = np.clip(half_widths[b] + 0.5 - nearest, 0, 1)
    ours = _stroke_coverage(torch.from_numpy(polylines), torch.from_numpy(half_widths), height, width)
    assert np.abs(ours.numpy() - expected).max() < 1e-9


def test_markup_on_white_with_full_opacity_shows_the_ink_colour():
    white = np.ones((48, 48, 3))
    for sample in ("w0", "w1", "w2"):
        generators = sample_generators(0, [sample], "markup", 1)
        out = _run("markup", {"strokes": 1, "width": 0.15, "alpha": 1.0}, white, generators)
        darkest = out.reshape(-1, 3)[out.sum(-1).argmin()]  # a pixel fully under the pen
        assert any(np.allclose(darkest, ink, atol=1e-9) for ink in INKS.values()), darkest
        assert out.min() >= 0 and out.max() <= 1 and 0 < (out < 1).any(-1).mean() < 0.6
