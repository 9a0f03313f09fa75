"""Inline SVG charts for report.html, drawn in Python (no chart library, nothing to load).

- degradation curves: per dataset and task, one panel per condition (a corruption at a
  stage), the primary metric against severity (0 = clean), one line per run with its 95%
  bootstrap band; every panel of a task shares one y scale, as in report.md;
- blur before vs after the resize: per dataset, one panel per task, solid = pre, dashed = post.

Every point carries an SVG <title> (the browser shows it on hover) with its exact values;
lines and bands carry ``data-series`` so the page can hide a run's series.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

from markupsafe import Markup, escape

from robustpath.results.table import PRIMARY_METRIC, main_rows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDTH, HEIGHT = 300, 200
LEFT, RIGHT, TOP, BOTTOM = 46, 12, 26, 36


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    low: float = math.nan
    high: float = math.nan


@dataclass(frozen=True)
class Series:
    """One line: ``key`` names it for toggles, ``label`` for people."""

    key: str
    label: str
    colour: str
    points: tuple[Point, ...]
    dashed: bool = False


@dataclass
class ChartGroup:
    """Panels that share a legend: (panel title, SVG) and legend entries (key, label, colour, dashed)."""

    title: str
    caption: str
    panels: list[tuple[str, Markup]] = field(default_factory=list)
    legend: list[tuple[str, str, str, bool]] = field(default_factory=list)


def series_colours(labels: Mapping[str, str]) -> dict[str, str]:
    """run id → colour: the runs' labels sorted, tab10 in turn (as the PNG plots)."""
    order = {label: i for i, label in enumerate(sorted(set(labels.values())))}
    return {run_id: PALETTE[order[label] % len(PALETTE)] for run_id, label in labels.items()}


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high], about ``count`` of them."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        centre = low if math.isfinite(low) else 0.0
        low, high = centre - 0.5, centre + 0.5
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _number(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.3f}"


def _tip(label: str, point: Point, x_name: str) -> str:
    text = f"{label} · {x_name} {point.x:g}: {_number(point.y)}"
    if math.isfinite(point.low) and math.isfinite(point.high):
        text += f" (95% CI {_number(point.low)}–{_number(point.high)})"
    return text


def panel_svg(title: str, series: Sequence[Series], y_ticks: Sequence[float], x_values: Sequence[float],
              x_name: str, y_name: str) -> Markup:
    """One panel: axes, grid, bands, lines, points with <title> tooltips."""
    x_low, x_high = min(x_values), max(x_values)
    y_low, y_high = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (0.5 if x_high == x_low else (x - x_low) / (x_high - x_low)) * plot_w

    def sy(y: float) -> float:
        return TOP + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}: {escape(y_name)} '
             f'against {escape(x_name)}"><title>{escape(title)}</title>',
             f'<text class="chart-title" x="{WIDTH / 2:.1f}" y="16" text-anchor="middle">{escape(title)}</text>']
    for tick in y_ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}"/>'
                     f'<text class="tick" x="{LEFT - 4}" y="{sy(tick) + 3:.1f}" text-anchor="end">{tick:g}</text>')
    for x in x_values:
        parts.append(f'<text class="tick" x="{sx(x):.1f}" y="{HEIGHT - BOTTOM + 13}" text-anchor="middle">{x:g}</text>')
    parts.append(f'<text class="axis-label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                 f'{escape(x_name)}</text>')
    parts.append(f'<text class="axis-label" transform="translate(11 {TOP + plot_h / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_name)}</text>')
    for line in series:
        parts.append(_series_svg(line, sx, sy, x_name))
    parts.append("</svg>")
    return Markup("".join(parts))


def _series_svg(line: Series, sx, sy, x_name: str) -> str:
    key = escape(line.key)
    out = [f'<g class="series" data-series="{key}">']
    banded = [p for p in line.points if math.isfinite(p.low) and math.isfinite(p.high)]
    if len(banded) > 1:
        upper = " ".join(f"{sx(p.x):.1f},{sy(p.high):.1f}" for p in banded)
        lower = " ".join(f"{sx(p.x):.1f},{sy(p.low):.1f}" for p in reversed(banded))
        out.append(f'<polygon class="band" points="{upper} {lower}" fill="{line.colour}"/>')
    finite = [p for p in line.points if math.isfinite(p.y)]
    path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in finite)
    dash = ' stroke-dasharray="5 3"' if line.dashed else ""
    out.append(f'<polyline class="line" points="{path}" stroke="{line.colour}"{dash}/>')
    for p in finite:
        out.append(f'<circle class="point" cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="3.2" fill="{line.colour}">'
                   f"<title>{escape(_tip(line.label, p, x_name))}</title></circle>")
    out.append("</g>")
    return "".join(out)


