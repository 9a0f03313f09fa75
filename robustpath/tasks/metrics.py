"""Metrics on per-sample outcomes, with seeded percentile-bootstrap intervals.

Every metric is a function of resampling indices so that the point estimate
(indices = arange(n)) and every bootstrap replicate share one implementation,
and the same replicates (same seed, same n) pair the clean and corrupted sets
image by image.  Classification metrics follow scikit-learn's definitions:

- accuracy: fraction of correct predictions;
- balanced_accuracy: mean recall over the classes present in ``y_true``;
- macro_f1: unweighted mean of per-class F1 over the classes present in
  ``y_true`` or ``y_pred`` (F1 = 2TP / (2TP + FP + FN));
- weighted_f1: per-class F1 averaged with the true-class supports as weights;
- expected_calibration_error (lower is better): the confidence (highest class
  probability) of each sample falls in one of 15 equal-width bins
  ((b−1)/15, b/15]; ECE = Σ_b (|B_b| / n) · |accuracy(B_b) − mean confidence(B_b)|
  (Guo et al., 2017), i.e. Σ_b |Σ_{i∈B_b} correct_i − Σ_{i∈B_b} confidence_i| / n.

Intervals are 95% percentile intervals over B bootstrap resamples of the test
images (B = 1,000 by default, ``--bootstrap``; the first B rows of a larger B are
the same resamples).  A drop from clean is tested with a *paired* bootstrap: each
replicate resamples the same images for the clean and the corrupted set, giving
B differences d_b = corrupted_b − clean_b, with

- drop_ci_low / drop_ci_high: their 95% percentile interval;
- drop_p_value: the two-sided bootstrap p-value of "no change",
  p = min(1, 2 · (1 + min(#{d_b ≤ 0}, #{d_b ≥ 0})) / (B + 1))
  (differences of exactly 0 count on both sides; the +1 keeps p above 0);
- significant: p < 0.05, i.e. fewer than 0.025 · (B + 1) − 1 differences on the
  far side of 0: at most 24 of B = 1,000 (249 of 10,000).  This is "the 95%
  interval excludes 0" counted in replicates: for these B the two agree except
  when exactly one more difference (25; 250) lies on the far side and the
  interpolated 2.5th percentile still falls beyond 0; the p-value then says
  "not significant" (it is the stricter of the two).

Replicates are computed in blocks of resamples (bounded memory for large B and
n); the indices come from one seeded stream, so blocks change nothing.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from robustpath.spec.run_spec import BOOTSTRAP_RESAMPLES

CONFIDENCE = 0.95
SIGNIFICANCE = 1.0 - CONFIDENCE
_BLOCK_ELEMENTS = 1 << 22  # resampled indices held at once (rows × n)
_CACHED_BYTES = 32 << 20  # an index matrix up to this size (uint16 / uint32) is kept for the next task and variant


CALIBRATION_BINS = 15


@dataclass(frozen=True)
class MetricValue:
    """A point estimate with its 95% interval over n samples.

    drop_ci_low / drop_ci_high: 95% paired-bootstrap interval of (value − clean
    value); drop_p_value: its two-sided bootstrap p-value; NaN when there is no
    clean reference.
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    drop_ci_low: float = float("nan")
    drop_ci_high: float = float("nan")
    drop_p_value: float = float("nan")


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, indices: np.ndarray) -> np.ndarray:
    """Confusion counts for each row of ``indices``.

    y_true, y_pred: (n,) int in [0, n_classes); indices: (R, m) int into them.
    Returns (R, n_classes, n_classes) int64, rows = true class, columns = predicted.
    """
    indices = np.atleast_2d(indices)
    replicates = indices.shape[0]
    cells = (np.asarray(y_true) * n_classes + np.asarray(y_pred))[indices]  # one gather per resample
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
    """(resamples, n) int64 indices drawn with replacement; fixed for (n, seed), a larger
    ``resamples`` extends the same rows."""
    rng = np.random.default_rng([seed, n])
    return rng.integers(0, n, size=(resamples, n))


def _compact_dtype(n: int):
    """The smallest unsigned integer type that holds the indices 0..n-1 (uint16 or uint32)."""
    return np.uint16 if n <= 1 << 16 else np.uint32


_SHARED_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _shared_indices(n: int, seed: int, resamples: int, rows: int) -> np.ndarray:
    """bootstrap_indices(n, seed, resamples) in a compact integer type, drawn ``rows`` rows at a time
    (one seeded stream: the same rows), read-only."""
    indices = np.empty((resamples, n), dtype=_compact_dtype(n))
    rng = np.random.default_rng([seed, n])
    for start in range(0, resamples, rows):
        indices[start : start + rows] = rng.integers(0, n, size=(min(rows, resamples - start), n))
    indices.flags.writeable = False
    return indices


