"""Tables of report.html: the results table, its corruption × severity grids and the robustness summaries.

Every number a table shows comes from the results table or a summary table as written
to CSV: a float cell shows 3 decimals and carries the full value in ``data-value``,
formatted as results.csv formats it (``%.12g``, empty for NaN), which the page also
sorts by.  Every table is sortable by clicking a column header.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

from robustpath.output.report.grid import PRIMARY_METRIC, build_grids, cell_legend, cell_text, grid_title, mean_over_severities

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from robustpath.results.robustness import RobustnessSummary

FULL_PRECISION = "%.12g"  # as results.csv (robustpath.output.report.formats.table_csv)
SIGNED = frozenset({"drop_from_clean", "mean_drop", "post_minus_pre", "drop_ci_low", "drop_ci_high"})
RETENTION_BINS = 10  # heat classes heat-0 (≤ 50% retained) … heat-10 (all)


@dataclass(frozen=True)
class Cell:
    """What a table cell shows (``text``), its full-precision value (None: the text is the value) and CSS class."""

    text: str
    value: str | None = None
    css: str = ""
    title: str = ""


@dataclass
class Table:
    """``columns``: (label, numeric); ``source``: the CSV file the rows equal, if any; ``primary``: a grid of
    its task's primary metric (the others are folded away)."""

    id: str
    caption: str
    columns: list[tuple[str, bool]]
    rows: list[list[Cell]] = field(default_factory=list)
    source: str = ""
    note: str = ""
    primary: bool = True


def full_precision(value) -> str:
    """A float as results.csv writes it; '' for NaN."""
    value = float(value)
    return "" if math.isnan(value) else FULL_PRECISION % value


def number_cell(value, signed: bool = False) -> Cell:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return Cell(str(value))
    if math.isnan(number):
        return Cell("—", "")
    return Cell(f"{number:+.3f}" if signed else f"{number:.3f}", FULL_PRECISION % number)


def value_cell(value, is_float: bool, signed: bool = False) -> Cell:
    """A table value: floats as number_cell, everything else as its CSV text."""
    if is_float:
        return number_cell(value, signed)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell("")
    return Cell(str(value))


def frame_table(frame: "pd.DataFrame", columns: Sequence[tuple[str, str]] | None, *, id: str, caption: str,
                source: str = "", note: str = "") -> Table:
    """``frame`` as a Table; ``columns``: (column, label) to show (None: every column, named as in the CSV)."""
    import pandas as pd

    chosen = [(name, label) for name, label in (columns or [(c, c) for c in frame.columns]) if name in frame]
    dtypes = [frame[name].dtype for name, _ in chosen]
    numeric = [pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) for dtype in dtypes]
    floats = [(pd.api.types.is_float_dtype(dtype), name in SIGNED) for (name, _), dtype in zip(chosen, dtypes)]
    table = Table(id, caption, [(label, is_number) for (_, label), is_number in zip(chosen, numeric)], source=source,
                  note=note)
    values = [frame[name].tolist() for name, _ in chosen]
    for row in zip(*values):
        table.rows.append([value_cell(value, *kind) for value, kind in zip(row, floats)])
    return table


def summary_tables(summary: "RobustnessSummary", several: bool) -> list[Table]:
    """Ranking (or summary), the conditions that hurt most, blur stages and data scale, each when it has rows."""
    ranking = frame_table(summary.ranking, [
        ("dataset", "dataset"), ("task", "task"), ("metric", "metric"), ("rank", "rank"), ("model", "model"),
        ("clean_value", "clean"), ("mean_retention", "mean retention"), ("mean_normalised_auc", "normalised AUC"),
        ("mce", "mCE"), ("relative_mce", "relative mCE"), ("worst_condition", "worst condition"),
        ("run_id", "run")], id="ranking", caption="Robustness ranking" if several else "Robustness summary",
        source="robustness_ranking.csv",
        note="Primary metric per task" + ("; ranked by mean normalised AUC within each dataset and task." if several else "."))
    worst = frame_table(summary.worst, [
        ("model", "model"), ("dataset", "dataset"), ("task", "task"), ("metric", "metric"), ("condition", "condition"),
        ("clean_value", "clean"), ("mean_value", "mean"), ("mean_drop", "mean drop"), ("mean_retention", "retention"),
        ("worst_value", "worst"), ("run_id", "run")], id="worst", caption="Corruptions that hurt most",
        source="robustness_worst_conditions.csv")
    tables = [ranking, worst]
    if not summary.blur_stages.empty:
        tables.append(frame_table(summary.blur_stages, [
            ("model", "model"), ("dataset", "dataset"), ("task", "task"), ("metric", "metric"), ("severity", "severity"),
            ("pre_value", "pre"), ("post_value", "post"), ("post_minus_pre", "post − pre"), ("run_id", "run")],
            id="blur-stages", caption="Gaussian blur before vs after the resize", source="robustness_blur_stages.csv",
            note="pre: blurred at native size, then resized to the model input; post: resized, then blurred "
                 "(σ in pixels of the image it acts on)."))
    overview = summary.data_scale_overview
    if not overview.empty:
        tables.append(frame_table(overview, None, id="data-scale", caption="Linear probe: data scale",
                                  source="robustness_data_scale_overview.csv",
                                  note="Mean ± sd over repeats (seeded subsamples); samples_per_class 0 = all."))
    return tables


