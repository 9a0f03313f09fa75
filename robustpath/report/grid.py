"""Shape the tidy table into corruption × severity grids shared by every renderer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PRIMARY_METRIC = {"linear_probe": "accuracy", "retrieval": "top1_accuracy", "zeroshot": "accuracy"}


@dataclass(frozen=True)
class GridCell:
    value: float
    drop: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class MetricGrid:
    """One task/metric: clean value, severities, and rows (label → severity → cell)."""

    model: str
    dataset: str
    task: str
    metric: str
    clean: GridCell
    severities: tuple[int, ...]
    rows: dict[str, dict[int, GridCell]]


def row_label(corruption: str, stage: str) -> str:
    return corruption if stage == "pre" else f"{corruption} ({stage}-resize)"


def build_grids(table: "pd.DataFrame", metrics: str = "primary") -> list[MetricGrid]:
    """Grids per (model, dataset, task, metric); ``metrics`` "primary" or "all"."""
    grids = []
    keys = table[["model", "dataset", "task", "metric"]].drop_duplicates().itertuples(index=False)
    for model, dataset, task, metric in keys:
        if metrics == "primary" and PRIMARY_METRIC.get(task, metric) != metric:
            continue
        part = table[(table.model == model) & (table.dataset == dataset) & (table.task == task) & (table.metric == metric)]
        clean_rows = part[part.corruption == "none"]
        if clean_rows.empty:
            continue
        clean = clean_rows.iloc[0]
        corrupted = part[part.corruption != "none"]
        rows: dict[str, dict[int, GridCell]] = {}
        for record in corrupted.itertuples(index=False):
            label = row_label(record.corruption, record.stage)
            rows.setdefault(label, {})[int(record.severity)] = GridCell(
                record.value, record.drop_from_clean, record.ci_low, record.ci_high
            )
        grids.append(
            MetricGrid(
                model, dataset, task, metric,
                GridCell(clean.value, 0.0, clean.ci_low, clean.ci_high),
                tuple(sorted(int(s) for s in corrupted.severity.unique())),
                rows,
            )
        )
    return grids


def mean_over_severities(cells: dict[int, GridCell]) -> float:
    return sum(cell.value for cell in cells.values()) / len(cells)
