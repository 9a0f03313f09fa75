"""PNG plots for report.md (matplotlib's object API on the Agg canvas; no pyplot state).

- degradation curves: per dataset and task, one panel per condition, the primary
  metric against severity (0 = clean), one line per model with its 95% CI band;
- retention heatmap: model × condition, mean relative retention (primary metric);
- blur stages: Gaussian blur before (solid) vs after (dashed) the resize, with 95% CI bands;
- data scale: linear-probe accuracy against training images per class (mean ± sd);
- harm against detectability: per run, the main task's drop against the detectability
  AUROC per corruption × severity (robustpath.output.report.label_free);
- corruption gallery: already-corrupted images as arrays, corruption × severity.

drawing_plots draws the figures in forked worker processes where it can (see _drawing).
"""
from __future__ import annotations

import io
import math
import multiprocessing
import os
import re
import signal
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np

from robustpath.util.atomic import write_bytes_atomic
from robustpath.results.table import PRIMARY_METRIC, main_rows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from robustpath.results.robustness import RobustnessSummary
    from robustpath.preview.run_gallery import RunGallery

DPI = 100
PANEL = (3.2, 2.4)
from robustpath.output.layout import GALLERY_FILE, PLOTS_DIR  # noqa: E402
GALLERY_CELL_INCHES = 1.1


def _figure(width: float, height: float, constrained: bool = True):
    """A figure on the Agg canvas; ``constrained=False`` for figures laid out by hand
    (constrained layout measures every tick label and costs most of the drawing time)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, facecolor="white", layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def _margins(figure, left: float, right: float, bottom: float, top: float, **spacing) -> None:
    """Fixed margins in inches (fonts are fixed, so the space they need is known)."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                           **spacing)


def save_figure(figure, path: Path) -> Path:
    return _save_png(_pixels(figure), path)


def _pixels(figure) -> np.ndarray:
    """``figure`` drawn: (H, W, 3) uint8 (its background is opaque)."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def _save_png(pixels: np.ndarray, path: Path) -> Path:
    """Write ``pixels`` as a PNG atomically; zlib level 3 encodes about twice as fast as the
    default level 6, for files of about the same size."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="png", compress_level=3, dpi=(DPI, DPI))
    return write_bytes_atomic(Path(path), buffer.getvalue())


def slug(*parts: str) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9._-]+", "_", str(part)) for part in parts)


def _colours(labels: Sequence[str]) -> dict[str, object]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {label: palette(i % 10) for i, label in enumerate(sorted(set(labels)))}


def _panels(count: int, columns: int = 4, shared: bool = False, legend: bool = False):
    """A grid of ``count`` small panels; with ``legend`` laid out by hand, with room for a
    suptitle above and a figure legend below (see _figure_legend).

    ``shared``: one x and one y scale; tick labels only on the first column and on the
    lowest panel of each column (``axes[count - columns:count]``, see _label_shared).
    """
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure = _figure(PANEL[0] * columns, PANEL[1] * rows + (1.1 if legend else 0.6), constrained=not legend)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False, sharex=shared, sharey=shared).ravel())
    if legend:
        _margins(figure, left=0.6, right=0.15, bottom=0.85, top=0.55, wspace=0.28, hspace=0.35 if shared else 0.55)
    for axis in axes[count:]:
        axis.set_visible(False)
    return figure, axes


def _label_shared(axes, count: int, xlabel: str, ylabel: str) -> None:
    """Axis labels of a _panels(shared=True) grid: x under the lowest panel of each column
    (with its tick labels: subplots hides them above an empty cell), y left of each row."""
    columns = axes[0].get_gridspec().ncols
    for axis in axes[max(0, count - columns):count]:
        axis.xaxis.set_tick_params(labelbottom=True)
        axis.set_xlabel(xlabel, fontsize=8)
    for axis in axes[:count:columns]:
        axis.set_ylabel(ylabel, fontsize=8)


