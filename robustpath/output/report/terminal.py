"""Rich terminal tables: rows corruptions, columns severities, cells coloured by drop."""
from __future__ import annotations

from typing import TYPE_CHECKING

from robustpath.output.report.grid import MetricGrid, build_grids, cell_legend, cell_text, mean_over_severities

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from rich.console import Console

SMALL_DROP = 0.02
LARGE_DROP = 0.10


def drop_style(drop: float, higher_is_better: bool = True) -> str:
    """Colour by the fall from clean (absolute, metric units in [0, 1])."""
    if not higher_is_better:
        drop = -drop
    if drop >= -SMALL_DROP:
        return "green"
    if drop >= -LARGE_DROP:
        return "yellow"
    return "bold red"


def grid_table(grid: MetricGrid):
    from rich.table import Table

    clean = grid.clean
    table = Table(
        title=f"{grid.task} · {grid.metric} · {grid.model} on {grid.dataset}",
        caption=f"clean {clean.value:.3f} [95% CI {clean.ci_low:.3f}–{clean.ci_high:.3f}]; {cell_legend(grid.higher_is_better)}",
        title_justify="left",
    )
    table.add_column("corruption", style="bold", no_wrap=True)
    for severity in grid.severities:
        table.add_column(f"sev {severity}", justify="right", no_wrap=True)
    table.add_column("mean", justify="right", no_wrap=True)
    for label, cells in grid.rows.items():
        row = [label]
        for severity in grid.severities:
            cell = cells.get(severity)
            row.append("" if cell is None else f"[{drop_style(cell.drop, grid.higher_is_better)}]{cell_text(cell)}[/]")
        mean = mean_over_severities(cells)
        row.append(f"[{drop_style(mean - clean.value, grid.higher_is_better)}]{mean:.3f}[/]")
        table.add_row(*row)
    return table


def render_terminal(table: "pd.DataFrame", console: "Console") -> None:
    """Print one table per task (its primary metric) to ``console``."""
    for grid in build_grids(table, metrics="primary"):
        console.print(grid_table(grid))
        console.print()


def ranking_table(part: "pd.DataFrame", baseline: str | None):
    """One rich table: the robustness ranking of one dataset and task."""
    from rich.table import Table

    first = part.iloc[0]
    caption = "ranked by mean normalised AUC (1 = no loss, 0 = at chance); near chance: undefined, ranked last"
    caption += f"; mCE against {baseline}" if baseline else "; --baseline MODEL adds mCE"
    table = Table(title=f"robustness · {first.dataset} · {first.task} · {first.metric}", caption=caption, title_justify="left")
    noted = bool(part.summary_note.astype(bool).any())
    columns = ("rank", "model", "clean", "chance", "retention", "norm. AUC", "mCE", "rel. mCE", "worst condition")
    for column in (*columns, *(["note"] if noted else [])):
        table.add_column(column, justify="left" if column in ("model", "worst condition", "note") else "right")
    for row in part.itertuples():
        values = [row.clean_value, row.chance, row.mean_retention, row.mean_normalised_auc, row.mce, row.relative_mce]
        table.add_row(str(row.rank), row.model, *("—" if v != v else f"{v:.3f}" for v in values), row.worst_condition,
                      *([row.summary_note] if noted else []))
    return table


def render_ranking(ranking: "pd.DataFrame", console: "Console", baseline: str | None = None) -> None:
    """Print the robustness ranking, one table per dataset and task."""
    for _, part in ranking.groupby(["dataset", "task"], sort=False):
        console.print(ranking_table(part, baseline))
        console.print()
