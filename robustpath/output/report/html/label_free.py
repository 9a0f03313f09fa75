"""report.html's label-free parts: drift beside identity retrieval, the silent-failure table and the
harm-against-detectability chart (inline SVG), from robustpath.output.report.label_free's frames."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping

from markupsafe import Markup, escape

from robustpath.output.report.html.charts import PALETTE, nice_ticks
from robustpath.output.report.html.tables import Cell, Table, frame_table, number_cell
from robustpath.output.report.label_free import drift_identity_frame, flag_text, silent_failure_summary
from robustpath.results.silent_failures import DETECTABLE_AUROC

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

WIDTH, HEIGHT = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 52, 170, 28, 40


def label_free_tables(table: "pd.DataFrame", summary, labels: Mapping[str, str]) -> list[Table]:
    """Drift beside identity (when a run has either task) and silent failures (when a run has detectability)."""
    tables = []
    drift = drift_identity_frame(table)
    if not drift.empty:
        drift = drift.assign(model=[labels.get(run, model) for run, model in zip(drift.run_id, drift.model)])
        columns = [(c, c) for c in drift.columns if c not in ("run_id", "dataset")]
        tables.append(frame_table(drift, columns, id="drift-identity", caption="Embedding drift beside identity retrieval",
                                  note="Drift: mean cosine similarity to the clean embedding. Identity: share of corrupted "
                                       "images whose own clean copy is the nearest (top-1) or among the 10 nearest (top-10) "
                                       "of all clean test images, and their median rank; chance k/N and (N + 1)/2."))
    silent = getattr(summary, "silent_failures", None)
    if silent is not None and not silent.empty:
        result = Table("silent-failures", "Silent failures: harm against detectability",
                       [("model", False), ("harm metric", False), ("condition", False), ("severity", True),
                        ("drop", True), ("AUROC", True), ("AUROC 95% CI", False), ("flag", False)],
                       source="robustness_silent_failures.csv",
                       note="Harm: drop of the main task's primary metric (* = paired bootstrap p < 0.05). Detectability: "
                            "AUROC of the k-NN distance to the 10 nearest clean training embeddings, corrupted vs clean "
                            f"test images. Flagged when harmful and AUROC < {DETECTABLE_AUROC:g}. "
                            + silent_failure_summary(silent))
        for row in silent.itertuples(index=False):
            drop = number_cell(row.drop_from_clean, signed=True)
            result.rows.append([
                Cell(labels.get(row.run_id, row.model)), Cell(f"{row.task} · {row.metric}"), Cell(row.condition), Cell(str(int(row.severity))),
                Cell(drop.text + ("*" if row.drop_significant else ""), drop.value), number_cell(row.ood_auroc),
                Cell(f"{row.ood_auroc_ci_low:.3f}–{row.ood_auroc_ci_high:.3f}"),
                Cell(flag_text(row), css="bad" if row.silent_failure else ""),
            ])
        tables.append(result)
    return tables


def harm_charts(summary, labels: Mapping[str, str]) -> list[tuple[str, Markup]]:
    """One SVG per run: drop (x) against detectability AUROC (y), a colour per condition, hover for values."""
    silent = getattr(summary, "silent_failures", None)
    if silent is None or silent.empty:
        return []
    return [(labels.get(run_id, run_id), _scatter(rows, labels.get(run_id, run_id)))
            for run_id, rows in silent.groupby("run_id", sort=False)]


def _scatter(rows: "pd.DataFrame", label: str) -> Markup:
    x_ticks = nice_ticks(min(-0.05, float(rows.drop_from_clean.min())), max(0.05, float(rows.drop_from_clean.max())))
    y_ticks = nice_ticks(min(0.4, float(rows.ood_auroc.min())), 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_ticks[0]) / (x_ticks[-1] - x_ticks[0]) * plot_w

    def sy(y: float) -> float:
        return TOP + (1 - (y - y_ticks[0]) / (y_ticks[-1] - y_ticks[0])) * plot_h

    title = f"{label} · harm ({rows.task.iloc[0]} · {rows.metric.iloc[0]}) against detectability"
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
             f'<title>{escape(title)}</title>',
             f'<text class="chart-title" x="{LEFT + plot_w / 2:.1f}" y="16" text-anchor="middle">{escape(title)}</text>',
             f'<rect x="{LEFT}" y="{sy(DETECTABLE_AUROC):.1f}" width="{max(0.0, sx(0.0) - LEFT):.1f}" '
             f'height="{sy(y_ticks[0]) - sy(DETECTABLE_AUROC):.1f}" fill="#d62728" fill-opacity="0.08"/>']
    for tick in y_ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}"/>'
                     f'<text class="tick" x="{LEFT - 4}" y="{sy(tick) + 3:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in x_ticks:
        parts.append(f'<text class="tick" x="{sx(tick):.1f}" y="{TOP + plot_h + 13}" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{sy(DETECTABLE_AUROC):.1f}" y2="{sy(DETECTABLE_AUROC):.1f}" '
                 'stroke="#d62728" stroke-dasharray="4 3"/>')
    parts.append(f'<text class="axis-label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                 f'drop of {escape(rows.metric.iloc[0])} (left = worse)</text>'
                 f'<text class="axis-label" transform="translate(12 {TOP + plot_h / 2:.1f}) rotate(-90)" '
                 'text-anchor="middle">detectability AUROC</text>')
    conditions = list(dict.fromkeys(rows.condition))
    for number, condition in enumerate(conditions):
        colour = PALETTE[number % len(PALETTE)]
        y = TOP + 10 + 14 * number
        parts.append(f'<circle cx="{LEFT + plot_w + 14}" cy="{y}" r="4" fill="{colour}"/>'
                     f'<text class="tick" x="{LEFT + plot_w + 22}" y="{y + 3}">{escape(condition)}</text>')
        for row in rows[rows.condition == condition].itertuples(index=False):
            if not (math.isfinite(row.drop_from_clean) and math.isfinite(row.ood_auroc)):
                continue
            fill = colour if row.harmful else "none"
            tip = (f"{condition} · severity {int(row.severity)}: drop {row.drop_from_clean:+.3f}"
                   f"{' (significant)' if row.drop_significant else ''}, AUROC {row.ood_auroc:.3f} "
                   f"(95% CI {row.ood_auroc_ci_low:.3f}–{row.ood_auroc_ci_high:.3f}) {flag_text(row)}")
            parts.append(f'<circle class="point" cx="{sx(row.drop_from_clean):.1f}" cy="{sy(row.ood_auroc):.1f}" r="4" '
                         f'fill="{fill}" stroke="{colour}" stroke-width="1.5"><title>{escape(tip)}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
