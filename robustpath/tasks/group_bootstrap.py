"""Bootstrap over resampling units for measures that span several groups.

When the images of one pair (one tissue in several groups) enter several cells of a
table (the ordered group pairs A->B), resampling images independently would break
the pairing.  The unit of resampling is therefore the pair (an image without a
pair is a unit of its own): each bootstrap replicate draws U units with
replacement (``robustpath.metrics.bootstrap_indices(U, seed)``, the project's
seeded stream) and weights every image by how often its unit was drawn.  A cell's
value is the weighted mean of its images' values, the mean over cells the plain
mean of the cells' values; the point estimate is the same with all weights 1.
Intervals are 95% percentiles of the replicates (NaN replicates, a cell whose units
were all left out, are ignored); a difference of two measures on the same images
(the probe trained on another group vs on the image's own group) is resampled with
the same weights (paired bootstrap: interval and p-value of robustpath.metrics).
"""
from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np

from robustpath.tasks.metrics import (
    MetricValue,
    bootstrap_index_blocks,
    paired_drop_interval,
    paired_drop_p_value,
    percentile_interval,
)

MEAN_CELL = "mean"


def unit_weight_blocks(n_units: int, seed: int, resamples: int) -> Iterator[np.ndarray]:
    """(rows, n_units) float64 draw counts per bootstrap replicate, in blocks (rows sum to n_units)."""
    for indices in bootstrap_index_blocks(n_units, seed, resamples):
        rows = indices.shape[0]
        flat = (indices + np.arange(rows)[:, None] * n_units).ravel()
        yield np.bincount(flat, minlength=rows * n_units).reshape(rows, n_units).astype(np.float64)


def weighted_mean(weights: np.ndarray, units: np.ndarray, values: np.ndarray) -> np.ndarray:
    """weights (R, U), units (S,) int, values (S,) → (R,) Σ w[units] v / Σ w[units] (NaN where Σ w = 0)."""
    chosen = weights[:, units]
    total = chosen.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (chosen * values).sum(axis=1) / total, np.nan)


def compact_units(*unit_arrays: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Unit ids of several arrays → the same arrays renumbered 0..U−1 over the units they hold, and U."""
    joined = np.concatenate([np.asarray(u, dtype=np.int64) for u in unit_arrays]) if unit_arrays else np.zeros(0, np.int64)
    present, inverse = np.unique(joined, return_inverse=True)
    bounds = np.cumsum([0, *[len(u) for u in unit_arrays]])
    return [inverse[bounds[i]:bounds[i + 1]] for i in range(len(unit_arrays))], len(present)


def score_cells(
    cells: Mapping[str, tuple[np.ndarray, np.ndarray]], seed: int, resamples: int,
    reference: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, MetricValue], dict[str, MetricValue]]:
    """Mean of each cell and of the mean over cells, with unit-bootstrap intervals.

    cells: name → (values (S,), units (S,) int unit ids); the units the cells hold are
    resampled.  reference (optional): name → (S,) values on the same images (e.g. the
    within-group probe).  Returns (values, differences): name → MetricValue for every
    cell and for MEAN_CELL (the mean over cells; n = the number of units);
    differences (with ``reference``): value − reference, with the paired interval as
    ci and, in the drop fields, the same interval and the paired p-value.  Cells
    without images are left out.
    """
    cells = {name: cell for name, cell in cells.items() if len(cell[0])}
    names = list(cells)
    if not names:
        return {}, {}
    renumbered, n_units = compact_units(*[cells[n][1] for n in names])
    cells = {n: (np.asarray(cells[n][0], dtype=np.float64), units) for n, units in zip(names, renumbered)}
    replicate_blocks, reference_blocks = [], []
    for weights in unit_weight_blocks(n_units, seed, resamples):
        replicate_blocks.append(np.stack([weighted_mean(weights, cells[n][1], cells[n][0]) for n in names], axis=1))
        if reference is not None:
            reference_blocks.append(np.stack([weighted_mean(weights, cells[n][1], reference[n]) for n in names], axis=1))
    replicates = np.concatenate(replicate_blocks)
    points = np.array([cells[n][0].mean() for n in names])
    sizes = [len(cells[n][0]) for n in names]
    values = _summarise(names, points, replicates, sizes, n_units)
    if reference is None:
        return values, {}
    reference_replicates = np.concatenate(reference_blocks)
    reference_points = np.array([np.mean(reference[n]) for n in names])
    return values, _differences(names, (points, replicates), (reference_points, reference_replicates), sizes, n_units)


def _differences(names: list[str], scored: tuple, reference: tuple, sizes: list[int], n_units: int) -> dict:
    """score_cells' differences: (points (C,), replicates (B, C)) of the cells minus the reference's → name →
    MetricValue for every cell and MEAN_CELL, with the paired interval and p-value."""
    points, replicates = scored
    reference_points, reference_replicates = reference
    differences = {}
    for column, name in enumerate([*names, MEAN_CELL]):
        if column < len(names):
            variant, clean = replicates[:, column], reference_replicates[:, column]
            point, size = points[column] - reference_points[column], sizes[column]
        else:
            variant, clean = _row_means(replicates), _row_means(reference_replicates)
            point, size = float(np.mean(points - reference_points)), n_units
        low, high = paired_drop_interval(variant, clean)
        differences[name] = MetricValue(float(point), low, high, int(size), low, high, paired_drop_p_value(variant, clean))
    return differences


def _row_means(replicates: np.ndarray) -> np.ndarray:
    """(R, C) → (R,) mean over the cells of each replicate (NaN cells ignored)."""
    import warnings

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": a replicate without any cell
        return np.nanmean(replicates, axis=1)


def _summarise(names, points, replicates, sizes, n_units) -> dict[str, MetricValue]:
    values = {}
    for column, name in enumerate(names):
        low, high = percentile_interval(replicates[:, column])
        values[name] = MetricValue(float(points[column]), low, high, int(sizes[column]))
    low, high = percentile_interval(_row_means(replicates))
    values[MEAN_CELL] = MetricValue(float(points.mean()), low, high, int(n_units))
    return values


def ratio_of_sums(numerator: np.ndarray, denominator: np.ndarray, units: np.ndarray,
                  seed: int, resamples: int) -> MetricValue:
    """Σ numerator / Σ denominator over S images (units: (S,) unit ids), with a unit-bootstrap interval (n = S)."""
    (units,), n_units = compact_units(units)
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    blocks = []
    for weights in unit_weight_blocks(n_units, seed, resamples):
        chosen = weights[:, units]
        with np.errstate(invalid="ignore", divide="ignore"):
            blocks.append((chosen * numerator).sum(axis=1) / (chosen * denominator).sum(axis=1))
    total = float(np.sum(denominator))
    point = float(np.sum(numerator)) / total if total > 0 else float("nan")
    low, high = percentile_interval(np.concatenate(blocks))
    return MetricValue(point, low, high, int(len(numerator)))
