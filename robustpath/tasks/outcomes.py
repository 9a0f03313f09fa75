"""Per-sample outcomes of a task on one variant, and their metrics with paired bootstrap.

A task turns one variant's test embeddings into :class:`Outcomes` (per image:
true label, predicted class, class probabilities, and per-sample values such as
hit@k or AP@k).  Every metric is computed from outcomes for any set of
resampling indices, so the point estimate, the bootstrap interval and the
paired drop from clean share one implementation.  Outcomes are kept per
variant (``outcomes.npz`` in the run folder) so that a report can be recomputed
or extended without re-embedding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from robustpath.tasks.metrics import (
    BOOTSTRAP_RESAMPLES,
    CLASSIFICATION_METRICS,
    MetricValue,
    bootstrap_index_blocks,
    confusion_matrices,
    expected_calibration_error,
    paired_auroc,
    paired_drop_interval,
    paired_drop_p_value,
    percentile_interval,
)
from robustpath.util.shared_work import map_blocks

CALIBRATION = "expected_calibration_error"
FLIP_RATE = "flip_rate"
# metric → the per-sample values whose median it is (the other per-sample metrics are means)
MEDIANS = {"identity_median_rank": "identity_rank"}
# metric → the per-sample score whose AUROC, corrupted (positive) against clean (negative), it is
CLEAN_SEPARATIONS = {"ood_auroc": "ood_score"}


@dataclass(frozen=True)
class Outcomes:
    """What a task produced for each of N test images of one variant.

    labels: (N,) int64 true classes, or None for label-free tasks;
    predictions: (N,) int64 predicted classes, or None;
    probabilities: (N, K) float64 class probabilities (rows sum to 1), or None;
    per_sample: metric name → (N,) float64 values whose mean is that metric
    (e.g. top-k hits, AP@k, cosine similarity to the clean embedding);
    neighbours: (N, k) int64 gallery rows (positions in the training split),
    nearest first, for retrieval, or None;
    n_classes: K.
    """

    n_classes: int = 0
    labels: np.ndarray | None = None
    predictions: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    per_sample: Mapping[str, np.ndarray] = field(default_factory=dict)
    neighbours: np.ndarray | None = None

    @property
    def n(self) -> int:
        for array in (self.labels, self.predictions, *self.per_sample.values()):
            if array is not None:
                return len(array)
        return 0 if self.probabilities is None else len(self.probabilities)


def metric_replicates(
    outcomes: Outcomes, names: tuple[str, ...], indices: np.ndarray, clean: Outcomes | None = None
) -> dict[str, np.ndarray]:
    """Each metric in ``names`` for each row of ``indices`` (R, m) → name → (R,) float.

    Supported names: the classification metrics of robustpath.tasks.metrics (need labels
    and predictions), ``expected_calibration_error`` (labels and probabilities),
    ``flip_rate`` (fraction of images whose predicted class differs from the clean
    prediction: needs ``clean``; NaN without it), any key of ``per_sample`` (the
    mean), a key of MEDIANS (the median of its per-sample values) and a key of
    CLEAN_SEPARATIONS (robustpath.tasks.metrics.paired_auroc of this variant's per-sample
    score against the clean one, the same resampled images on both sides: needs
    ``clean``; NaN without it).
    """
    indices = np.atleast_2d(indices)
    results: dict[str, np.ndarray] = {}
    wanted_classification = [name for name in names if name in CLASSIFICATION_METRICS and name not in outcomes.per_sample]
    if wanted_classification:
        conf = confusion_matrices(outcomes.labels, outcomes.predictions, outcomes.n_classes, indices)
        with np.errstate(invalid="ignore", divide="ignore"):
            for name in wanted_classification:
                results[name] = CLASSIFICATION_METRICS[name](conf)
    for name in names:
        if name not in results:
            results[name] = _replicates_of(name, outcomes, indices, clean)
    return results


def _replicates_of(name: str, outcomes: Outcomes, indices: np.ndarray, clean: Outcomes | None) -> np.ndarray:
    """One non-confusion-matrix metric of metric_replicates for each row of ``indices`` (R, m) → (R,)."""
    if name in outcomes.per_sample:
        return resampled_means(outcomes.per_sample[name], indices)
    if name in MEDIANS:
        return np.median(np.asarray(outcomes.per_sample[MEDIANS[name]], float)[indices], axis=1)
    if name in CLEAN_SEPARATIONS:
        score = CLEAN_SEPARATIONS[name]
        if clean is None or score not in clean.per_sample:
            return np.full(indices.shape[0], np.nan)
        return paired_auroc(clean.per_sample[score], outcomes.per_sample[score], indices)
    if name == CALIBRATION:
        probabilities = outcomes.probabilities
        correct = probabilities.argmax(axis=1) == outcomes.labels
        return expected_calibration_error(probabilities.max(axis=1), correct, indices)
    if name == FLIP_RATE:
        if clean is None or clean.predictions is None:
            return np.full(indices.shape[0], np.nan)
        return resampled_means(outcomes.predictions != clean.predictions, indices)
    raise KeyError(f"metric '{name}' cannot be computed from these outcomes")


def resampled_means(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """(n,) per-sample values, (R, m) int indices → (R,) float64 means of values[indices[r]].

    The same bits as ``np.asarray(values, float)[indices].mean(axis=1)``: where every value
    is 0 or 1 (hits, flips) the sums are exact integers in any order, so they are counted
    on one-byte flags instead of summed from gathered float64 values.
    """
    values = np.asarray(values)
    binary = values if values.dtype == bool else None
    if binary is None and values.dtype.kind in "biuf":
        flags = values == 1
        if np.count_nonzero(flags) + np.count_nonzero(values == 0) == len(values):
            binary = flags
    if binary is None:
        return np.asarray(values, float)[indices].mean(axis=1)
    return np.count_nonzero(binary[indices], axis=1) / indices.shape[1]


class PairedScorer:
    """Scores outcomes with bootstrap intervals and paired drops from the clean outcomes.

    The clean replicates are computed once; every variant is resampled with the
    same indices (bootstrap_indices is fixed by (seed, n, resamples)), image by
    image, in blocks of resamples so that memory stays bounded for large B and n.
    """

    def __init__(
        self, names: tuple[str, ...], seed: int, clean: Outcomes | None = None, resamples: int = BOOTSTRAP_RESAMPLES
    ) -> None:
        self.names = tuple(names)
        self.seed = seed
        self.resamples = int(resamples)
        self.clean = clean
        self._clean_replicates = None
        if clean is not None:
            self._clean_replicates = self._replicates(clean)

    def _replicates(self, outcomes: Outcomes) -> dict[str, np.ndarray]:
        """name → (resamples,) metric values over the bootstrap resamples of ``outcomes``."""
        blocks = map_blocks(  # resample blocks drawn in order; an idle scoring thread may compute some
            lambda indices: metric_replicates(outcomes, self.names, indices, self.clean),
            bootstrap_index_blocks(outcomes.n, self.seed, self.resamples),
        )
        return {name: np.concatenate([block[name] for block in blocks]) for name in self.names}

    def score(self, outcomes: Outcomes) -> dict[str, MetricValue]:
        n = outcomes.n
        point = metric_replicates(outcomes, self.names, np.arange(n)[None, :], self.clean)
        replicates = self._replicates(outcomes)
        paired = self._clean_replicates is not None and self.clean.n == n
        values = {}
        for name in self.names:
            low, high = percentile_interval(replicates[name])
            drop_low = drop_high = p_value = float("nan")
            if paired:
                drop_low, drop_high = paired_drop_interval(replicates[name], self._clean_replicates[name])
                p_value = paired_drop_p_value(replicates[name], self._clean_replicates[name])
            values[name] = MetricValue(float(point[name][0]), low, high, int(n), drop_low, drop_high, p_value)
        return values


def _flatten(prefix: str, outcomes: Outcomes) -> dict[str, np.ndarray]:
    arrays = {f"{prefix}|n_classes": np.array(outcomes.n_classes)}
    for name in ("labels", "predictions", "probabilities", "neighbours"):
        value = getattr(outcomes, name)
        if value is not None:
            arrays[f"{prefix}|{name}"] = np.asarray(value)
    for name, value in outcomes.per_sample.items():
        arrays[f"{prefix}|per_sample|{name}"] = np.asarray(value)
    return arrays


def outcomes_to_arrays(outcomes: Mapping[tuple[str, str], Outcomes]) -> dict[str, np.ndarray]:
    """(task key, variant key) → Outcomes  ⇒  flat "task|variant|field" → array (for np.savez)."""
    arrays: dict[str, np.ndarray] = {}
    for (task_key, variant_key), item in outcomes.items():
        arrays.update(_flatten(f"{task_key}|{variant_key}", item))
    return arrays


def save_outcomes(path: Path, outcomes: Mapping[tuple[str, str], Outcomes]) -> Path:
    """Write outcomes atomically as a compressed .npz (plain arrays, no pickles)."""
    import io

    from robustpath.util.atomic import write_bytes_atomic

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **outcomes_to_arrays(outcomes))
    return write_bytes_atomic(Path(path), buffer.getvalue())


def load_outcomes(path: Path) -> dict[tuple[str, str], Outcomes]:
    """Read what save_outcomes wrote (allow_pickle=False)."""
    fields: dict[tuple[str, str], dict] = {}
    with np.load(Path(path), allow_pickle=False) as data:
        for key in data.files:
            task_key, variant_key, name, *rest = key.split("|")
            entry = fields.setdefault((task_key, variant_key), {"per_sample": {}})
            if name == "per_sample":
                entry["per_sample"][rest[0]] = data[key]
            elif name == "n_classes":
                entry["n_classes"] = int(data[key])
            else:
                entry[name] = data[key]
    return {key: Outcomes(**entry) for key, entry in fields.items()}
