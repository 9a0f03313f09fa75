"""Seeded stratified train/test split."""
from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, test_fraction: float = 0.3, seed: int = 0) -> np.ndarray:
    """Assign 'train' or 'test' to each sample, class by class.

    Each class with n ≥ 2 samples puts round(n · test_fraction) of them, clipped
    to [1, n − 1], in the test split; a class with one sample stays in train.
    Deterministic for (labels, test_fraction, seed).  Returns (N,) '<U5' array.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    labels = np.asarray(labels)
    splits = np.full(len(labels), "train", dtype="<U5")
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        n_test = int(np.clip(round(len(members) * test_fraction), 1, len(members) - 1))
        splits[rng.permutation(members)[:n_test]] = "test"
    return splits