def bootstrap_index_blocks(n: int, seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> Iterator[np.ndarray]:
    """The rows of bootstrap_indices(n, seed, resamples) in consecutive int64 blocks of ≤ 4M indices.

    The matrix is kept in a compact integer type (2 bytes per index up to n = 65,536, else 4)
    for the next call with the same arguments (the next task or variant) when it takes at most
    32 MiB (n ≤ 16,777 at B = 1,000); larger ones are drawn block by block from the same seeded
    stream (identical rows).
    """
    rows = max(1, _BLOCK_ELEMENTS // max(n, 1))
    if n * resamples * np.dtype(_compact_dtype(n)).itemsize <= _CACHED_BYTES:
        with _SHARED_LOCK:  # variants scored in two threads: one draw, not two racing ones
            indices = _shared_indices(n, seed, resamples, rows)
        for start in range(0, resamples, rows):
            yield indices[start : start + rows].astype(np.int64)
        return
    rng = np.random.default_rng([seed, n])
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def percentile_interval(replicates: np.ndarray) -> tuple[float, float]:
    """(R,) bootstrap replicates → the 95% percentile interval (NaN replicates ignored)."""
    replicates = np.asarray(replicates, dtype=float)
    if not np.isfinite(replicates).any():
        return float("nan"), float("nan")
    tail = (1.0 - CONFIDENCE) / 2.0 * 100.0
    low, high = np.nanpercentile(replicates, [tail, 100.0 - tail])
    return float(low), float(high)


def _interval(point: float, replicates: np.ndarray, n: int) -> MetricValue:
    low, high = percentile_interval(replicates)
    return MetricValue(float(point), low, high, int(n))


def calibration_bins(confidence: np.ndarray, bins: int = CALIBRATION_BINS) -> np.ndarray:
    """(n,) confidences in [0, 1] → (n,) bin index b−1 for the bin ((b−1)/bins, b/bins]."""
    return np.clip(np.ceil(np.asarray(confidence, float) * bins).astype(np.int64) - 1, 0, bins - 1)


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, indices: np.ndarray, bins: int = CALIBRATION_BINS
) -> np.ndarray:
    """ECE for each row of ``indices``.

    confidence: (n,) float in [0, 1], the highest predicted class probability;
    correct: (n,) bool, whether that class is the true one; indices: (R, m) int.
    Returns (R,) float in [0, 1].
    """
    indices = np.atleast_2d(indices)
    replicates, m = indices.shape
    flat = (calibration_bins(confidence, bins)[indices] + np.arange(replicates)[:, None] * bins).ravel()
    size = replicates * bins
    confidence_sums = np.bincount(flat, weights=np.asarray(confidence, float)[indices].ravel(), minlength=size)
    correct_sums = np.bincount(flat, weights=np.asarray(correct, float)[indices].ravel(), minlength=size)
    gaps = np.abs(correct_sums - confidence_sums).reshape(replicates, bins)
    return gaps.sum(axis=1) / m


def paired_drop_interval(variant_replicates: np.ndarray, clean_replicates: np.ndarray) -> tuple[float, float]:
    """95% interval of (variant − clean) over bootstrap replicates drawn with the same indices."""
    return percentile_interval(np.asarray(variant_replicates, float) - np.asarray(clean_replicates, float))


def paired_drop_p_value(variant_replicates: np.ndarray, clean_replicates: np.ndarray) -> float:
    """Two-sided bootstrap p-value of no change from paired replicates (NaN ones ignored):
    min(1, 2 · (1 + min(#{d ≤ 0}, #{d ≥ 0})) / (B + 1)) with d = variant − clean; NaN without any."""
    differences = np.asarray(variant_replicates, float) - np.asarray(clean_replicates, float)
    differences = differences[np.isfinite(differences)]
    if not len(differences):
        return float("nan")
    far_side = min(np.count_nonzero(differences <= 0), np.count_nonzero(differences >= 0))
    return float(min(1.0, 2.0 * (1 + far_side) / (len(differences) + 1)))


def drop_is_significant(drop_p_value: float) -> bool:
    """True when the paired bootstrap p-value is below 0.05 (see the module docstring); False for NaN."""
    return bool(drop_p_value < SIGNIFICANCE)


def paired_auroc(negatives: np.ndarray, positives: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """AUROC of ``positives`` against ``negatives`` for each row of ``indices``, the same images on both sides.

    negatives, positives: (n,) float scores of the same n images in two conditions
    (e.g. clean and corrupted; higher = more likely positive); indices: (R, m) int
    resampling rows.  Row r compares the m positives positives[indices[r]] with the
    m negatives negatives[indices[r]]: AUROC = (#{pairs with positive > negative}
    + ½ #{ties}) / m² (the Mann–Whitney U statistic / m², scikit-learn's
    roc_auc_score for these labels).  Returns (R,) float64 in [0, 1]; exact (counts,
    one division), so the same on every machine.  NaN scores sort above every number.
    """
    negatives = np.asarray(negatives, dtype=np.float64)
    positives = np.asarray(positives, dtype=np.float64)
    indices = np.atleast_2d(indices)
    replicates, m = indices.shape
    n = len(negatives)
    order = np.argsort(negatives, kind="stable")
    ordered = negatives[order]
    below = np.searchsorted(ordered, positives, side="left")  # negatives strictly below each positive
    through = np.searchsorted(ordered, positives, side="right")  # … below or equal
    flat = (indices + np.arange(replicates)[:, None] * n).ravel()
    counts = np.bincount(flat, minlength=replicates * n).reshape(replicates, n).astype(np.float64)
    cumulative = np.zeros((replicates, n + 1))
    np.cumsum(counts[:, order], axis=1, out=cumulative[:, 1:])
    less = cumulative[:, below]
    wins = less + 0.5 * (cumulative[:, through] - less)
    return (counts * wins).sum(axis=1) / float(m * m)


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