def _figure_legend(figure, axis) -> None:
    """The lines of ``axis`` as one legend centred under a _panels(legend=True) grid."""
    handles, names = axis.get_legend_handles_labels()
    fits = int(figure.get_size_inches()[0] // (_text_inches(figure, names, 8)[0] + 0.6))  # entries side by side
    figure.legend(handles, names, loc="lower center", ncols=max(1, min(4, len(names), fits)), fontsize=8, frameon=False)


def plot_degradation_curves(table: "pd.DataFrame", labels: Mapping[str, str], dataset: str, task: str, path: Path) -> Path:
    """Primary metric vs severity per condition for ``dataset``/``task``; returns ``path``."""
    from robustpath.results.robustness import condition_label

    metric = PRIMARY_METRIC.get(task, table[table.task == task].metric.iloc[0])
    part = main_rows(table)
    part = part[(part.dataset == dataset) & (part.task == task) & (part.metric == metric)]
    clean = part[part.corruption == "none"].set_index("run_id")
    conditions = part[part.corruption != "none"][["corruption", "stage"]].drop_duplicates().values.tolist()
    colours = _colours([labels[r] for r in part.run_id.unique()])
    severities = sorted({0, *part.severity})
    figure, axes = _panels(len(conditions), shared=True, legend=True)  # one scale: the worst corruption stands out
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
        axis.set_title(condition_label(corruption, stage), fontsize=9, y=1.0)  # fixed y: no title placement pass
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    axes[0].set_xticks(severities)  # shared by every panel
    _label_shared(axes, len(conditions), "severity (0 = clean)", metric)
    if conditions:
        _figure_legend(figure, axes[0])
    figure.suptitle(f"{dataset} · {task} · {metric} (bands: 95% bootstrap CI)", fontsize=10)
    return save_figure(figure, path)


def plot_retention_heatmap(conditions: "pd.DataFrame", labels: Mapping[str, str], dataset: str, path: Path) -> Path:
    """Model × condition mean relative retention of each task's primary metric."""
    part = conditions[(conditions.dataset == dataset) & (conditions.metric == conditions.task.map(PRIMARY_METRIC))]
    tasks = list(dict.fromkeys(part.task))
    height = 1.2 + 1.6 * len(tasks) + 0.3 * part.run_id.nunique()
    figure = _figure(6.0, height, constrained=False)
    # margins from the longest labels (cheaper than constrained layout): model names on the
    # left, condition names under each heatmap (rotated by 35°), a title above each
    left = _text_inches(figure, [labels[r] for r in part.run_id.unique()], 8)[0] + 0.2
    width, text_height = _text_inches(figure, list(part.condition.unique()), 8)
    below, above = width * math.sin(math.radians(35)) + text_height + 0.15, 0.35
    figure.set_size_inches(left + max(4.0, 0.9 * part.condition.nunique()) + 0.9, height)
    axes = figure.subplots(len(tasks), 1, squeeze=False).ravel()
    _margins(figure, left=left, right=0.9, bottom=below, top=above,
             hspace=(below + above) / (height / len(tasks) - below - above))
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
        axis.set_title(f"{task} · {PRIMARY_METRIC.get(task, '')}: mean retention (corrupted / clean)", fontsize=9, y=1.0)
        figure.colorbar(image, cax=axis.inset_axes((1.01, 0.1, 0.015, 0.8)))
    return save_figure(figure, path)


def _text_inches(figure, texts: Sequence[str], fontsize: float) -> tuple[float, float]:
    """The largest width and height of ``texts`` at ``fontsize``, in inches."""
    from matplotlib.font_manager import FontProperties

    renderer, font = figure.canvas.get_renderer(), FontProperties(size=fontsize)
    sizes = [renderer.get_text_width_height_descent(text, font, ismath=False)[:2] for text in texts] or [(0, 0)]
    return max(w for w, _ in sizes) / figure.dpi, max(h for _, h in sizes) / figure.dpi


def plot_blur_stages(table: "pd.DataFrame", labels: Mapping[str, str], dataset: str, path: Path) -> Path:
    """Primary metric vs blur severity (0 = clean) before (solid) and after (dashed) the model's resize,
    with 95% bootstrap bands; the y axis spans at least 0 to 1, so small differences are not magnified."""
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    part = main_rows(table)
    part = part[(part.dataset == dataset) & (part.corruption.isin(["none", "gaussian_blur"]))]
    part = part[part.metric == part.task.map(lambda task: PRIMARY_METRIC.get(task, ""))]
    tasks = [t for t in dict.fromkeys(part.task) if {"pre", "post"} <= set(part[part.task == t].stage)]
    colours = _colours([labels[r] for r in part.run_id.unique()])
    figure, axes = _panels(len(tasks), columns=3, legend=True)
    for axis, task in zip(axes, tasks):
        for run_id, rows in part[part.task == task].groupby("run_id"):
            clean, colour = rows[rows.corruption == "none"], colours[labels[run_id]]
            for stage, style in (("pre", dict(marker="o")), ("post", dict(marker="s", linestyle="--"))):
                series = rows[rows.stage == stage].sort_values("severity")
                series = series if clean.empty else pd.concat([clean, series])
                x = [0 if c == "none" else s for c, s in zip(series.corruption, series.severity)]
                axis.plot(x, series.value, color=colour, label=f"{labels[run_id]} · {stage}", **style)
                axis.fill_between(x, series.ci_low, series.ci_high, color=colour, alpha=0.12, linewidth=0)
        values = part[part.task == task]
        axis.set_ylim(min(0.0, float(values.ci_low.min())), max(1.0, float(values.ci_high.max())) + 0.02)
        axis.set_title(f"{task} · {PRIMARY_METRIC.get(task, '')}", fontsize=9)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("blur severity (0 = clean)", fontsize=8)
        axis.set_ylabel(PRIMARY_METRIC.get(task, ""), fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    if tasks:
        _figure_legend(figure, axes[0])
    figure.suptitle(f"{dataset} · Gaussian blur before (solid) vs after (dashed) the resize (bands: 95% bootstrap CI)",
                    fontsize=10)
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
    are tiled into one mosaic, resized by PIL into the pixels of a single axis once the
    labels are drawn (one axis per cell would cost seconds of matplotlib layout for a
    full sweep, and matplotlib's own resampling of the mosaic most of the drawing time).
    """
    from PIL import Image

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
    axis.set(xlim=(-0.5, mosaic.shape[1] - 0.5), ylim=(mosaic.shape[0] - 0.5, -0.5))  # pixel centres, as imshow
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
    pixels = _pixels(figure)
    x0, y0, x1, y1 = np.round(axis.get_window_extent().extents).astype(int)
    resample = Image.NEAREST if cell_h <= height * DPI else Image.LANCZOS
    top = pixels.shape[0] - y1  # rows count from the top
    pixels[top:top + y1 - y0, x0:x1] = np.asarray(Image.fromarray(mosaic).resize((x1 - x0, y1 - y0), resample))
    return _save_png(pixels, path)


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


@contextmanager
def drawing_plots(table: "pd.DataFrame", summary: "RobustnessSummary", out_dir: Path,
                  gallery: "RunGallery | Path | None" = None, workers: int | None = None) -> Iterator[dict[str, list[str]]]:
    """Every plot for ``table`` under out_dir/plots, drawn by the end of the ``with`` block,
    which gets section → paths relative to out_dir at once (see _drawing: the figures are
    drawn by ``workers`` processes, by default one per available core, meanwhile).

    ``gallery``: a run's corruption gallery to draw, or the PNG of one already drawn (a
    merged report copies it) → plots/corruption_gallery.png.
    """
    from robustpath.results.robustness import series_labels

    labels = series_labels(table)
    written: dict[str, list[str]] = {"degradation": [], "retention": [], "blur_stages": [], "data_scale": [],
                                     "group_shifts": [], "detectability": []}
    jobs = []

    def emit(section: str, plot, data, *keys: str) -> None:
        relative = f"{PLOTS_DIR}/{slug(section, *keys)}.png"
        jobs.append(partial(plot, data, labels, *keys, Path(out_dir) / relative))
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
            emit("blur_stages", plot_blur_stages, table, dataset)
        scale = summary.data_scale_overview
        if ((scale.dataset == dataset) & (scale.samples_per_class > 0)).any():
            emit("data_scale", plot_data_scale, scale, dataset)
        silent = summary.silent_failures
        if silent is not None and (silent.dataset == dataset).any():
            from robustpath.output.report.label_free import plot_harm_detectability

            emit("detectability", plot_harm_detectability, silent, dataset)
    from robustpath.output.report.group_plots import plot_shift_distances, runs_with_group_shifts

    for run_id in runs_with_group_shifts(table):
        emit("group_shifts", plot_shift_distances, table, run_id)
    if gallery is not None:
        relative = f"{PLOTS_DIR}/{GALLERY_FILE}"
        written["gallery"] = [relative]
        if isinstance(gallery, Path):
            write_bytes_atomic(Path(out_dir) / relative, gallery.read_bytes())
        else:
            title = f"{len(gallery.sample_ids)} test images, corrupted at native size before the resize (seed {gallery.seed})"
            jobs.append(partial(plot_corruption_gallery, gallery.rows, Path(out_dir) / relative, gallery.column_titles, title))
    with _drawing(jobs, workers):
        yield written


@contextmanager
def _drawing(jobs: Sequence[Callable[[], Path]], workers: int | None = None) -> Iterator[None]:
    """Run the plot jobs (each writes its own PNG) by the end of the ``with`` block, and raise
    the error of the first one that fails, in order, as running them one after the other does.

    With more than one worker (default: the available cores) where the platform forks
    (Linux), ``workers - 1`` forked processes take the jobs one at a time from the start of
    the block, and this process joins them at its end.  The workers inherit the jobs and
    the imported matplotlib: they start at once and only errors are sent back.  Otherwise
    the jobs run at the end of the block, one after the other.  The workers ignore Ctrl-C
    (a terminal sends it to them too): this process handles it, and the workers stop after
    the plot they are drawing; they also stop when this process is gone.
    """
    workers = min(len(jobs), workers or _available_cores())
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield
        for job in jobs:
            job()
        return
    import matplotlib.backends.backend_agg  # noqa: F401  (imported once here, not in every worker)
    import matplotlib.figure  # noqa: F401

    context = multiprocessing.get_context("fork")
    taken = context.Value("i", 0)  # jobs taken so far, by any process

    def take() -> int:
        with taken.get_lock():
            taken.value += 1
            return taken.value - 1

    parent = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # until a worker ignores it (it inherits the mask)

    def work(sender) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        sender.send(_run_jobs(jobs, lambda: take() if os.getppid() == parent else len(jobs)))

    processes = []
    try:
        for _ in range(workers - 1):
            receiver, sender = context.Pipe(duplex=False)
            worker = context.Process(target=work, args=(sender,))
            worker.start()
            sender.close()
            processes.append((worker, receiver))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    errors: dict[int, BaseException] = {}
    try:
        yield
        errors.update(_run_jobs(jobs, take))
    except BaseException:
        with taken.get_lock():
            taken.value = len(jobs)  # the workers stop after the plot they are drawing
        raise
    finally:
        for worker, receiver in processes:
            try:
                errors.update(receiver.recv())
            except EOFError:  # it died without a word
                errors[len(jobs)] = RuntimeError(f"a plot worker stopped (exit code {worker.exitcode})")
            worker.join()
    if errors:
        raise errors[min(errors)]


def _run_jobs(jobs: Sequence[Callable[[], Path]], take: Callable[[], int]) -> dict[int, Exception]:
    """Run ``jobs[take()]`` until none is left → index → error, for the jobs that failed."""
    from robustpath.util.fault_points import fault_point

    errors = {}
    while (index := take()) < len(jobs):
        fault_point("plot-job")
        try:
            jobs[index]()
        except Exception as error:  # noqa: BLE001  raised by _drawing, in job order
            errors[index] = error
    return errors


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
