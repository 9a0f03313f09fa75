"""Image folders: ROOT/<class>/*, ROOT/train/<class>/* + ROOT/test/<class>/*, or ROOT/group=<group>/<class>/*.

In the group layout every top folder is ``group=<name>`` (a centre, scanner or
staining protocol); files with the same path below their group folder, apart from
the extension (``tumour/tile_001.png`` and ``tumour/tile_001.tif``), show the same
tissue: their pair_id is that path without the extension (robustpath.data.groups).
The split is seeded and keeps each pair in one split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from robustpath.data.dataset import Dataset, build_file_dataset
from robustpath.data.images import IMAGE_EXTENSIONS
from robustpath.errors import DataError

SPLIT_FOLDERS = ("train", "test")
GROUP_PREFIX = "group="


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[str]:
    """Image files below ``folder`` as found (links not followed, so that two links to one file and
    dangling links are seen), skipping anything inside hidden folders (e.g. .ipynb_checkpoints)."""
    return sorted(
        str(p.absolute())
        for p in folder.rglob("*")
        if (p.is_file() or (p.is_symlink() and not p.exists()))
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _collect(root: Path) -> tuple[list[str], list[str]]:
    paths, labels = [], []
    for class_dir in _visible_dirs(root):
        images = _images_in(class_dir)
        paths += images
        labels += [class_dir.name] * len(images)
    return paths, labels


def load_image_folder(root: Path, *, test_fraction: float = 0.3, seed: int = 0, on_bad_image: str = "skip") -> Dataset:
    """The dataset of an image folder: ROOT/<class>/*, ROOT/{train,test}/<class>/* or ROOT/group=<name>/<class>/*."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder '{root}' does not exist")
    if not root.is_dir():
        raise DataError(f"'{root}' is not a folder (expected ROOT/<class>/images or a .csv manifest)")
    names = {p.name for p in _visible_dirs(root)}
    if any(name.startswith(GROUP_PREFIX) for name in names):
        return _load_group_folders(root, names, test_fraction=test_fraction, seed=seed, on_bad_image=on_bad_image)
    if set(SPLIT_FOLDERS) <= names and names != set(SPLIT_FOLDERS):
        others = sorted(names - set(SPLIT_FOLDERS))
        raise DataError(
            f"'{root}' has train/ and test/ beside {others}; expected only train/ and test/ (or class folders only)"
        )
    if names and names <= set(SPLIT_FOLDERS):
        paths, labels, splits = _collect_split_folders(root, names)
    else:
        (paths, labels), splits = _collect_class_folders(root, names), None
    return build_file_dataset(
        root.resolve().name, root, paths, labels, splits,
        where=f"'{root}'", test_fraction=test_fraction, seed=seed, on_bad_image=on_bad_image,
    )


def _collect_split_folders(root: Path, names: set[str]) -> tuple[list[str], list[str], np.ndarray]:
    """ROOT/train/<class>/* and ROOT/test/<class>/*: (paths, labels, splits); both splits hold the same classes."""
    if names != set(SPLIT_FOLDERS):
        raise DataError(f"'{root}' has only a '{next(iter(names))}' folder; expected both train/ and test/")
    train_paths, train_labels = _collect(root / "train")
    test_paths, test_labels = _collect(root / "test")
    if set(train_labels) != set(test_labels):
        raise DataError(
            f"'{root}': train/ and test/ must hold the same classes; train has {sorted(set(train_labels))}, "
            f"test has {sorted(set(test_labels))}"
        )
    for split, labels in (("train", train_labels), ("test", test_labels)):
        missing = sorted({p.name for p in _visible_dirs(root / split)} - set(labels))
        if missing:
            raise DataError(f"'{root / split / missing[0]}' holds no images")
    splits = np.array(["train"] * len(train_paths) + ["test"] * len(test_paths))
    return train_paths + test_paths, train_labels + test_labels, splits


def _collect_class_folders(root: Path, names: set[str]) -> tuple[list[str], list[str]]:
    """ROOT/<class>/*: (paths, labels); every class folder holds images."""
    paths, labels = _collect(root)
    if not paths:
        raise DataError(
            f"'{root}' holds no images in class folders; expected ROOT/<class>/*.png|jpg|jpeg|tif|tiff|bmp"
        )
    empty = sorted(names - set(labels))
    if empty:
        raise DataError(f"class folder '{root / empty[0]}' holds no images")
    return paths, labels


def _load_group_folders(root: Path, names: set[str], *, test_fraction: float, seed: int, on_bad_image: str) -> Dataset:
    """ROOT/group=<group>/<class>/*: groups from the top folders, pair ids from the paths below them."""
    others = sorted(name for name in names if not name.startswith(GROUP_PREFIX))
    if others:
        raise DataError(f"'{root}' mixes group=<name> folders with {others}; in the group layout every top folder is group=<name>")
    paths, labels, groups, pair_ids = [], [], [], []
    for group_dir in _visible_dirs(root):
        group = group_dir.name[len(GROUP_PREFIX):]
        found, classes = _collect(group_dir)
        if not found:
            raise DataError(f"'{group_dir}' holds no images in class folders; expected {group_dir.name}/<class>/*.png|jpg|…")
        paths += found
        labels += classes
        groups += [group] * len(found)
        pair_ids += [Path(path).relative_to(group_dir.absolute()).with_suffix("").as_posix() for path in found]
    return build_file_dataset(
        root.resolve().name, root, paths, labels, None,
        where=f"'{root}'", test_fraction=test_fraction, seed=seed, on_bad_image=on_bad_image,
        groups=groups, pair_ids=pair_ids,
    )