def retention_table(summary: "RobustnessSummary", labels: Mapping[str, str]) -> Table | None:
    """Mean retention of each task's primary metric, run × condition, coloured from red (≤ 0.5) to green (1)."""
    conditions = summary.conditions
    part = conditions[conditions.metric == conditions.task.map(PRIMARY_METRIC)]
    if part.empty:
        return None
    names = list(dict.fromkeys(part.condition))
    table = Table("retention", "Mean retention (corrupted / clean, primary metric)",
                  [("dataset", False), ("task", False), ("model", False), *[(name, True) for name in names]],
                  source="robustness_conditions.csv")
    for (dataset, task, run_id), rows in part.groupby(["dataset", "task", "run_id"], sort=False):
        values = dict(zip(rows.condition, rows.mean_retention))
        cells = [Cell(dataset), Cell(task), Cell(labels.get(run_id, run_id))]
        for name in names:
            cell = number_cell(values.get(name, math.nan))
            cells.append(Cell(cell.text, cell.value, _heat_class(values.get(name, math.nan))))
        table.rows.append(cells)
    return table


def _heat_class(retention: float) -> str:
    if not math.isfinite(retention):
        return ""
    share = min(1.0, max(0.0, (retention - 0.5) / 0.5))
    return f"heat heat-{round(share * RETENTION_BINS)}"


def grid_tables(table: "pd.DataFrame", several: bool) -> list[Table]:
    """Corruption × severity grids of the primary metrics (every metric for one run)."""
    tables = []
    for number, grid in enumerate(build_grids(table, metrics="primary" if several else "all")):
        columns = [("corruption", False), *[(f"sev {s}", True) for s in grid.severities], ("mean", True)]
        clean = grid.clean
        note = (f"Clean: {clean.value:.3f} (95% CI {clean.ci_low:.3f}–{clean.ci_high:.3f}). "
                f"{cell_legend(grid.higher_is_better).capitalize()}.")
        grid_table = Table(f"grid-{number}", grid_title(grid, several), columns, note=note,
                           primary=PRIMARY_METRIC.get(grid.task, grid.metric) == grid.metric)
        for label, cells in grid.rows.items():
            row = [Cell(label)]
            for severity in grid.severities:
                cell = cells.get(severity)
                if cell is None:
                    row.append(Cell("", ""))
                    continue
                tip = f"95% CI {cell.ci_low:.3f}–{cell.ci_high:.3f}"
                row.append(Cell(cell_text(cell), full_precision(cell.value), "significant" if cell.significant else "", tip))
            row.append(number_cell(mean_over_severities(cells)))
            grid_table.rows.append(row)
        tables.append(grid_table)
    return tables


def runs_table(records: Sequence[Mapping]) -> Table:
    """One row per run: id, model, dataset, counts, preset, device, seed, started."""
    table = Table("runs", "Runs", [("run", False), ("model", False), ("dataset", False), ("train images", True),
                                   ("test images", True), ("preset", False), ("device", False), ("seed", True),
                                   ("started", False)])
    for record in records:
        counts = record.get("dataset", {}).get("counts") or {}
        table.rows.append([
            Cell(record["run_id"]), Cell(record["model"]["name"]), Cell(record["dataset"]["name"]),
            Cell(str(sum((counts.get("train") or {}).values())) if counts else "", title=_counts(counts.get("train"))),
            Cell(str(sum((counts.get("test") or {}).values())) if counts else "", title=_counts(counts.get("test"))),
            Cell(str((record.get("preset") or {}).get("name", ""))), Cell(str(record.get("device", ""))),
            Cell(str((record.get("spec") or {}).get("seed", ""))), Cell(str(record.get("started", ""))),
        ])
    return table


def _counts(per_class: Mapping | None) -> str:
    return ", ".join(f"{name} {count}" for name, count in (per_class or {}).items())
