"""demo-ihc: 40×40 px patches of scikit-image's immunohistochemistry image.

Source: ``skimage.data.immunohistochemistry()``, a 512×512 RGB image of colonic
glands stained with DAB (brown, the antigen) and haematoxylin (blue, nuclei),
shipped with scikit-image.  Patches are cut on a grid with stride 24 px (20×20 =
400 patches; neighbouring patches overlap by 16 px, so the test split is not
spatially independent of the training split — a demo, not a benchmark).

Labels come from colour deconvolution (``skimage.color.rgb2hed``), i.e. from
stain intensity, **not from a pathologist**.  Per pixel, the haematoxylin and
DAB optical densities H and D give:

- DAB-stained pixel: D > 0.10;  tissue pixel: H > 0.02 or DAB-stained.

Per patch:

- "background" when fewer than 25% of its pixels are tissue;
- else "dab-positive" when at least 20% of its pixels are DAB-stained;
- else "dab-negative".

The split is fixed: the stratified split of ``robustpath.data.split`` with 30%
of each class in the test set and seed 0, whatever the run's seed.
"""
from __future__ import annotations

import numpy as np

DEMO_NAME = "demo-ihc"
PATCH = 40
STRIDE = 24
DAB_STAINED = 0.10
HAEMATOXYLIN_TISSUE = 0.02
MIN_TISSUE_FRACTION = 0.25
MIN_DAB_FRACTION = 0.20
CLASSES = ("background", "dab-negative", "dab-positive")


def demo_patches() -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(N, 40, 40, 3) uint8 patches and their (row, column) grid positions."""
    from skimage import data

    image = data.immunohistochemistry()
    positions = [
        (r, c)
        for r in range(0, image.shape[0] - PATCH + 1, STRIDE)
        for c in range(0, image.shape[1] - PATCH + 1, STRIDE)
    ]
    patches = np.stack([image[r : r + PATCH, c : c + PATCH] for r, c in positions])
    return patches, positions


def label_patch(hed_patch: np.ndarray) -> str:
    """The documented rule on one (H, W, 3) rgb2hed patch."""
    dab = hed_patch[..., 2] > DAB_STAINED
    tissue = (hed_patch[..., 0] > HAEMATOXYLIN_TISSUE) | dab
    if tissue.mean() < MIN_TISSUE_FRACTION:
        return "background"
    return "dab-positive" if dab.mean() >= MIN_DAB_FRACTION else "dab-negative"


SPLIT_SEED = 0
TEST_FRACTION = 0.3


def load_demo_dataset():
    """Build demo-ihc in memory (deterministic, with its fixed split; about a second)."""
    from skimage import data
    from skimage.color import rgb2hed

    from robustpath.data.dataset import ArrayReader, Dataset
    from robustpath.data.split import stratified_split

    patches, positions = demo_patches()
    hed = rgb2hed(data.immunohistochemistry())
    names = [label_patch(hed[r : r + PATCH, c : c + PATCH]) for r, c in positions]
    labels = np.array([CLASSES.index(name) for name in names], dtype=np.int64)
    ids = tuple(f"{DEMO_NAME}/y{r:03d}x{c:03d}" for r, c in positions)
    return Dataset(
        name=DEMO_NAME,
        classes=CLASSES,
        sample_ids=ids,
        labels=labels,
        splits=stratified_split(labels, TEST_FRACTION, SPLIT_SEED),
        paths=tuple(None for _ in ids),
        native_size=(PATCH, PATCH),
        reader=ArrayReader(patches),
    )
