"""Metrics on per-sample outcomes, with seeded percentile-bootstrap intervals.

Every metric is a function of resampling indices so that the point estimate
(indices = arange(n)) and every bootstrap replicate share one implementation,
and the same replicates (same seed, same n) pair the clean and corrupted sets
image by image.  Classification metrics follow scikit-learn's definitions:

- accuracy: fraction of correct predictions;
- balanced_accuracy: mean recall over the classes present in ``y_true``;
- macro_f1: unweighted mean of per-class F1 over the classes present in
  ``y_true`` or ``y_pred`` (F1 = 2TP / (2TP + FP + FN));
- weighted_f1: per-class F1 averaged with the true-class supports as weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class MetricValue:
    value: float
    ci_low: float
    ci_high: float
    n: int


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, indices: np.ndarray) -> np.ndarray:
    """Confusion counts for each row of ``indices``.

    y_true, y_pred: (n,) int in [0, n_classes); indices: (R, m) int into them.
    Returns (R, n_classes, n_classes) int64, rows = true class, columns = predicted.
    """
    indices = np.atleast_2d(indices)
    replicates = indices.shape[0]
    cells = y_true[indices] * n_classes + y_pred[indices]
    flat = cells + (np.arange(replicates)[:, None] * n_classes * n_classes)
    counts = np.bincount(flat.ravel(), minlength=replicates * n_classes * n_classes)
    return counts.reshape(replicates, n_classes, n_classes)


def accuracy_from_confusion(conf: np.ndarray) -> np.ndarray:
    """conf: (R, K, K) → (R,) accuracy."""
    return np.trace(conf, axis1=1, axis2=2) / conf.sum(axis=(1, 2))


def balanced_accuracy_from_confusion(conf: np.ndarray) -> np.ndarray:
    """conf: (R, K, K) → (R,) mean recall over classes present in the truth."""
    support = conf.sum(axis=2)
    diagonal = np.diagonal(conf, axis1=1, axis2=2)
    present = support > 0
    recall = np.divide(diagonal, support, out=np.zeros(diagonal.shape, float), where=present)
    return recall.sum(axis=1) / present.sum(axis=1)


def macro_f1_from_confusion(conf: np.ndarray) -> np.ndarray:
    """conf: (R, K, K) → (R,) macro F1 over classes seen in truth or prediction."""
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(float)
    denominator = conf.sum(axis=2) + conf.sum(axis=1)  # 2TP + FN + FP
    present = denominator > 0
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape, float), where=present)
    return f1.sum(axis=1) / present.sum(axis=1)


def weighted_f1_from_confusion(conf: np.ndarray) -> np.ndarray:
    """conf: (R, K, K) → (R,) per-class F1 averaged with weights = true-class support."""
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(float)
    support = conf.sum(axis=2)
    denominator = support + conf.sum(axis=1)
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape, float), where=denominator > 0)
    return (f1 * support).sum(axis=1) / support.sum(axis=1)


CLASSIFICATION_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "accuracy": accuracy_from_confusion,
    "balanced_accuracy": balanced_accuracy_from_confusion,
    "macro_f1": macro_f1_from_confusion,
    "weighted_f1": weighted_f1_from_confusion,
}


def bootstrap_indices(n: int, seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """(resamples, n) indices drawn with replacement; fixed for (n, seed)."""
    rng = np.random.default_rng([seed, n])
    return rng.integers(0, n, size=(resamples, n))


def _interval(point: float, replicates: np.ndarray, n: int) -> MetricValue:
    tail = (1.0 - CONFIDENCE) / 2.0 * 100.0
    low, high = np.nanpercentile(replicates, [tail, 100.0 - tail])
    return MetricValue(float(point), float(low), float(high), int(n))


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, *, seed: int
) -> dict[str, MetricValue]:
    """Accuracy, balanced accuracy, macro and weighted F1 with 95% bootstrap intervals."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = len(y_true)
    full = confusion_matrices(y_true, y_pred, n_classes, np.arange(n)[None, :])
    boot = confusion_matrices(y_true, y_pred, n_classes, bootstrap_indices(n, seed))
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            name: _interval(fn(full)[0], fn(boot), n) for name, fn in CLASSIFICATION_METRICS.items()
        }


def mean_metric(values: np.ndarray, *, seed: int) -> MetricValue:
    """Mean of per-sample values (e.g. hit@k, AP@k) with a 95% bootstrap interval."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    replicates = values[bootstrap_indices(n, seed)].mean(axis=1)
    return _interval(values.mean(), replicates, n)
