"""Every severity of every shipped preset is further from the clean image than the one before.

Measured as mean SSIM against the clean image (scikit-image's structural_similarity:
7x7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, data range 1, mean over
channels) on 64 demo-ihc patches at their native 40 px, and on 8 of them resized to
224 px first (stage "post"; 8 keep the test fast on two CPU cores). SSIM is computed batched in torch for speed; the first test checks
that it equals scikit-image's. Rows that two presets share (the colour rows of
pathology and small-patch) are measured once.

The imagecorruptions family runs one image at a time on the CPU (glass_blur takes
about 20 ms per 40 px image and 1 s per 224 px image), so only its 8 deterministic
corruptions are measured here, at 40 px on 16 patches. Its 11 random ones were
measured once (32 patches, 40 px; numbers in presets/imagecorruptions.toml):
glass_blur (level 4 after 3: its published table drops from 3 to 2 iterations),
snow and frost are not monotone; the other 8 are.
"""
from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

import corruptions
from corruptions import get_corruption, list_corruptions, load_preset

BATCHED_PRESETS = ("pathology", "small-patch", "imagenet-c", "slide-artefacts")
NATIVE_PATCHES, RESIZED_PATCHES, IMAGECORRUPTIONS_PATCHES = 64, 8, 16
HAS_IMAGECORRUPTIONS = importlib.util.find_spec("imagecorruptions") is not None


def _unique_rows() -> list[list[tuple[str, str]]]:
    """(preset, corruption) pairs grouped by identical (operation, values); each group is measured once."""
    groups: dict[tuple, list[tuple[str, str]]] = {}
    for preset in BATCHED_PRESETS:
        for name in list_corruptions(preset):
            entry = load_preset(preset).entry(name)
            values = tuple(tuple(dict(v).items()) if not isinstance(v, float) else v for v in entry.values)
            groups.setdefault((entry.operation, values), []).append((preset, name))
    return list(groups.values())


ROWS = _unique_rows()


@pytest.fixture(scope="module")
def patches() -> dict[int, tuple[torch.Tensor, list[str]]]:
    """demo-ihc patches spread over the dataset, float64: 64 at 40 px, and 8 of them resized to 224 px."""
    from robustpath.data import load_dataset

    dataset = load_dataset("demo-ihc")
    chosen = np.linspace(0, len(dataset) - 1, NATIVE_PATCHES).astype(int)
    native = torch.from_numpy(np.stack([dataset.read_image(i) for i in chosen])).permute(0, 3, 1, 2).double() / 255
    every = NATIVE_PATCHES // RESIZED_PATCHES
    resized = F.interpolate(native[::every], size=(224, 224), mode="bicubic", align_corners=False, antialias=True)
    ids = [dataset.sample_ids[i] for i in chosen]
    return {40: (native, ids), 224: (resized.clamp(0, 1), ids[::every])}


def _window_mean(images: torch.Tensor) -> torch.Tensor:
    """Mean over every 7x7 window lying inside the image, (B, C, H - 6, W - 6): scikit-image's
    uniform filter after its crop of 3 pixels per border. Two banded matrix products."""
    def band(n: int) -> torch.Tensor:
        rows, columns = torch.arange(n - 6).unsqueeze(1), torch.arange(n).unsqueeze(0)
        return ((columns >= rows) & (columns < rows + 7)).to(images.dtype) / 7

    return band(images.shape[-2]) @ images @ band(images.shape[-1]).T


class CleanWindows:
    """Window means and variances of the clean images, computed once per corruption."""

    def __init__(self, clean: torch.Tensor) -> None:
        self.clean = clean
        self.mean = _window_mean(clean)
        self.variance = SAMPLE * (_window_mean(clean * clean) - self.mean**2)

    def mean_ssim(self, corrupted: torch.Tensor) -> float:
        """Mean over images of scikit-image's SSIM (default settings, channel_axis, data_range 1)."""
        mean = _window_mean(corrupted)
        variance = SAMPLE * (_window_mean(corrupted * corrupted) - mean**2)
        covariance = SAMPLE * (_window_mean(self.clean * corrupted) - self.mean * mean)
        c1, c2 = 0.01**2, 0.03**2
        numerator = (2 * self.mean * mean + c1) * (2 * covariance + c2)
        ssim = numerator / ((self.mean**2 + mean**2 + c1) * (self.variance + variance + c2))
        return ssim.mean(dim=(1, 2, 3)).mean().item()


SAMPLE = 49 / 48  # sample covariance over a 7x7 window, as scikit-image's default


def test_batched_ssim_equals_scikit_image(patches):
    for size in (40, 224):
        clean, _ = patches[size]
        corrupted = get_corruption("gaussian_blur")(clean[:3], 2)
        ours = CleanWindows(clean[:3]).mean_ssim(corrupted)
        reference = np.mean([
            structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=-1, data_range=1.0)
            for a, b in zip(clean[:3], corrupted)
        ])
        assert abs(ours - reference) < 1e-9


def _ssim_by_severity(corr, clean: torch.Tensor, ids: list[str]) -> list[float]:
    windows = CleanWindows(clean)
    values = [1.0]
    for severity in range(1, corr.max_severity + 1):
        generators = corr.sample_generators(0, ids, severity)
        values.append(windows.mean_ssim(corr(clean, severity, generator=generators)))
    return values


@pytest.mark.parametrize("size", [40, 224])
@pytest.mark.parametrize("group", ROWS, ids=["+".join(f"{p}-{n}" for p, n in group) for group in ROWS])
def test_ssim_falls_with_every_severity(group, size, patches):
    preset, name = group[0]
    clean, ids = patches[size]
    values = _ssim_by_severity(get_corruption(name, preset), clean, ids)
    assert all(b < a for a, b in itertools.pairwise(values)), (group, size, [round(v, 5) for v in values])


def test_every_corruption_of_every_shipped_preset_is_measured():
    measured = {pair for group in ROWS for pair in group}
    assert measured == {(preset, name) for preset in BATCHED_PRESETS for name in list_corruptions(preset)}
    assert set(corruptions.list_presets()) == {*BATCHED_PRESETS, "imagecorruptions"}  # measured below


DETERMINISTIC_IMAGECORRUPTIONS = [
    name for name in list_corruptions("imagecorruptions") if not get_corruption(name, "imagecorruptions").random
]


@pytest.mark.skipif(not HAS_IMAGECORRUPTIONS, reason="needs the optional package imagecorruptions")
@pytest.mark.parametrize("name", DETERMINISTIC_IMAGECORRUPTIONS)
def test_imagecorruptions_ssim_falls_with_every_level_at_native_size(name, patches):
    clean, ids = patches[40]
    every = NATIVE_PATCHES // IMAGECORRUPTIONS_PATCHES
    values = _ssim_by_severity(get_corruption(name, "imagecorruptions"), clean[::every], ids[::every])
    assert all(b < a for a, b in itertools.pairwise(values)), [round(v, 4) for v in values]
