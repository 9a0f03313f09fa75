"""PNG plots for report.md (matplotlib's object API on the Agg canvas; no pyplot state).

- degradation curves: per dataset and task, one panel per condition, the primary
  metric against severity (0 = clean), one line per model with its 95% CI band;
- retention heatmap: model × condition, mean relative retention (primary metric);
- blur stages: Gaussian blur before (solid) vs after (dashed) the resize;
- data scale: linear-probe accuracy against training images per class (mean ± sd);
- corruption gallery: already-corrupted images as arrays, corruption × severity.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from robustpath.atomic import write_bytes_atomic
from robustpath.results import PRIMARY_METRIC, main_rows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from robustpath.robustness import RobustnessSummary
    from robustpath.run_gallery import RunGallery

DPI = 100
PANEL = (3.2, 2.4)
PLOTS_DIR = "plots"
GALLERY_FILE = "corruption_gallery.png"
GALLERY_CELL_INCHES = 1.1


def _figure(width: float, height: float, constrained: bool = True):
    """A figure on the Agg canvas; ``constrained=False`` for figures laid out by hand
    (constrained layout measures every tick label and costs most of the drawing time)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)


def _margins(figure, left: float, right: float, bottom: float, top: float, **spacing) -> None:
    """Fixed margins in inches (fonts are fixed, so the space they need is known)."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                           **spacing)


def save_figure(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_bytes_atomic(Path(path), buffer.getvalue())


def slug(*parts: str) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9._-]+", "_", str(part)) for part in parts)


def _colours(labels: Sequence[str]) -> dict[str, object]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {label: palette(i % 10) for i, label in enumerate(sorted(set(labels)))}


def _panels(count: int, columns: int = 4, share_y: bool = False, legend: bool = False):
    """A grid of ``count`` small panels; with ``legend`` laid out by hand, with room for a
    suptitle above and a figure legend below (see _figure_legend)."""
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure = _figure(PANEL[0] * columns, PANEL[1] * rows + (1.1 if legend else 0.6), constrained=not legend)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False, sharey=share_y).ravel())
    if legend:
        _margins(figure, left=0.6, right=0.15, bottom=0.85, top=0.45, wspace=0.28, hspace=0.55)
    for axis in axes[count:]:
        axis.set_visible(False)
    return figure, axes


def _figure_legend(figure, axis) -> None:
    """The lines of ``axis`` as one legend centred under a _panels(legend=True) grid."""
    handles, names = axis.get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncols=min(4, len(names)), fontsize=8, frameon=False)


def plot_degradation_curves(table: "pd.DataFrame", labels: Mapping[str, str], dataset: str, task: str, path: Path) -> Path:
    """Primary metric vs severity per condition for ``dataset``/``task``; returns ``path``."""
    from matplotlib.ticker import MaxNLocator

    from robustpath.robustness import condition_label

    metric = PRIMARY_METRIC.get(task, table[table.task == task].metric.iloc[0])
    part = main_rows(table)
    part = part[(part.dataset == dataset) & (part.task == task) & (part.metric == metric)]
    clean = part[part.corruption == "none"].set_index("run_id")
    conditions = part[part.corruption != "none"][["corruption", "stage"]].drop_duplicates().values.tolist()
    colours = _colours([labels[r] for r in part.run_id.unique()])
    figure, axes = _panels(len(conditions), share_y=True, legend=True)  # one scale: the worst corruption stands out
    for axis, (corruption, stage) in zip(axes, conditions):
        for run_id, rows in part[(part.corruption == corruption) & (part.stage == stage)].groupby("run_id"):
            rows = rows.sort_values("severity")
            start = clean.loc[[run_id]] if run_id in clean.index else rows.iloc[:0]
            x = np.concatenate([[0], rows.severity]) if len(start) else rows.severity.to_numpy()
            y = np.concatenate([start.value, rows.value])
            low = np.concatenate([start.ci_low, rows.ci_low])
            high = np.concatenate([start.ci_high, rows.ci_high])
            colour = colours[labels[run_id]]
            axis.plot(x, y, marker="o", color=colour, label=labels[run_id])
            axis.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(condition_label(corruption, stage), fontsize=9)
        axis.set_xlabel("severity (0 = clean)", fontsize=8)
        axis.tick_params(labelsize=7, labelleft=True)
        axis.grid(alpha=0.3)
    for axis in axes[:: min(4, max(1, len(conditions)))]:
        axis.set_ylabel(metric, fontsize=8)
    if conditions:
        _figure_legend(figure, axes[0])
    figure.suptitle(f"{dataset} · {task} · {metric} (bands: 95% bootstrap CI)", fontsize=10)
    return save_figure(figure, path)


def plot_retention_heatmap(conditions: "pd.DataFrame", labels: Mapping[str, str], dataset: str, path: Path) -> Path:
    """Model × condition mean relative retention of each task's primary metric."""
    part = conditions[(conditions.dataset == dataset) & (conditions.metric == conditions.task.map(PRIMARY_METRIC))]
    tasks = list(dict.fromkeys(part.task))
    figure, axes = _panels(len(tasks), columns=1)
    for axis, task in zip(axes, tasks):
        rows = part[part.task == task]
        grid = rows.assign(label=rows.run_id.map(labels)).pivot_table(
            index="label", columns="condition", values="mean_retention", aggfunc="first", sort=False, dropna=False
        )
        finite = grid.values[np.isfinite(grid.values)]  # retention is undefined where the clean value is 0
        low = min(0.5, float(finite.min())) if finite.size else 0.5
        image = axis.imshow(grid.values, cmap="RdYlGn", vmin=low, vmax=1.0, aspect="auto")
        axis.set_xticks(range(grid.shape[1]), grid.columns, rotation=35, ha="right", fontsize=8)
        axis.set_yticks(range(grid.shape[0]), grid.index, fontsize=8)
        for (i, j), value in np.ndenumerate(grid.values):
            if np.isfinite(value):
                axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
        axis.set_title(f"{task} · {PRIMARY_METRIC.get(task, '')}: mean retention (corrupted / clean)", fontsize=9)
        figure.colorbar(image, ax=axis, shrink=0.8)
    figure.set_size_inches(max(6.0, 0.9 * part.condition.nunique() + 3), 1.2 + 1.6 * len(tasks) + 0.3 * part.run_id.nunique())
    return save_figure(figure, path)


