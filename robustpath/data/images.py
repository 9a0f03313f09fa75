"""Decode image files to 8-bit RGB arrays, whatever their mode."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from robustpath.spec.run_spec import BAD_IMAGE_POLICIES
from robustpath.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
__all__ = ["BAD_IMAGE_POLICIES", "IMAGE_EXTENSIONS", "check_image_file", "read_image_file", "to_rgb_array"]


def _decode_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image, UnidentifiedImageError

    return (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def to_rgb_array(image) -> np.ndarray:
    """A PIL image in any mode → (H, W, 3) uint8 RGB.

    16-bit and 32-bit integer images are scaled from their full range to 8 bits;
    float images are taken as [0, 1]; transparency is composited on white;
    palette and CMYK images are converted by PIL.
    """
    from PIL import Image

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "F":
            scaled = np.clip(values, 0.0, 1.0) * 255.0
        elif mode == "I" and values.max(initial=0) > 65535:
            scaled = values / float(2**32 - 1) * 255.0
        else:
            scaled = values / 65535.0 * 255.0
        gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_image_file(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read ``path`` as (H, W, 3) uint8; resize (bicubic) to ``size`` = (H, W) if given."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            array = to_rgb_array(image)
    except FileNotFoundError:
        raise DataError(f"image '{path}' not found") from None
    except _decode_errors() as exc:
        raise DataError(f"image '{path}' cannot be decoded: {_reason(exc)}") from None
    if size is not None and array.shape[:2] != tuple(size):
        array = np.asarray(Image.fromarray(array).resize((size[1], size[0]), Image.BICUBIC))
    return array


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def check_image_file(path: Path) -> tuple[tuple[int, int], bytes]:
    """Read ``path`` once, decode it completely (truncation shows only then): its (H, W) and bytes.

    Raises DataError naming the file: missing, a dangling symbolic link, empty, not an
    image, truncated, or larger than PIL's decompression-bomb limit.
    """
    import io

    from PIL import Image

    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise DataError(f"'{path}' is a dangling symbolic link (to '{os.readlink(path)}')")
    try:
        data = path.read_bytes()
        if not data:
            raise DataError(f"image '{path}' is empty (0 bytes)")
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return (image.size[1], image.size[0]), data
    except FileNotFoundError:
        raise DataError(f"image '{path}' not found") from None
    except _decode_errors() as exc:
        raise DataError(f"image '{path}' cannot be decoded: {_reason(exc)}") from None
