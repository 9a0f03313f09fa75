"""Two real-looking test images for the slide-artefact corruptions, from scikit-image's sample data.

* IHC: ``skimage.data.immunohistochemistry()`` (512 x 512, haematoxylin + DAB, Ruifrok
  & Johnston's stains).
* H&E-like: the same tissue recoloured by colour deconvolution (``skimage.color.rgb2hed``
  / ``hed2rgb``): haematoxylin kept (x 1.6), DAB replaced by eosin (0.2 x DAB plus 0.02
  on all tissue, so cytoplasm and stroma are pink), no DAB left. scikit-image ships no
  H&E image; this one has H&E's two stains at plausible strengths.

Both are float64 (512, 512, 3) in [0, 1], and :func:`crops` cuts patches from them.
"""
from __future__ import annotations

import numpy as np
from skimage import data
from skimage.color import hed2rgb, rgb2hed


def ihc_image() -> np.ndarray:
    """skimage's IHC sample, (512, 512, 3) float64 in [0, 1]."""
    return data.immunohistochemistry().astype(np.float64) / 255.0


def he_like_image() -> np.ndarray:
    """The IHC sample recoloured as H&E by colour deconvolution, (512, 512, 3) float64 in [0, 1]."""
    stains = rgb2hed(data.immunohistochemistry())
    haematoxylin, dab = stains[..., 0], stains[..., 2]
    tissue = np.clip((haematoxylin + dab - 0.01) / 0.03, 0.0, 1.0)
    eosin = 0.2 * dab + 0.02 * tissue
    return hed2rgb(np.stack([1.6 * haematoxylin, eosin, np.zeros_like(dab)], axis=-1))


def crops(image: np.ndarray, size: int, corners: list[tuple[int, int]]) -> np.ndarray:
    """(N, 3, size, size) float64 patches of ``image`` (H, W, 3) with top-left corners (row, column)."""
    return np.stack([image[y : y + size, x : x + size].transpose(2, 0, 1) for y, x in corners])