def _y_ticks(values: Sequence[float]) -> list[float]:
    """Ticks over the values with a little room, kept inside [0, 1] when the values are."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return nice_ticks(0.0, 1.0)
    low, high = min(finite), max(finite)
    pad = max(1e-3, (high - low) * 0.05)
    low, high = low - pad if low < 0 else max(0.0, low - pad), high + pad if high > 1 else min(1.0, high + pad)
    ticks = nice_ticks(low, high)
    if min(finite) >= 0 and max(finite) <= 1:
        ticks = [tick for tick in ticks if -1e-9 <= tick <= 1 + 1e-9]
    return ticks


def degradation_groups(table: "pd.DataFrame", labels: Mapping[str, str]) -> list[ChartGroup]:
    """Per dataset and task with corrupted rows: one panel per condition (see module docstring)."""
    from robustpath.results.robustness import condition_label

    colours = series_colours(labels)
    main = main_rows(table)
    groups = []
    for dataset in dict.fromkeys(main.dataset):
        for task in dict.fromkeys(main[main.dataset == dataset].task):
            metric = PRIMARY_METRIC.get(task, main[main.task == task].metric.iloc[0])
            part = main[(main.dataset == dataset) & (main.task == task) & (main.metric == metric)]
            corrupted = part[part.corruption != "none"]
            if corrupted.empty:
                continue
            clean = {row.run_id: row for row in part[part.corruption == "none"].itertuples()}
            conditions = corrupted[["corruption", "stage"]].drop_duplicates().itertuples(index=False)
            panels = []
            for corruption, stage in conditions:
                lines = []
                for run_id, rows in corrupted[(corrupted.corruption == corruption) & (corrupted.stage == stage)].groupby(
                        "run_id", sort=False):
                    start = [clean[run_id]] if run_id in clean else []
                    points = tuple(Point(float(r.severity), r.value, r.ci_low, r.ci_high)
                                   for r in [*start, *rows.sort_values("severity").itertuples()])
                    lines.append(Series(run_id, labels[run_id], colours[run_id], points))
                panels.append((condition_label(corruption, stage), lines))
            values = [v for column in ("value", "ci_low", "ci_high") for v in part[column]]
            ticks = _y_ticks(values)
            x_values = sorted({0.0, *map(float, corrupted.severity)})
            group = ChartGroup(f"{dataset} · {task} · {metric}",
                               "Primary metric against severity (0 = clean); bands: 95% bootstrap intervals. "
                               "Hover a point for its values.")
            group.panels = [(title, panel_svg(title, lines, ticks, x_values, "severity", metric))
                            for title, lines in panels]
            group.legend = [(run_id, labels[run_id], colours[run_id], False) for run_id in dict.fromkeys(part.run_id)]
            groups.append(group)
    return groups


def blur_stage_groups(blur_stages: "pd.DataFrame", labels: Mapping[str, str]) -> list[ChartGroup]:
    """Per dataset: one panel per task, Gaussian blur before (solid) and after (dashed) the resize."""
    colours = series_colours(labels)
    groups = []
    for dataset in dict.fromkeys(blur_stages.dataset):
        part = blur_stages[blur_stages.dataset == dataset]
        group = ChartGroup(f"{dataset} · Gaussian blur before (solid) vs after (dashed) the resize",
                           "Primary metric against blur severity. Hover a point for its value.")
        ticks = _y_ticks([v for column in ("pre_value", "post_value") for v in part[column]])
        x_values = sorted(map(float, part.severity.unique()))
        for task in dict.fromkeys(part.task):
            lines = []
            for run_id, rows in part[part.task == task].groupby("run_id", sort=False):
                rows = rows.sort_values("severity")
                for stage, column, dashed in (("pre", "pre_value", False), ("post", "post_value", True)):
                    points = tuple(Point(float(s), float(v)) for s, v in zip(rows.severity, rows[column]))
                    lines.append(Series(f"{run_id}|{stage}", f"{labels[run_id]} · {stage}", colours[run_id], points, dashed))
            metric = part[part.task == task].metric.iloc[0]
            group.panels.append((f"{task} · {metric}", panel_svg(f"{task} · {metric}", lines, ticks, x_values,
                                                                  "blur severity", metric)))
        for run_id in dict.fromkeys(part.run_id):
            group.legend += [(f"{run_id}|pre", f"{labels[run_id]} · pre", colours[run_id], False),
                             (f"{run_id}|post", f"{labels[run_id]} · post", colours[run_id], True)]
        groups.append(group)
    return groups
