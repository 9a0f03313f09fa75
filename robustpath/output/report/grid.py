"""Shape the tidy table into corruption × severity grids shared by every renderer."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from robustpath.results.table import PRIMARY_METRIC, main_rows
from robustpath.results.robustness import condition_label

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["PRIMARY_METRIC", "GridCell", "MetricGrid", "build_grids", "mean_over_severities", "row_label"]


@dataclass(frozen=True)
class GridCell:
    value: float
    drop: float
    ci_low: float
    ci_high: float
    significant: bool = False  # drop_significant: paired bootstrap p-value of the drop below 0.05


@dataclass(frozen=True)
class MetricGrid:
    """One task/metric: clean value, severities, and rows (label → severity → cell)."""

    model: str
    dataset: str
    task: str
    metric: str
    higher_is_better: bool
    clean: GridCell
    severities: tuple[int, ...]
    rows: dict[str, dict[int, GridCell]]


def row_label(corruption: str, stage: str) -> str:
    return condition_label(corruption, stage)


def build_grids(table: "pd.DataFrame", metrics: str = "primary") -> list[MetricGrid]:
    """Grids per (run, model, dataset, task, metric) of the main evaluation (the probe on all
    training images); ``metrics`` "primary" or "all"."""
    grids = []
    table = main_rows(table)
    keys = table[["run_id", "model", "dataset", "task", "metric"]].drop_duplicates().itertuples(index=False)
    for run_id, model, dataset, task, metric in keys:
        if metrics == "primary" and PRIMARY_METRIC.get(task, metric) != metric:
            continue
        part = table[
            (table.run_id == run_id) & (table.model == model) & (table.dataset == dataset)
            & (table.task == task) & (table.metric == metric)
        ]
        clean_rows = part[part.corruption == "none"]
        if clean_rows.empty:
            continue
        clean = clean_rows.iloc[0]
        corrupted = part[part.corruption != "none"]
        rows: dict[str, dict[int, GridCell]] = {}
        for record in corrupted.itertuples(index=False):
            label = row_label(record.corruption, record.stage)
            rows.setdefault(label, {})[int(record.severity)] = GridCell(
                record.value, record.drop_from_clean, record.ci_low, record.ci_high,
                bool(getattr(record, "drop_significant", False)),
            )
        grids.append(
            MetricGrid(
                model, dataset, task, metric, bool(clean.higher_is_better),
                GridCell(clean.value, 0.0, clean.ci_low, clean.ci_high),
                tuple(sorted(int(s) for s in corrupted.severity.unique())),
                rows,
            )
        )
    return grids


def mean_over_severities(cells: dict[int, GridCell]) -> float:
    return sum(cell.value for cell in cells.values()) / len(cells)


def cell_text(cell: GridCell) -> str:
    """'0.812 (-0.041*)': value, drop from clean, * when the paired drop is significant.

    Three decimals, or as many as the drop needs to show its first two significant
    digits when it would round to ±0.000 ('0.99979 (-0.00021*)'; beyond 6 decimals the
    drop in scientific notation, '1.000000 (-3.0e-09*)'): a drop never reads as zero.
    """
    star = "*" if cell.significant else ""
    if cell.drop == 0 or abs(cell.drop) >= 0.0005:
        return f"{cell.value:.3f} ({cell.drop:+.3f}{star})"
    decimals = 1 - math.floor(math.log10(abs(cell.drop)))
    if decimals > 6:
        return f"{cell.value:.6f} ({cell.drop:+.1e}{star})"
    return f"{cell.value:.{decimals}f} ({cell.drop:+.{decimals}f}{star})"


def grid_title(grid: MetricGrid, with_model: bool) -> str:
    prefix = f"{grid.model} · {grid.dataset} · " if with_model else ""
    return f"{prefix}{grid.task} · {grid.metric}"


def cell_legend(higher_is_better: bool) -> str:
    better = "higher" if higher_is_better else "lower"
    return f"cells: value (drop from clean; * = paired bootstrap p < 0.05); {better} is better"
