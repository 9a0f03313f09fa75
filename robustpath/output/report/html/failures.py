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

from robustpath.results.table import TASK_ORDER
from robustpath.variants import Variant

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

from robustpath.output.layout import MISCLASSIFIED_FILE, PREDICTIONS_FILE  # noqa: E402
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
    run_dir = Path(run_dir)
    if not (run_dir / MISCLASSIFIED_FILE).is_file():
        return RunFailures(problem=f"'{run_dir}' has no {MISCLASSIFIED_FILE} (a folder written by `robustpath eval` has)")
    try:
        misclassified, predictions = _read_run_files(run_dir)
    except ValueError as exc:
        return RunFailures(problem=f"cannot read the per-sample files of '{run_dir}': {exc}")
    with_path = misclassified[misclassified.path != ""].drop_duplicates("sample_id")
    flips = misclassified[(misclassified.changed == "True") & (misclassified.corruption != "none")]
    flips = flips.assign(broken=(flips.clean_predicted_label == flips.true_label) & (flips.predicted_label != flips.true_label))
    cells = _cells(flips, predictions, max_images)
    if predictions is not None and "neighbours" in predictions:
        cells = _with_neighbours(cells, predictions[predictions.corruption != "none"], vote_k)
    return RunFailures(cells=cells, paths=dict(zip(with_path.sample_id, with_path.path)))


def _read_run_files(run_dir: Path) -> tuple["pd.DataFrame", "pd.DataFrame | None"]:
    """misclassified.csv and predictions.csv (None when absent), rows of the gallery's tasks only;
    ValueError when a file cannot be read."""
    from robustpath.errors import RobustPathError

    columns = (*KEY, "sample_id", "path", "true_label", "predicted_label", "clean_predicted_label", "changed")
    try:
        misclassified = _read(run_dir / MISCLASSIFIED_FILE, columns)
        predictions = _read(run_dir / PREDICTIONS_FILE, PREDICTION_COLUMNS) if (run_dir / PREDICTIONS_FILE).is_file() else None
    except (OSError, ValueError, KeyError, RobustPathError) as exc:
        raise ValueError(str(exc)) from None
    misclassified = misclassified[_gallery_task(misclassified.task)]
    if predictions is not None:
        predictions = predictions[_gallery_task(predictions.task) & (predictions.predicted_label != "")]
    return misclassified, predictions


def _cells(flips: "pd.DataFrame", predictions: "pd.DataFrame | None", max_images: int) -> list[Cell]:
    """Every cell (tasks in TASK_ORDER, variants in the files' order) with its counts and chosen cases."""
    flipped_slots, right_slots = split_slots(max_images)
    shown = _first_flips(flips, flipped_slots)
    right = _right_candidates(predictions, right_slots) if predictions is not None and right_slots else {}
    counts = flips.groupby(KEY, sort=False).agg(flipped=("broken", "size"), broken=("broken", "sum"))
    sizes = predictions[predictions.corruption != "none"].groupby(KEY, sort=False).size() if predictions is not None else None
    keys = list(sizes.index if sizes is not None else counts.index)
    order = {task: i for i, task in enumerate(TASK_ORDER)}
    keys.sort(key=lambda key: order.get(key[0], len(order)))  # stable: plan order within a task
    cells = []
    for key in keys:
        chosen = shown.get(key, [])
        stayed = _pick_right(right.get(key, []), [row["true_label"] for row in chosen], right_slots)
        flipped, broken = (int(v) for v in counts.loc[key]) if key in counts.index else (0, 0)
        cells.append(Cell(key[0], Variant(key[1], int(key[2]), key[3]), None if sizes is None else int(sizes[key]),
                          flipped, broken, tuple(_case(row, row["clean_predicted_label"]) for row in chosen),
                          tuple(_case(row, row["true_label"]) for row in stayed)))
    return cells


