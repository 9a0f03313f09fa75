"""Rich terminal tables: rows corruptions, columns severities, cells coloured by drop."""
from __future__ import annotations

from typing import TYPE_CHECKING

from robustpath.report.grid import MetricGrid, build_grids, mean_over_severities

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from rich.console import Console

SMALL_DROP = 0.02
LARGE_DROP = 0.10


def drop_style(drop: float) -> str:
    """Colour by the fall from clean (absolute, metric units in [0, 1])."""
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
        caption=f"clean {clean.value:.3f} [95% CI {clean.ci_low:.3f}–{clean.ci_high:.3f}]; cells: value (drop from clean)",
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
            row.append("" if cell is None else f"[{drop_style(cell.drop)}]{cell.value:.3f} ({cell.drop:+.3f})[/]")
        mean = mean_over_severities(cells)
        row.append(f"[{drop_style(mean - clean.value)}]{mean:.3f}[/]")
        table.add_row(*row)
    return table


def render_terminal(table: "pd.DataFrame", console: "Console") -> None:
    """Print one table per task (its primary metric) to ``console``."""
    for grid in build_grids(table, metrics="primary"):
        console.print(grid_table(grid))
        console.print()
