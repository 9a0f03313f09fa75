"""Groups (centre, scanner, staining protocol) and pairs (the same tissue in several groups).

A dataset may name, for every image, the ``group`` it was acquired in and, optionally,
a ``pair_id``: images of one pair show the same tissue in different groups (PLISM:
one tile scanned by several scanners and stained by several protocols).  Rules,
checked here with one-line errors:

- every image has a group when any has one; at least two groups; a group name is
  not empty and does not contain "->" (the results table names ordered pairs of
  groups "group:A->B");
- a pair_id needs groups; within one group a pair_id appears at most once;
  all images of a pair_id have one class (one piece of tissue); an empty pair_id
  means "no pair";
- the images of one pair_id sit in one split: a pair split across train and test
  would let the probe and the retrieval gallery see the test tissue.  Without a
  split from the user, the split is stratified by class *per pair*
  (``grouped_split``); images without a pair are split as usual.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from robustpath.data.split import stratified_split
from robustpath.errors import DataError

PAIR_SEPARATOR = "->"


def check_groups(groups: list[str], pair_ids: list[str] | None, labels: list[str], paths: list[str], where: str) -> None:
    """Validate groups and pair ids of N images (lists in dataset order); DataError names the first problem."""
    for path, group in zip(paths, groups):
        if not group:
            raise DataError(f"{where}: '{path}' has an empty group (every image needs one when any has)")
        if PAIR_SEPARATOR in group:
            raise DataError(f"{where}: group name '{group}' contains '{PAIR_SEPARATOR}', which names group pairs; rename it")
    names = sorted(set(groups))
    if len(names) < 2:
        raise DataError(f"{where}: all images are in group '{names[0]}'; group shifts need at least 2 groups")
    if pair_ids is None:
        return
    seen: dict[tuple[str, str], int] = {}
    label_of: dict[str, str] = {}
    for position, (group, pair, label) in enumerate(zip(groups, pair_ids, labels)):
        if not pair:
            continue
        if (group, pair) in seen:
            raise DataError(f"{where}: pair_id '{pair}' appears twice in group '{group}' "
                            f"('{paths[seen[(group, pair)]]}' and '{paths[position]}'); a pair has one image per group")
        seen[(group, pair)] = position
        if label_of.setdefault(pair, label) != label:
            raise DataError(f"{where}: pair_id '{pair}' has classes '{label_of[pair]}' and '{label}'; "
                            "the images of a pair show one tissue, so one class")


def check_pair_splits(pair_ids: np.ndarray, splits: np.ndarray, where: str) -> None:
    """Every pair_id sits in one split (DataError names the first that does not)."""
    split_of: dict[str, str] = {}
    for pair, split in zip(pair_ids.tolist(), splits.tolist()):
        if pair and split_of.setdefault(pair, split) != split:
            raise DataError(f"{where}: pair_id '{pair}' has images in both train and test; the images of a pair "
                            "must share a split (or leave the split column empty for a split by pair)")


def grouped_split(labels: np.ndarray, pair_ids: np.ndarray | None, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded stratified train/test split that keeps each pair in one split → (N,) '<U5'.

    Pairs (and images without a pair, each on its own) are the units; they are split
    with ``stratified_split`` on their class, and every image takes its unit's split.
    Without pair ids this is ``stratified_split(labels, test_fraction, seed)``.
    """
    if pair_ids is None or not any(pair_ids):
        return stratified_split(labels, test_fraction, seed)
    units: dict[str, int] = {}
    unit_of = np.empty(len(labels), dtype=np.int64)
    unit_labels: list[int] = []
    for index, pair in enumerate(pair_ids.tolist()):
        key = f"pair\0{pair}" if pair else f"image\0{index}"
        if key not in units:
            units[key] = len(units)
            unit_labels.append(int(labels[index]))
        unit_of[index] = units[key]
    unit_splits = stratified_split(np.array(unit_labels), test_fraction, seed)
    return unit_splits[unit_of]


def describe_groups(groups: np.ndarray, pair_ids: np.ndarray | None, splits: np.ndarray) -> dict:
    """run.json facts: images per group and split, and how many pairs span how many groups."""
    facts = {
        "groups": {name: {split: int(((groups == name) & (splits == split)).sum()) for split in ("train", "test")}
                   for name in sorted(set(groups.tolist()))},
    }
    if pair_ids is not None:
        sizes = Counter(Counter(p for p in pair_ids.tolist() if p).values())
        facts["pairs_by_groups_present"] = {str(k): int(v) for k, v in sorted(sizes.items())}
    return facts