def plot_blur_stages(blur_stages: "pd.DataFrame", labels: Mapping[str, str], dataset: str, path: Path) -> Path:
    """Primary metric vs blur severity: before (solid) and after (dashed) the model's resize."""
    from matplotlib.ticker import MaxNLocator

    part = blur_stages[blur_stages.dataset == dataset]
    tasks = list(dict.fromkeys(part.task))
    colours = _colours([labels[r] for r in part.run_id.unique()])
    figure, axes = _panels(len(tasks), columns=3, legend=True)
    for axis, task in zip(axes, tasks):
        for run_id, rows in part[part.task == task].groupby("run_id"):
            rows = rows.sort_values("severity")
            colour = colours[labels[run_id]]
            axis.plot(rows.severity, rows.pre_value, marker="o", color=colour, label=f"{labels[run_id]} · pre")
            axis.plot(rows.severity, rows.post_value, marker="s", linestyle="--", color=colour, label=f"{labels[run_id]} · post")
        axis.set_title(f"{task} · {PRIMARY_METRIC.get(task, '')}", fontsize=9)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("blur severity", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    if tasks:
        _figure_legend(figure, axes[0])
    figure.suptitle(f"{dataset} · Gaussian blur before (solid) vs after (dashed) the resize", fontsize=10)
    return save_figure(figure, path)


def plot_data_scale(overview: "pd.DataFrame", labels: Mapping[str, str], dataset: str, path: Path) -> Path:
    """Probe accuracy (clean, and mean over corrupted variants) vs training images per class, ± sd."""
    part = overview[(overview.dataset == dataset) & (overview.metric == "accuracy") & (overview.samples_per_class > 0)]
    colours = _colours([labels[r] for r in part.run_id.unique()])
    figure = _figure(6.0, 3.6)
    axis = figure.subplots()
    for run_id, rows in part.groupby("run_id"):
        rows = rows.sort_values("samples_per_class")
        colour = colours[labels[run_id]]
        axis.errorbar(rows.samples_per_class, rows.clean_mean, yerr=rows.clean_sd.fillna(0), marker="o",
                      color=colour, capsize=3, label=f"{labels[run_id]} · clean")
        if rows.corrupted_mean.notna().any():
            axis.errorbar(rows.samples_per_class, rows.corrupted_mean, yerr=rows.corrupted_sd.fillna(0), marker="s",
                          linestyle="--", color=colour, capsize=3, label=f"{labels[run_id]} · mean over corruptions")
    axis.set_xscale("log", base=2)
    sizes = sorted(int(v) for v in part.samples_per_class.unique())
    axis.set_xticks(sizes, [str(v) for v in sizes])
    axis.minorticks_off()
    axis.set_xlabel("training images per class")
    axis.set_ylabel("linear-probe accuracy")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(f"{dataset}: data scale (error bars: sd over repeats)", fontsize=10)
    return save_figure(figure, path)


def plot_corruption_gallery(images: Mapping[str, Sequence[np.ndarray | None]], path: Path,
                            column_titles: Sequence[str] = (), title: str | None = None) -> Path:
    """images: row label (e.g. a corruption) → images for each column (e.g. severity 0..N).

    Each image is (H, W, 3) uint8, or float in [0, 1]; None leaves its cell empty.
    Cells take the shape of the first image (wide strips get wide cells); small images
    are shown with nearest-neighbour upscaling, so a 40 px patch stays sharp.  The cells
    are tiled into one mosaic drawn on a single axis (one axis per cell would cost
    seconds of matplotlib layout for a full sweep).
    """
    rows = list(images.items())
    columns = max(len(row) for _, row in rows)
    first = _as_uint8(next(image for _, row in rows for image in row if image is not None))
    cell_h, cell_w = first.shape[:2]
    gap = max(1, min(cell_h, cell_w) // 12)
    mosaic = np.full((len(rows) * (cell_h + gap) - gap, columns * (cell_w + gap) - gap, 3), 255, dtype=np.uint8)
    for i, (_, row) in enumerate(rows):
        for j, image in enumerate(row):
            if image is not None:
                top, left = i * (cell_h + gap), j * (cell_w + gap)
                mosaic[top:top + cell_h, left:left + cell_w] = _fit_cell(_as_uint8(image), cell_h, cell_w)
    height = GALLERY_CELL_INCHES
    width = min(max(height * cell_w / cell_h, height), 3 * height)
    left, right, bottom, top = 1.3, 0.15, 0.1, 0.35 + (0.3 if title else 0)
    figure = _figure(width * columns + left + right, height * len(rows) + top + bottom, constrained=False)
    axis = figure.add_subplot()
    _margins(figure, left=left, right=right, bottom=bottom, top=top)
    interpolation = "nearest" if cell_h <= height * DPI else "antialiased"
    axis.imshow(mosaic, interpolation=interpolation, aspect="auto")
    axis.set_yticks([i * (cell_h + gap) + (cell_h - 1) / 2 for i in range(len(rows))], [label for label, _ in rows],
                    fontsize=9)
    axis.xaxis.tick_top()
    titles = list(column_titles)[:columns]
    axis.set_xticks([j * (cell_w + gap) + (cell_w - 1) / 2 for j in range(len(titles))], titles, fontsize=9)
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    if title:
        figure.suptitle(title, fontsize=9, y=1 - 0.08 / figure.get_size_inches()[1], va="top")
    return save_figure(figure, path)


def _as_uint8(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _fit_cell(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` at the cell size (nearest neighbour) when its shape differs from the first cell's."""
    if image.shape[:2] == (height, width):
        return image[..., :3]
    from PIL import Image

    return np.asarray(Image.fromarray(image[..., :3]).resize((width, height), Image.NEAREST))


def write_gallery_plot(gallery: "RunGallery", out_dir: Path) -> str:
    """plots/corruption_gallery.png of a run's gallery; returns its path relative to ``out_dir``."""
    relative = f"{PLOTS_DIR}/{GALLERY_FILE}"
    title = f"{len(gallery.sample_ids)} test images, corrupted at native size before the resize (seed {gallery.seed})"
    plot_corruption_gallery(gallery.rows, Path(out_dir) / relative, gallery.column_titles, title)
    return relative


def write_plots(table: "pd.DataFrame", summary: "RobustnessSummary", out_dir: Path) -> dict[str, list[str]]:
    """Every plot for ``table`` under out_dir/plots → section → paths relative to out_dir."""
    from robustpath.robustness import series_labels

    labels = series_labels(table)
    written: dict[str, list[str]] = {"degradation": [], "retention": [], "blur_stages": [], "data_scale": []}

    def emit(section: str, plot, data, *keys: str) -> None:
        relative = f"{PLOTS_DIR}/{slug(section, *keys)}.png"
        plot(data, labels, *keys, Path(out_dir) / relative)
        written[section].append(relative)

    main = main_rows(table)
    for dataset in dict.fromkeys(main.dataset):
        part = main[main.dataset == dataset]
        for task in dict.fromkeys(part.task):
            if (part[part.task == task].corruption != "none").any():
                emit("degradation", plot_degradation_curves, table, dataset, task)
        if (summary.conditions.dataset == dataset).any():
            emit("retention", plot_retention_heatmap, summary.conditions, dataset)
        if (summary.blur_stages.dataset == dataset).any():
            emit("blur_stages", plot_blur_stages, summary.blur_stages, dataset)
        scale = summary.data_scale_overview
        if ((scale.dataset == dataset) & (scale.samples_per_class > 0)).any():
            emit("data_scale", plot_data_scale, scale, dataset)
    return written
