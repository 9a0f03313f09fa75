"""corruptions.imagenet_c_compat: imagecorruptions 1.1.2 running on current libraries.

References are imagecorruptions' own ``corrupt`` under the same NumPy seed, and
scikit-image / OpenCV for what the fixes replace. Skipped without the optional
package (a plain ``import imagecorruptions`` fails on setuptools >= 82, so its
presence is checked with find_spec).
"""
from __future__ import annotations

import importlib.util
import sys
import types
import warnings

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from skimage.filters import gaussian

import corruptions
from corruptions import CorruptionError, get_corruption, load_preset, sample_generators
from corruptions import imagenet_c_compat as compat

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("imagecorruptions") is None, reason="needs the optional package imagecorruptions"
)
IHC = data.immunohistochemistry()
PATCH = np.ascontiguousarray(IHC[200:240, 150:190])  # (40, 40, 3) uint8


@pytest.fixture(scope="module")
def reference() -> types.ModuleType:
    return compat.load_imagecorruptions()


def test_all_19_are_registered_and_in_the_preset(reference):
    assert set(compat.NAMES) == set(reference.get_corruption_names("all"))
    preset = load_preset("imagecorruptions")
    assert list(preset.corruptions) == list(compat.NAMES)
    for name in compat.NAMES:
        corr = get_corruption(name, "imagecorruptions")
        assert corr.operation == f"imagecorruptions.{name}" and corr.max_severity == 5
        assert corr.random == (name in compat.RANDOM)


@pytest.mark.parametrize("name", compat.NAMES)
def test_each_corruption_is_imagecorruptions_corrupt_under_the_same_seed(name, reference):
    for level in (1, 5):
        ours = compat.corrupt_image(PATCH, name, level, seed=123)
        np.random.seed(123)
        expected = reference.corrupt(PATCH, severity=level, corruption_name=name)
        assert ours.dtype == np.uint8 and ours.shape == PATCH.shape
        np.testing.assert_array_equal(ours, expected)


def test_the_import_fix_leaves_no_fake_pkg_resources_and_numpy_untouched(reference):
    shim = sys.modules.get("pkg_resources")
    assert shim is None or hasattr(shim, "require")  # absent, or the real setuptools module
    assert not hasattr(np, "float_")  # NumPy 2 is left as it is
    assert reference.corruptions.resource_filename("imagecorruptions.corruptions", "frost/frost1.png").endswith("frost1.png")


def test_gaussian_blur_matches_scikit_image_with_channel_axis():
    for level, sigma in ((1, 1), (5, 6)):
        expected = np.uint8(np.clip(gaussian(PATCH / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255)
        np.testing.assert_array_equal(compat.corrupt_image(PATCH, "gaussian_blur", level), expected)


def test_fog_is_unchanged_by_the_float_alias_fix(reference, monkeypatch):
    functions = reference.corruptions
    fixed = functions.plasma_fractal
    original = types.FunctionType(fixed.__code__, vars(functions), "plasma_fractal", fixed.__defaults__)
    monkeypatch.setattr(np, "float_", np.float64, raising=False)  # what NumPy 1 had
    np.random.seed(5)
    expected = original(mapsize=64, wibbledecay=2)
    np.random.seed(5)
    np.testing.assert_array_equal(fixed(mapsize=64, wibbledecay=2), expected)


def test_random_corruptions_follow_the_seed_only(reference):
    for name in ("impulse_noise", "glass_blur", "frost"):  # impulse_noise used an unseeded default_rng
        first = compat.corrupt_image(PATCH, name, 3, seed=1)
        np.testing.assert_array_equal(first, compat.corrupt_image(PATCH, name, 3, seed=1))
        assert not np.array_equal(first, compat.corrupt_image(PATCH, name, 3, seed=2))
    state = np.random.get_state()
    compat.corrupt_image(PATCH, "gaussian_noise", 2, seed=9)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]  # restored


def test_spatter_without_liquid_leaves_the_image_instead_of_blackening_it():
    # demo-ihc/y096x192 with the seed its generator gives at level 1: no liquid passes the threshold
    from robustpath.data import load_dataset

    dataset = load_dataset("demo-ihc")
    image = dataset.read_image(dataset.sample_ids.index("demo-ihc/y096x192"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # imagecorruptions as released divides 0 by 0 here
        out = compat.corrupt_image(image, "spatter", 1, seed=1891680925)
    assert out.max() > 0 and np.abs(out.astype(int) - image).max() <= 1


def test_images_under_32_px_are_resized_up_corrupted_and_resized_back(reference):
    small = np.ascontiguousarray(PATCH[:16, :24])
    out = compat.corrupt_image(small, "contrast", 3)
    up = cv2.resize(small, (48, 32), interpolation=cv2.INTER_CUBIC)  # shorter side to 32
    expected = cv2.resize(reference.corrupt(up, severity=3, corruption_name="contrast"), (24, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out, expected)


def test_nothing_is_printed_for_non_square_images(capsys):
    compat.corrupt_image(np.ascontiguousarray(IHC[:40, :56]), "zoom_blur", 2)
    assert capsys.readouterr().out == ""


def test_batched_operation_moves_8_bit_results_back_to_the_input_dtype():
    corr = get_corruption("pixelate", "imagecorruptions")
    x = torch.from_numpy(np.stack([PATCH, PATCH[::-1].copy()])).permute(0, 3, 1, 2).double() / 255
    out = corr(x, 4, generator=sample_generators(0, ["a", "b"], "pixelate", 4))
    assert out.dtype == torch.float64 and out.shape == x.shape
    np.testing.assert_array_equal((out[0].permute(1, 2, 0).numpy() * 255).round(), compat.corrupt_image(PATCH, "pixelate", 4))


def test_missing_package_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setattr(compat, "_MODULE", None)
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "imagecorruptions.corruptions", None)
    corr = get_corruption("fog", "imagecorruptions")  # the preset itself loads without the package
    with pytest.raises(CorruptionError) as caught:
        corr(torch.rand(1, 3, 40, 40), 1)
    message = str(caught.value)
    assert "\n" not in message and "pip install --no-deps imagecorruptions==1.1.2" in message


def test_another_imagecorruptions_version_is_refused(monkeypatch):
    monkeypatch.setattr(compat, "_MODULE", None)
    monkeypatch.setattr(compat, "_installed_version", lambda: "1.1.0")
    with pytest.raises(CorruptionError, match=r"imagecorruptions 1\.1\.0 is installed; .* for 1\.1\.2"):
        compat.load_imagecorruptions()


def test_levels_outside_1_to_5_are_refused_when_the_preset_loads(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[corruptions.fog]\noperation = "imagecorruptions.fog"\nvalues = [1, 6]\n')
    with pytest.raises(CorruptionError, match=r"corruptions\.fog\.values\[1\]: severity 2 has level = 6, outside .*: \[1, 5\], whole numbers"):
        corruptions.load_preset(str(path))
