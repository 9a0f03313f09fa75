"""Very large images: beyond PIL's decompression-bomb limit they are bad images (skipped or
fatal by --on-bad-image), below it they are decoded and resized to the dataset's size."""
import numpy as np
import pytest
from PIL import Image

from robustpath.data import load_dataset
from robustpath.errors import DataError


def _folder(root, big_side: int):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (big_side, big_side, 3), dtype=np.uint8)).save(root / "b" / "huge.png")
    return root


def test_image_over_the_bomb_limit_is_skipped_or_fatal(tmp_path, monkeypatch):
    root = _folder(tmp_path / "data", 64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 = 4096 > 2 x 1000: PIL refuses it
    dataset = load_dataset(str(root))
    assert len(dataset) == 6
    [(path, reason)] = dataset.skipped
    assert path.endswith("huge.png") and "decompression bomb" in reason.lower()
    with pytest.raises(DataError, match=r"huge\.png.*decompression bomb"):
        load_dataset(str(root), on_bad_image="fail")


def test_large_image_under_the_limit_is_resized_to_the_common_size(tmp_path):
    root = _folder(tmp_path / "data", 1024)
    dataset = load_dataset(str(root))
    assert len(dataset) == 7 and tuple(dataset.native_size) == (16, 16)
    index = next(i for i, p in enumerate(dataset.paths) if str(p).endswith("huge.png"))
    image = dataset.read_image(index)
    expected = np.asarray(Image.open(root / "b" / "huge.png").resize((16, 16), Image.BICUBIC))
    assert image.shape == (16, 16, 3)
    np.testing.assert_array_equal(image, expected)  # PIL's own bicubic resize of the same file
