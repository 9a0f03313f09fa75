"""predictions.csv and misclassified.csv written piece by piece: memory bounded by one (task, variant).

``write_predictions`` writes what robustpath.output.exports.write_exports always wrote
(the same bytes for ``mode="all"``) without building one table of every row:
each (task, variant) becomes a block of rows with the columns of the whole file,
appended to the file, and its misclassified rows are found against the clean
outcomes of the same task.  Modes (``--predictions``):

- ``all``: every (task, variant, test image) row (the default);
- ``changed``: only rows whose predicted label differs from the clean prediction
  of the same task and image (tasks without predictions, e.g. embedding drift,
  write none); misclassified.csv is the same as with ``all``;
- ``none``: neither file.

With ``compress`` the files are gzip-compressed (``.csv.gz``, mtime 0: the same
bytes for the same rows).  Files appear atomically (robustpath.atomic).
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from robustpath.output.layout import COMPRESSED_SUFFIX
from robustpath.output.exports import (
    FLOAT_FORMAT, MISCLASSIFIED_FILE, PER_SAMPLE_COLUMNS, PREDICTIONS_FILE, VARIANT_COLUMNS, RunExports,
    predictions_frame,
)

if TYPE_CHECKING:  # pragma: no cover
    from robustpath.tasks.outcomes import Outcomes

from robustpath.spec.run_spec import PREDICTION_MODES  # noqa: E402  (the option's choices have one owner)
MISCLASSIFIED_COLUMNS = ["task", *VARIANT_COLUMNS, "sample_id", "path", "true_label", "predicted_label",
                         "clean_predicted_label", "wrong", "changed"]


def prediction_columns(exports: RunExports, outcomes: "Mapping[tuple[str, str], Outcomes]") -> list[str]:
    """The columns of the whole predictions file, in predictions_frame's order."""
    has = {name: any(getattr(o, name) is not None for o in outcomes.values())
           for name in ("probabilities", "neighbours")}
    columns = ["task", *VARIANT_COLUMNS, "sample_id", "true_label", "predicted_label"]
    if has["probabilities"]:
        columns += [f"p_{name}" for name in exports.samples.classes]
    if has["neighbours"]:
        columns += ["neighbours", "neighbour_labels"]
    columns += [name for name in PER_SAMPLE_COLUMNS if any(name in o.per_sample for o in outcomes.values())]
    return columns


def _piece(exports: RunExports, key: tuple[str, str], outcome, columns: list[str]):
    frame = predictions_frame(exports, {key: outcome})
    return frame.reindex(columns=columns)  # the columns of other tasks stay empty, as in one table


def _misclassified(piece, clean_labels: np.ndarray, paths: dict) -> "object":
    """The rows of ``piece`` whose prediction is wrong or differs from ``clean_labels`` (same images, same order)."""
    frame = piece[["task", *VARIANT_COLUMNS, "sample_id", "true_label", "predicted_label"]].copy()
    frame["clean_predicted_label"] = clean_labels
    frame["wrong"] = frame.predicted_label != frame.true_label
    frame["changed"] = frame.predicted_label != frame.clean_predicted_label
    frame["path"] = frame.sample_id.map(paths)
    return frame.loc[frame.wrong | frame.changed, MISCLASSIFIED_COLUMNS]


def write_predictions(
    exports: RunExports, outcomes: "Mapping[tuple[str, str], Outcomes]", out_dir: Path, *, mode: str = "all",
    compress: bool = False,
) -> dict[str, Path]:
    """Write predictions.csv and misclassified.csv (``mode``, see the module docstring) → name → path."""
    if mode not in PREDICTION_MODES:
        raise ValueError(f"mode must be one of {PREDICTION_MODES}, got '{mode}'")
    if mode == "none":
        return {}
    columns = prediction_columns(exports, outcomes)
    suffix = COMPRESSED_SUFFIX if compress else ""
    targets = {"predictions": Path(out_dir) / (PREDICTIONS_FILE + suffix),
               "misclassified": Path(out_dir) / (MISCLASSIFIED_FILE + suffix)}
    existing = {name for name, path in targets.items() if path.exists()}
    try:
        _write_pieces(exports, outcomes, targets, mode, compress, columns)
    except BaseException:
        for name, path in targets.items():  # the other file, published before this one failed
            if name not in existing and path.is_file():
                path.unlink()
        raise
    return targets


def _write_pieces(exports, outcomes, targets: dict[str, Path], mode: str, compress: bool, columns: list[str]) -> None:
    from robustpath.variants import CLEAN_VARIANT

    paths = dict(zip(exports.samples.sample_ids, ("" if p is None else str(p) for p in exports.samples.paths)))
    with _CsvPieces(targets["predictions"], compress) as predictions, \
            _CsvPieces(targets["misclassified"], compress) as misclassified:
        predictions.header(columns)
        misclassified.header(MISCLASSIFIED_COLUMNS)
        for key, outcome in outcomes.items():
            piece = _piece(exports, key, outcome, columns)
            if outcome.predictions is None:
                if mode == "all":
                    predictions.rows(piece, float_format=FLOAT_FORMAT)
                continue
            clean_labels = _clean_labels(exports, outcomes.get((key[0], CLEAN_VARIANT.key)), len(piece))
            if mode == "all":
                predictions.rows(piece, float_format=FLOAT_FORMAT)
            elif key[1] != CLEAN_VARIANT.key:
                predictions.rows(piece.loc[piece.predicted_label.to_numpy() != clean_labels], float_format=FLOAT_FORMAT)
            misclassified.rows(_misclassified(piece, clean_labels, paths))


def _clean_labels(exports: RunExports, clean, count: int) -> np.ndarray:
    """(count,) object: the clean predicted class names of a task's test images (NaN without clean outcomes)."""
    if clean is None or clean.predictions is None:
        return np.full(count, np.nan, dtype=object)
    return np.asarray(exports.samples.classes, dtype=object)[np.asarray(clean.predictions, dtype=np.int64)]


class _CsvPieces:
    """A CSV file written in pieces (robustpath.atomic.open_atomic), gzip-compressed with ``compress``."""

    def __init__(self, path: Path, compress: bool) -> None:
        self.path = Path(path)
        self.compress = compress

    def __enter__(self) -> "_CsvPieces":
        from robustpath.util.atomic import open_atomic

        self._context = open_atomic(self.path)
        raw = self._context.__enter__()
        self.stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") if self.compress else raw
        return self

    def header(self, columns: list[str]) -> None:
        import pandas as pd

        self._write(pd.DataFrame(columns=columns).to_csv(index=False))

    def rows(self, frame, **options) -> None:
        if len(frame):
            self._write(frame.to_csv(index=False, header=False, **options))

    def _write(self, text: str) -> None:
        self.stream.write(text.encode("utf-8"))

    def __exit__(self, kind, error, trace):
        if self.compress:
            self.stream.close()  # writes the gzip trailer; the file itself stays open
        return self._context.__exit__(kind, error, trace)
