"""The failure gallery's choice of test images, per task × corruption × severity × stage, from a run folder.

- **flipped**: the rows of misclassified.csv whose prediction changed from the clean
  prediction of the same task and image (``changed``): first those the corruption broke
  (right on clean, wrong corrupted), then the others, each in the file's order; at most
  ``max_images − max_images // 3`` per cell;
- **stayed right**: up to ``max_images // 3`` test images predicted right on clean and
  corrupted (predictions.csv), the true classes of the flipped ones first;
- retrieval cases carry the ids and labels of their VOTE_K nearest training images
  (predictions.csv ``neighbours``, ``neighbour_labels``), whose majority vote is the
  prediction.

Tasks with a class prediction take part (linear probe on all training images, retrieval,
zero-shot); the data-scale probes (``linear_probe@…``) and embedding drift do not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.results import TASK_ORDER
from robustpath.variants import Variant

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PREDICTIONS_FILE = "predictions.csv"
MISCLASSIFIED_FILE = "misclassified.csv"
KEY = ["task", "corruption", "severity", "stage"]
PREDICTION_COLUMNS = (*KEY, "sample_id", "true_label", "predicted_label", "neighbours", "neighbour_labels")
LIST_SEPARATOR = ";"


@dataclass(frozen=True)
class Case:
    """One test image in one cell: its labels (and, for retrieval, its nearest training images as (id, label))."""

    sample_id: str
    true_label: str
    clean_label: str
    corrupted_label: str
    neighbours: tuple[tuple[str, str], ...] = ()

    @property
    def flipped(self) -> bool:
        return self.clean_label != self.corrupted_label


@dataclass(frozen=True)
class Cell:
    """A task under one variant: ``n`` test images (None when unknown), ``flipped`` changed from clean,
    ``broken`` of them right on clean and wrong corrupted; the cases shown."""

    task: str
    variant: Variant
    n: int | None
    flipped: int
    broken: int
    shown_flipped: tuple[Case, ...]
    shown_right: tuple[Case, ...]


@dataclass
class RunFailures:
    """A run's failure gallery: cells in task order, then plan order; ``paths``: sample id → source path
    (misclassified.csv); ``problem``: why the run has no gallery (None when it has one)."""

    cells: list[Cell] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


def split_slots(max_images: int) -> tuple[int, int]:
    """``max_images`` per cell → (flipped images, images that stayed right)."""
    right = max(0, max_images) // 3
    return max(0, max_images) - right, right


def _read(path: Path, columns) -> "pd.DataFrame":
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=lambda name: name in columns)
    frame["severity"] = frame["severity"].astype(int)
    return frame


def load_run_failures(run_dir: Path, max_images: int, vote_k: int) -> RunFailures:
    """Read ``run_dir``/misclassified.csv and predictions.csv → the cases to show (see module docstring)."""
    from robustpath.errors import RobustPathError

    run_dir = Path(run_dir)
    if not (run_dir / MISCLASSIFIED_FILE).is_file():
        return RunFailures(problem=f"'{run_dir}' has no {MISCLASSIFIED_FILE} (a folder written by `robustpath eval` has)")
    try:
        misclassified = _read(run_dir / MISCLASSIFIED_FILE, (*KEY, "sample_id", "path", "true_label", "predicted_label",
                                                              "clean_predicted_label", "changed"))
        predictions = _read(run_dir / PREDICTIONS_FILE, PREDICTION_COLUMNS) if (run_dir / PREDICTIONS_FILE).is_file() else None
    except (OSError, ValueError, KeyError, RobustPathError) as exc:
        return RunFailures(problem=f"cannot read the per-sample files of '{run_dir}': {exc}")
    paths = {row.sample_id: row.path for row in misclassified.itertuples() if row.path}
    flips = misclassified[(misclassified.changed == "True") & _gallery_task(misclassified.task)]
    right_on_clean: dict[str, set[str]] = {}
    if predictions is not None:
        predictions = predictions[_gallery_task(predictions.task) & (predictions.predicted_label != "")]
        clean = predictions[(predictions.corruption == "none") & (predictions.predicted_label == predictions.true_label)]
        right_on_clean = {task: set(part.sample_id) for task, part in clean.groupby("task")}
    flips_by_cell = _by_cell(flips)
    rows_by_cell = _by_cell(predictions) if predictions is not None else None
    cells = []
    for key in _cell_keys(flips_by_cell, rows_by_cell):
        rows = rows_by_cell.get(key) if rows_by_cell is not None else None
        cells.append(_cell(key, flips_by_cell.get(key, flips.iloc[:0]), rows, right_on_clean.get(key[0], set()),
                           max_images, vote_k))
    return RunFailures(cells=cells, paths=paths)


def _gallery_task(tasks: "pd.Series") -> "pd.Series":
    return ~tasks.str.contains("@", regex=False)


def _by_cell(frame: "pd.DataFrame") -> dict[tuple, "pd.DataFrame"]:
    """(task, corruption, severity, stage) → the corrupted rows of that cell, in the file's order."""
    corrupted = frame[frame.corruption != "none"]
    return {tuple(key): part for key, part in corrupted.groupby(KEY, sort=False)}