def _gallery_task(tasks: "pd.Series") -> "pd.Series":
    return ~tasks.str.contains("@", regex=False)


def _grouped_records(frame: "pd.DataFrame") -> dict[tuple, list[dict]]:
    """(task, corruption, severity, stage) → the rows of ``frame`` in that cell, as dicts, in frame order."""
    grouped: dict[tuple, list[dict]] = {}
    for row in frame.to_dict("records"):
        grouped.setdefault((row["task"], row["corruption"], row["severity"], row["stage"]), []).append(row)
    return grouped


def _first_flips(flips: "pd.DataFrame", slots: int) -> dict[tuple, list[dict]]:
    """Per cell the first ``slots`` flips: broken ones first, each group in file order."""
    ordered = flips.assign(position=range(len(flips))).sort_values(["broken", "position"], ascending=[False, True],
                                                                    kind="stable")
    return _grouped_records(ordered.groupby(KEY, sort=False).head(slots))


def _right_candidates(predictions: "pd.DataFrame", slots: int) -> dict[tuple, list[dict]]:
    """Per cell the rows right on clean and corrupted that _pick_right may take: the first of each
    class and the first ``slots`` overall, in file order."""
    clean = predictions[(predictions.corruption == "none") & (predictions.predicted_label == predictions.true_label)]
    right = predictions[(predictions.corruption != "none") & (predictions.predicted_label == predictions.true_label)]
    right = right.merge(clean[["task", "sample_id"]], on=["task", "sample_id"], how="inner", sort=False)
    first_of_class = right.groupby([*KEY, "true_label"], sort=False).cumcount() == 0
    first_overall = right.groupby(KEY, sort=False).cumcount() < slots
    return _grouped_records(right[first_of_class | first_overall])


def _pick_right(candidates: list[dict], classes: list[str], slots: int) -> list[dict]:
    """Up to ``slots`` candidates: one of each class in ``classes`` first, then the first others."""
    chosen: dict[str, dict] = {}
    for wanted in dict.fromkeys(classes):
        match = next((row for row in candidates if row["true_label"] == wanted), None)
        if match is not None and len(chosen) < slots:
            chosen[match["sample_id"]] = match
    for row in candidates:
        if len(chosen) >= slots:
            break
        chosen.setdefault(row["sample_id"], row)
    return list(chosen.values())


def _case(row: dict, clean_label: str) -> Case:
    return Case(row["sample_id"], row["true_label"], clean_label, row["predicted_label"])


def _with_neighbours(cells: list[Cell], rows: "pd.DataFrame", vote_k: int) -> list[Cell]:
    """The cells with each retrieval case's ``vote_k`` nearest training images (id, label) from predictions.csv."""
    import dataclasses

    import pandas as pd

    wanted = pd.DataFrame([(c.task, c.variant.corruption, c.variant.severity, c.variant.stage, case.sample_id)
                           for c in cells for case in (*c.shown_flipped, *c.shown_right)],
                          columns=[*KEY, "sample_id"])
    if wanted.empty:
        return cells
    found = rows.merge(wanted, on=[*KEY, "sample_id"], how="inner")
    lists = {
        (r.task, r.corruption, r.severity, r.stage, r.sample_id): tuple(zip(
            r.neighbours.split(LIST_SEPARATOR)[:vote_k] if r.neighbours else [],
            r.neighbour_labels.split(LIST_SEPARATOR)[:vote_k] if r.neighbour_labels else []))
        for r in found.itertuples()
    }

    def add(cell: Cell, cases: tuple[Case, ...]) -> tuple[Case, ...]:
        key = (cell.task, cell.variant.corruption, cell.variant.severity, cell.variant.stage)
        return tuple(dataclasses.replace(case, neighbours=lists.get((*key, case.sample_id), ())) for case in cases)

    return [dataclasses.replace(cell, shown_flipped=add(cell, cell.shown_flipped), shown_right=add(cell, cell.shown_right))
            for cell in cells]
