"""report.md: the same numbers as results.csv, as markdown tables."""
from __future__ import annotations

from typing import TYPE_CHECKING

from robustpath.report.grid import MetricGrid, build_grids, mean_over_severities

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _grid_markdown(grid: MetricGrid) -> list[str]:
    clean = grid.clean
    header = ["corruption", *[f"sev {s}" for s in grid.severities], "mean"]
    lines = [
        f"### {grid.task} · {grid.metric}",
        "",
        f"Clean: **{clean.value:.3f}** (95% CI {clean.ci_low:.3f}–{clean.ci_high:.3f}). "
        "Cells: value (drop from clean).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for label, cells in grid.rows.items():
        values = [
            f"{cells[s].value:.3f} ({cells[s].drop:+.3f})" if s in cells else "" for s in grid.severities
        ]
        lines.append("| " + " | ".join([label, *values, f"{mean_over_severities(cells):.3f}"]) + " |")
    return lines + [""]


def render_markdown(table: "pd.DataFrame", record: dict) -> str:
    """A self-contained report.md for one run."""
    model = record["model"]["name"]
    dataset = record["dataset"]
    lines = [
        f"# robustpath report — {model} on {dataset['name']}",
        "",
        f"- run: `{record['run_id']}` ({record['started']}), device `{record['device']}`, "
        f"preset `{record['preset']['name']}`, seed {record['spec']['seed']}",
        f"- classes: {', '.join(dataset['classes'])}; native size {dataset['native_size'][0]}×{dataset['native_size'][1]} px",
        f"- results schema version {record['schema_version']}",
        "",
    ]
    lines += [f"> {note}" for note in record["notes"]] + [""]
    lines += ["## Corruptions", "", "| corruption | stage | severity | parameter | unit |", "|---|---|---:|---|---|"]
    for item in record["preset"]["variants"]:
        lines.append(
            f"| {item['corruption']} | {item['stage']} | {item['severity']} | {item['parameter']} | {item['unit']} |"
        )
    lines += ["", "## Results", ""]
    for grid in build_grids(table, metrics="all"):
        lines += _grid_markdown(grid)
    return "\n".join(lines)