def _cell_keys(flips: dict, rows: dict | None) -> list[tuple]:
    """Every cell: tasks in TASK_ORDER, variants in the files' order."""
    keys = list(rows if rows is not None else flips)
    order = {task: i for i, task in enumerate(TASK_ORDER)}
    return sorted(keys, key=lambda key: order.get(key[0], len(order)))  # stable: plan order within a task


def _cell(key: tuple, flipped, rows, right_on_clean: set[str], max_images: int, vote_k: int) -> Cell:
    task, corruption, severity, stage = key
    flipped_slots, right_slots = split_slots(max_images)
    broken = flipped[(flipped.clean_predicted_label == flipped.true_label) & (flipped.predicted_label != flipped.true_label)]
    ordered = [*broken.itertuples(), *flipped.drop(broken.index).itertuples()][:flipped_slots]
    right = []
    if rows is not None and right_slots:
        right = _stayed_right(rows, right_on_clean, [row.true_label for row in ordered], right_slots)
    neighbours = {}
    if rows is not None and "neighbours" in rows:
        neighbours = _neighbours(rows[rows.sample_id.isin({row.sample_id for row in [*ordered, *right]})], vote_k)
    shown = tuple(Case(r.sample_id, r.true_label, r.clean_predicted_label, r.predicted_label,
                       neighbours.get(r.sample_id, ())) for r in ordered)
    stayed = tuple(Case(r.sample_id, r.true_label, r.true_label, r.predicted_label, neighbours.get(r.sample_id, ()))
                   for r in right)
    return Cell(task, Variant(corruption, int(severity), stage), None if rows is None else len(rows), len(flipped),
                len(broken), shown, stayed)


def _neighbours(rows: "pd.DataFrame", vote_k: int) -> dict[str, tuple[tuple[str, str], ...]]:
    found = {}
    for row in rows.itertuples():
        ids = row.neighbours.split(LIST_SEPARATOR)[:vote_k] if row.neighbours else []
        labels = row.neighbour_labels.split(LIST_SEPARATOR)[:vote_k] if row.neighbour_labels else []
        found[row.sample_id] = tuple(zip(ids, labels))
    return found


def _stayed_right(rows, right_on_clean: set[str], classes: list[str], slots: int) -> list:
    """Up to ``slots`` rows right on clean and under this variant: one of each class in ``classes`` first."""
    right = rows[(rows.predicted_label == rows.true_label) & rows.sample_id.isin(right_on_clean)]
    chosen: dict[str, object] = {}
    for wanted in [*dict.fromkeys(classes), None]:
        for row in right.itertuples():
            if len(chosen) >= slots:
                break
            if row.sample_id in chosen or (wanted is not None and row.true_label != wanted):
                continue
            chosen[row.sample_id] = row
            if wanted is not None:
                break
    return list(chosen.values())
