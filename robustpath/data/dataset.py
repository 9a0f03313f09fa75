"""The Dataset every loader returns: ids, labels, splits and a picklable image reader."""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustpath.data.images import BAD_IMAGE_POLICIES, check_image_file, read_image_file
from robustpath.errors import DataError, UsageError, unknown_name_message


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
        return self.images[index].copy()

    def digest_bytes(self, index: int) -> bytes:
        return self.images[index].tobytes()


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image set with a train/test split.

    labels: (N,) int64 indices into ``classes``; splits: (N,) 'train' / 'test';
    paths: source files (None for in-memory images); native_size: (H, W) every
    image is returned at by ``read_image``; skipped: (path, reason) of files left
    out because they could not be decoded (policy ``on_bad_image="skip"``);
    file_digests: SHA-256 of each file's bytes as read when the data was loaded (None
    for in-memory images); identical: byte-identical files under different names
    (``identical_images``; empty when there are none); groups: (N,) str group of each
    image (centre, scanner, staining protocol) or None; pair_ids: (N,) str, images of
    one pair_id show one tissue in different groups ("" = no pair), or None
    (robustpath.data.groups); mpp: microns per pixel of the
    native images as (smallest, largest) when the data states it (a manifest ``mpp``
    column), else None.
    """

    name: str
    classes: tuple[str, ...]
    sample_ids: tuple[str, ...]
    labels: np.ndarray
    splits: np.ndarray
    paths: tuple[str | None, ...]
    native_size: tuple[int, int]
    reader: object
    skipped: tuple[tuple[str, str], ...] = ()
    file_digests: tuple[bytes, ...] | None = None
    identical: dict = field(default_factory=dict)
    groups: np.ndarray | None = None
    pair_ids: np.ndarray | None = None
    mpp: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for array in (self.labels, self.splits, self.groups, self.pair_ids):
            if array is not None:
                array.setflags(write=False)

    def group_digest_text(self, index: int) -> str:
        """The image's group and pair id for content digests ('' without groups: digests stay as before)."""
        if self.groups is None:
            return ""
        pair = self.pair_ids[index] if self.pair_ids is not None else ""
        return f"group\0{self.groups[index]}\0{pair}\0"

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

    def notes(self, shown: int = 3) -> list[str]:
        """What a user should know about the files: those left out, and byte-identical copies."""
        notes = []
        if self.skipped:
            names = ", ".join(f"'{Path(path).name}'" for path, _ in self.skipped[:shown])
            more = f" and {len(self.skipped) - shown} more" if len(self.skipped) > shown else ""
            notes.append(f"{len(self.skipped)} image file(s) could not be read and were left out: {names}{more} "
                         f"(first reason: {self.skipped[0][1]}); run.json lists them all (dataset.skipped_images).")
        if self.identical:
            first, second = (Path(path).name for path in self.identical["example"])
            notes.append(f"{self.identical['pairs']} image file(s) are byte-identical copies of others, e.g. '{first}' "
                         f"and '{second}'; {self.identical['across_splits']} of them sit in the other split "
                         "(a test image also in training inflates the results).")
        return notes

    def content_digest(self) -> str:
        """SHA-256 over ids, labels, splits and image bytes: changes when any of them does."""
        digest = hashlib.sha256()
        for index, sample_id in enumerate(self.sample_ids):
            digest.update(f"{sample_id}\0{self.classes[self.labels[index]]}\0{self.splits[index]}\0".encode())
            digest.update(self.group_digest_text(index).encode())
            digest.update(hashlib.sha256(self.reader.digest_bytes(index)).digest())
        return digest.hexdigest()


def validate_images(paths: list[str], on_bad_image: str) -> tuple[list[int], list[tuple[int, int]], list[tuple[str, str]], list[bytes]]:
    """Read and decode every file once: (kept positions, their (H, W), skipped (path, reason), their SHA-256)."""
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise UsageError(unknown_name_message("bad-image policy", on_bad_image, BAD_IMAGE_POLICIES, plural="policies"))
    kept, sizes, skipped, digests = [], [], [], []
    for position, path in enumerate(paths):
        try:
            size, data = check_image_file(Path(path))
        except DataError as exc:
            if on_bad_image == "fail":
                raise DataError(f"{exc} (--on-bad-image skip leaves such files out)") from None
            skipped.append((path, str(exc)))
            continue
        kept.append(position)
        sizes.append(size)
        digests.append(hashlib.sha256(data).digest())
    return kept, sizes, skipped, digests


