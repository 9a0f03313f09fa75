"""The Dataset every loader returns: ids, labels, splits and a picklable image reader."""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustpath.data.images import image_size, read_image_file
from robustpath.errors import DataError


class FileReader:
    """Reads image files, resized to one native size (picklable for DataLoader workers)."""

    def __init__(self, paths: tuple[str, ...], native_size: tuple[int, int]) -> None:
        self.paths = paths
        self.native_size = native_size

    def __call__(self, index: int) -> np.ndarray:
        return read_image_file(Path(self.paths[index]), self.native_size)

    def digest_bytes(self, index: int) -> bytes:
        try:
            return Path(self.paths[index]).read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read '{self.paths[index]}': {exc.strerror or exc}") from None


class ArrayReader:
    """Serves images held in memory as one (N, H, W, 3) uint8 array."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __call__(self, index: int) -> np.ndarray:
        return self.images[index]

    def digest_bytes(self, index: int) -> bytes:
        return self.images[index].tobytes()


@dataclass(frozen=True)
class Dataset:
    """A labelled image set with a train/test split.

    labels: (N,) int64 indices into ``classes``; splits: (N,) 'train' / 'test';
    paths: source files (None for in-memory images); native_size: (H, W) every
    image is returned at by ``read_image``.
    """

    name: str
    classes: tuple[str, ...]
    sample_ids: tuple[str, ...]
    labels: np.ndarray
    splits: np.ndarray
    paths: tuple[str | None, ...]
    native_size: tuple[int, int]
    reader: object

    def __len__(self) -> int:
        return len(self.sample_ids)

    def read_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB at ``native_size``."""
        return self.reader(index)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def describe(self) -> dict:
        """Image counts per split and class."""
        return {
            split: {name: int(((self.splits == split) & (self.labels == k)).sum()) for k, name in enumerate(self.classes)}
            for split in ("train", "test")
        }

    def content_digest(self) -> str:
        """SHA-256 over ids, labels, splits and image bytes: changes when any of them does."""
        digest = hashlib.sha256()
        for index, sample_id in enumerate(self.sample_ids):
            digest.update(f"{sample_id}\0{self.classes[self.labels[index]]}\0{self.splits[index]}\0".encode())
            digest.update(hashlib.sha256(self.reader.digest_bytes(index)).digest())
        return digest.hexdigest()


def most_common_size(paths: list[str]) -> tuple[int, int]:
    """The most frequent (H, W) among the files (ties: the first seen)."""
    counts = Counter(image_size(Path(p)) for p in paths)
    return counts.most_common(1)[0][0]


def build_file_dataset(name: str, root: Path, paths: list[str], labels: list[str], splits: np.ndarray) -> Dataset:
    """Assemble a Dataset from absolute file paths and string labels."""
    classes = tuple(sorted(set(labels)))
    index = {c: k for k, c in enumerate(classes)}
    ids = tuple(_relative_id(Path(p), root) for p in paths)
    size = most_common_size(paths)
    return Dataset(
        name=name,
        classes=classes,
        sample_ids=ids,
        labels=np.array([index[label] for label in labels], dtype=np.int64),
        splits=np.asarray(splits, dtype="<U5"),
        paths=tuple(paths),
        native_size=size,
        reader=FileReader(tuple(paths), size),
    )


def _relative_id(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def check_class_sizes(labels: list[str], where: str) -> None:
    """Every class needs at least two images (one for each split)."""
    small = sorted((count, name) for name, count in Counter(labels).items() if count < 2)
    if small:
        count, name = small[0]
        raise DataError(f"{where}: class '{name}' has {count} image(s); every class needs at least 2")
