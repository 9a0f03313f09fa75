"""Plot: how far each corruption moves the embeddings, against the real shifts between groups.

One figure per run with group-shift rows: the mean embedding distance (shift_distance,
robustpath.tasks.shift_distance) of each corruption against its severity (lines, 95%
bands), and each pair of groups as a dashed horizontal line at its own distance: a
corruption's curve crossing a line is a synthetic shift as large as that real one.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from robustpath.output.report.plots import _colours, _figure, save_figure
from robustpath.tasks.group_shifts import GROUP_PREFIX

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def runs_with_group_shifts(table: "pd.DataFrame") -> list[str]:
    """Run ids that have shift_distance rows for a pair of groups."""
    part = table[(table.task == "shift_distance") & table.corruption.str.startswith(GROUP_PREFIX)]
    return list(dict.fromkeys(part.run_id))


def plot_shift_distances(table: "pd.DataFrame", labels: Mapping[str, str], run_id: str, path: Path) -> Path:
    """The figure of the module docstring for ``run_id``, written to ``path``."""
    from matplotlib.ticker import MaxNLocator

    part = table[(table.task == "shift_distance") & (table.run_id == run_id)]
    groups = part[part.corruption.str.startswith(GROUP_PREFIX)]
    synthetic = part[~part.corruption.str.startswith(GROUP_PREFIX)]
    figure = _figure(7.0, 4.2)
    axis = figure.add_subplot(1, 1, 1)
    conditions = list(dict.fromkeys(zip(synthetic.corruption, synthetic.stage)))
    colours = _colours([f"{c} ({s})" for c, s in conditions])
    for corruption, stage in conditions:
        rows = synthetic[(synthetic.corruption == corruption) & (synthetic.stage == stage)].sort_values("severity")
        name = corruption if stage == "pre" else f"{corruption} ({stage}-resize)"
        colour = colours[f"{corruption} ({stage})"]
        axis.plot(rows.severity, rows.value, marker="o", color=colour, label=name)
        axis.fill_between(rows.severity, rows.ci_low, rows.ci_high, color=colour, alpha=0.12, linewidth=0)
    for row in groups.itertuples():
        axis.axhline(row.value, color="black", linestyle="--", linewidth=0.8)
        axis.annotate(row.corruption[len(GROUP_PREFIX):], (1.0, row.value), xycoords=("axes fraction", "data"),
                      xytext=(-4, 2), textcoords="offset points", ha="right", fontsize=7)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("corruption severity", fontsize=8)
    axis.set_ylabel("mean embedding distance (1 − cos, centred)", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.grid(alpha=0.3)
    if conditions:
        axis.legend(fontsize=7, loc="upper left")
    model, dataset = part.model.iloc[0], part.dataset.iloc[0]
    axis.set_title(f"{labels.get(run_id, model)} on {dataset}: corruptions (lines) vs group shifts (dashed)", fontsize=9)
    return save_figure(figure, path)