def check_distinct_files(paths: list[str], where: str) -> None:
    """Refuse two paths that are one file (symbolic or hard links): it would be one image counted twice,
    or a test image leaking into the training split (the retrieval gallery, the probe)."""
    seen: dict[tuple[int, int], str] = {}
    for path in paths:
        try:
            status = os.stat(path)  # follows links; a dangling link is skipped later as undecodable
        except OSError:
            continue
        identity = (status.st_dev, status.st_ino)
        if identity in seen:
            raise DataError(
                f"{where}: '{seen[identity]}' and '{path}' are the same file ('{Path(path).resolve()}'), linked "
                "twice; one image would count twice or leak from one split into the other: remove one of them"
            )
        seen[identity] = path


def identical_images(paths: list[str], digests: list[bytes], splits: np.ndarray) -> dict:
    """Byte-identical files of different paths: {"pairs": count, "across_splits": count, "example": [a, b]}."""
    first: dict[bytes, int] = {}
    pairs, across, example = 0, 0, None
    for index, digest in enumerate(digests):
        if digest in first:
            pairs += 1
            across += int(splits[first[digest]] != splits[index])
            example = example or [paths[first[digest]], paths[index]]
        else:
            first[digest] = index
    return {"pairs": pairs, "across_splits": across, "example": example} if pairs else {}


def build_file_dataset(
    name: str, root: Path, paths: list[str], labels: list[str], splits: np.ndarray | None, *,
    where: str, test_fraction: float, seed: int, on_bad_image: str,
    groups: list[str] | None = None, pair_ids: list[str] | None = None,
) -> Dataset:
    """Assemble a Dataset from absolute file paths and string labels.

    Two paths of one file (links) are refused; undecodable files (dangling links
    included) are skipped or fatal (``on_bad_image``); ``splits`` None means a seeded
    stratified split of what remains.  Images of another size than the most common
    one are resized to it when read.  ``groups`` / ``pair_ids`` (one per path, or
    None): see robustpath.data.groups; with pairs, the seeded split keeps each pair
    in one split.
    """
    check_distinct_files(paths, where)
    kept, sizes, skipped, digests = validate_images(paths, on_bad_image)
    if not kept:
        raise DataError(f"{where}: none of the {len(paths)} images can be decoded, e.g. {skipped[0][1]}")
    paths = [str(Path(paths[i]).resolve()) for i in kept]
    labels = [labels[i] for i in kept]
    group_array, pair_array = _kept_groups(groups, pair_ids, kept, labels, paths, where)
    check_class_sizes(labels, where)
    classes = tuple(sorted(set(labels)))
    if len(classes) < 2:
        raise DataError(f"{where} has one class ('{classes[0]}'); at least 2 are needed")
    index = {c: k for k, c in enumerate(classes)}
    label_array = np.array([index[label] for label in labels], dtype=np.int64)
    split_array = _split_of(label_array, classes, pair_array, splits, kept, where, test_fraction=test_fraction,
                            seed=seed)
    size = Counter(sizes).most_common(1)[0][0]
    return Dataset(
        name=name,
        classes=classes,
        sample_ids=tuple(_relative_id(Path(p), root) for p in paths),
        labels=label_array,
        splits=split_array,
        paths=tuple(paths),
        native_size=size,
        reader=FileReader(tuple(paths), size),
        skipped=tuple(skipped),
        file_digests=tuple(digests),
        identical=identical_images(paths, digests, split_array),
        groups=group_array,
        pair_ids=pair_array,
    )


def _kept_groups(groups, pair_ids, kept: list[int], labels: list[str], paths: list[str],
                 where: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The group and pair-id arrays of the kept images (checked, robustpath.data.groups), or None."""
    from robustpath.data.groups import check_groups

    if groups is None:
        return None, None
    groups = [groups[i] for i in kept]
    pair_ids = [pair_ids[i] for i in kept] if pair_ids is not None else None
    check_groups(groups, pair_ids, labels, paths, where)
    return np.array(groups, dtype=str), (np.array(pair_ids, dtype=str) if pair_ids is not None else None)


def _split_of(label_array: np.ndarray, classes: tuple[str, ...], pair_array, splits, kept: list[int], where: str, *,
              test_fraction: float, seed: int) -> np.ndarray:
    """The given splits of the kept images (every class in both), or a seeded split keeping pairs together."""
    from robustpath.data.groups import check_pair_splits, grouped_split

    if splits is None:
        return grouped_split(label_array, pair_array, test_fraction, seed)
    split_array = np.asarray(splits, dtype="<U5")[kept]
    if pair_array is not None:
        check_pair_splits(pair_array, split_array, where)
    for split in ("train", "test"):
        present = set(label_array[split_array == split].tolist())
        if len(present) < len(classes):
            missing = classes[min(set(range(len(classes))) - present)]
            raise DataError(f"{where}: class '{missing}' has no {split} images")
    return split_array


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
