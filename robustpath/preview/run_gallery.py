"""The corruption gallery of an evaluation: a few test images under the run's corruptions.

``robustpath eval`` draws it as plots/corruption_gallery.png in report.md: one row per
corruption, columns clean + severities; each cell shows the chosen test images side by
side (one per class while classes last, up to ``GALLERY_IMAGES``).  Every corruption
is applied at native size before the model's resize (stage "pre"), with the run's seed
and per-sample generators, so the cells are the exact images the pre-stage sweep used
(larger images are then shrunk to ``DISPLAY_SIDE`` for display, so the gallery's memory
and drawing time do not grow with the native size).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from robustpath.variants import Variant, apply_variant

GALLERY_IMAGES = 3
DISPLAY_SIDE = 256  # cells are shown at most this many pixels wide or high (corrupted at native size first)


@dataclass(frozen=True)
class RunGallery:
    """rows: corruption → one strip per column (None where the run has no such severity)."""

    rows: dict[str, list[np.ndarray | None]]
    column_titles: tuple[str, ...]
    sample_ids: tuple[str, ...]
    classes: tuple[str, ...]
    seed: int

    def describe(self) -> dict:
        """Facts for run.json and the caption in report.md."""
        return {"sample_ids": list(self.sample_ids), "classes": list(self.classes), "stage": "pre", "seed": self.seed}


def gap_pixels(height: int) -> int:
    """Width of the white gap between two images of ``height`` px in a strip (2 px for 40 px)."""
    return max(1, round(height / 20))


def for_display(image: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """An (H, W, 3) uint8 image shrunk (antialiased) to fit ``side`` × ``side``; unchanged if it fits."""
    height, width = image.shape[:2]
    if max(height, width) <= side:
        return image
    from PIL import Image

    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def strip(images: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W, 3) uint8 images side by side (each ``for_display``), separated by white columns."""
    images = [for_display(image) for image in images]
    height = images[0].shape[0]
    gap = np.full((height, gap_pixels(height), 3), 255, dtype=np.uint8)
    parts = [part for image in images for part in (gap, image)][1:]
    return np.concatenate(parts, axis=1)


def build_run_gallery(dataset, preset, variants: Sequence[Variant], *, seed: int,
                      count: int = GALLERY_IMAGES) -> RunGallery | None:
    """The gallery of ``variants``' corruptions and severities on up to ``count`` test images (None if none)."""
    import corruptions

    from robustpath.preview.gallery import _to_float, _to_uint8, pick_one_per_class

    test = dataset.indices("test")
    severities_of: dict[str, set[int]] = {}
    for variant in variants:
        severities_of.setdefault(variant.corruption, set()).add(variant.severity)
    if not severities_of or len(test) == 0:
        return None
    names = [dataset.classes[int(dataset.labels[i])] for i in test]
    chosen = [int(test[position]) for position in pick_one_per_class(names, count)]
    ids = [dataset.sample_ids[i] for i in chosen]
    images = _to_float([dataset.read_image(i) for i in chosen])
    clean = strip(list(_to_uint8(images)))
    columns = sorted(set().union(*severities_of.values()))
    rows = {}
    for corruption, severities in severities_of.items():
        bound = corruptions.get_corruption(corruption, preset)
        cells: list[np.ndarray | None] = [clean]
        for severity in columns:
            if severity not in severities:
                cells.append(None)
                continue
            corrupted = apply_variant(images, Variant(corruption, severity, "pre"), bound, sample_ids=ids, seed=seed)
            cells.append(strip(list(_to_uint8(corrupted))))
        rows[corruption] = cells
    return RunGallery(
        rows=rows, column_titles=("clean", *(f"severity {s}" for s in columns)), sample_ids=tuple(ids),
        classes=tuple(dataset.classes[int(dataset.labels[i])] for i in chosen), seed=seed,
    )
