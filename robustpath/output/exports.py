"""Per-sample exports of a run: predictions.csv, misclassified.csv and (optionally) embeddings/.

predictions.csv has one row per (task, variant, test image): the true label, the
predicted label, the class probabilities ``p_<class>`` where the task has them
(linear probe, zero-shot), the ids and labels of the nearest training images for
retrieval (``neighbours``, ``neighbour_labels``: ``;``-separated, nearest first)
and, for the label-free tasks (no prediction), the image's value: ``cosine_similarity``
(embedding drift), ``identity_rank`` (identity retrieval: the rank of its own clean
embedding among the clean test embeddings, 1 = nearest) and ``ood_score``
(detectability: mean cosine distance to the 10 nearest clean training embeddings).
misclassified.csv keeps the rows whose prediction is wrong or differs from the
clean prediction of the same task and image, with the source path of the image.
Both are always written; the embeddings only with ``--save-embeddings``
(robustpath.embedding.saved).  Everything is written atomically.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from robustpath.embedding.saved import EMBEDDINGS_DIR
from robustpath.errors import UsageError, unknown_name_message
from robustpath.tasks.registry import list_task_infos
from robustpath.variants import Variant

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from robustpath.embedding.engine import Embeddings
    from robustpath.tasks.outcomes import Outcomes

from robustpath.output.layout import COMPRESSED_SUFFIX, MISCLASSIFIED_FILE, PREDICTIONS_FILE  # noqa: E402
from robustpath.spec.run_spec import EMBEDDING_DTYPES  # noqa: E402  (the option's choices have one owner)
FLOAT_FORMAT = "%.8g"
LIST_SEPARATOR = ";"
VARIANT_COLUMNS = ["corruption", "severity", "stage"]
BUILT_COLUMNS = ("predicted_label", "p_{class}", "neighbours", "neighbour_labels")  # from predictions / neighbours
# per-sample values of label-free tasks: the other export columns the tasks declare (robustpath.tasks.registry)
PER_SAMPLE_COLUMNS = tuple(dict.fromkeys(
    column for info in list_task_infos() for column in info.export_columns if column not in BUILT_COLUMNS))


def check_export_options(spec) -> tuple[bool, str]:
    """(save the embeddings?, their dtype) from a RunSpec; UsageError for a bad or useless dtype."""
    save = bool(getattr(spec, "save_embeddings", False))
    dtype = str(getattr(spec, "embeddings_dtype", "float32"))
    if dtype not in EMBEDDING_DTYPES:
        raise UsageError(unknown_name_message("embeddings dtype", dtype, EMBEDDING_DTYPES))
    if dtype != "float32" and not save:
        raise UsageError(f"--embeddings-dtype {dtype} needs --save-embeddings")
    return save, dtype


@dataclass(frozen=True)
class SampleTable:
    """The dataset's samples in dataset order: ids, source paths (None in memory), label indices, splits."""

    sample_ids: tuple[str, ...]
    paths: tuple[str | None, ...]
    labels: np.ndarray
    splits: np.ndarray
    classes: tuple[str, ...]
    groups: np.ndarray | None = None  # (N,) str, data with groups only (robustpath.data.groups)
    pair_ids: np.ndarray | None = None

    @classmethod
    def from_dataset(cls, dataset) -> "SampleTable":
        return cls(tuple(dataset.sample_ids), tuple(dataset.paths), np.asarray(dataset.labels),
                   np.asarray(dataset.splits), tuple(dataset.classes),
                   getattr(dataset, "groups", None), getattr(dataset, "pair_ids", None))

    def frame(self) -> "pd.DataFrame":
        """sample_id, path, label (class name), label_index, split (+ group, pair_id for data with groups) —
        one row per sample, dataset order."""
        import pandas as pd

        frame = pd.DataFrame({
            "sample_id": list(self.sample_ids),
            "path": ["" if path is None else str(path) for path in self.paths],
            "label": [self.classes[k] for k in self.labels.tolist()],
            "label_index": self.labels.astype(np.int64),
            "split": [str(split) for split in self.splits],
        })
        if self.groups is not None:
            frame["group"] = [str(group) for group in self.groups]
            frame["pair_id"] = [str(pair) for pair in self.pair_ids] if self.pair_ids is not None else ""
        return frame


@dataclass
class RunExports:
    """What a run needs to write its per-sample exports (held by RunResult.exports).

    variants: the clean variant first, then the corrupted ones in plan order;
    embeddings / text_embeddings: set only when the embeddings are to be saved
    (``embeddings_dtype`` "float32" or "float16").
    """

    samples: SampleTable
    test_indices: np.ndarray
    train_indices: np.ndarray
    variants: list[Variant]
    embeddings: "Embeddings | None" = None
    text_embeddings: np.ndarray | None = None
    embeddings_dtype: str = "float32"
    predictions: str = "all"  # robustpath.output.prediction_files: all, changed or none
    compress: bool = False  # gzip predictions.csv and misclassified.csv

    def file_names(self) -> dict[str, str | None]:
        """"predictions" / "misclassified" → the file name written (None with predictions "none")."""
        suffix = COMPRESSED_SUFFIX if self.compress else ""
        if self.predictions == "none":
            return {"predictions": None, "misclassified": None}
        return {"predictions": PREDICTIONS_FILE + suffix, "misclassified": MISCLASSIFIED_FILE + suffix}


def predictions_frame(exports: RunExports, outcomes: "Mapping[tuple[str, str], Outcomes]") -> "pd.DataFrame":
    """One row per (task key, variant, test image), in outcome order (see module docstring)."""
    import pandas as pd

    samples = exports.samples
    classes = np.asarray(samples.classes, dtype=object)
    test_ids = np.asarray(samples.sample_ids, dtype=object)[exports.test_indices]
    true_labels = classes[samples.labels[exports.test_indices]]
    gallery_ids = np.asarray(samples.sample_ids, dtype=object)[exports.train_indices]
    gallery_labels = classes[samples.labels[exports.train_indices]]
    variants = {variant.key: variant for variant in exports.variants}
    frames = []
    for (task_key, variant_key), outcome in outcomes.items():
        variant = variants[variant_key]
        columns: dict[str, object] = {
            "task": task_key, "corruption": variant.corruption, "severity": variant.severity, "stage": variant.stage,
            "sample_id": test_ids, "true_label": true_labels,
        }
        if outcome.predictions is not None:
            columns["predicted_label"] = classes[np.asarray(outcome.predictions, dtype=np.int64)]
        if outcome.probabilities is not None:
            for k, name in enumerate(samples.classes):
                columns[f"p_{name}"] = np.asarray(outcome.probabilities, dtype=np.float64)[:, k]
        if outcome.neighbours is not None:
            columns["neighbours"] = _joined(gallery_ids[outcome.neighbours])
            columns["neighbour_labels"] = _joined(gallery_labels[outcome.neighbours])
        for name in PER_SAMPLE_COLUMNS:
            if name in outcome.per_sample:
                columns[name] = np.asarray(outcome.per_sample[name], dtype=np.float64)
        frames.append(pd.DataFrame(columns))
    if not frames:
        return pd.DataFrame(columns=["task", *VARIANT_COLUMNS, "sample_id", "true_label", "predicted_label"])
    table = pd.concat(frames, ignore_index=True)
    if "predicted_label" not in table:
        table["predicted_label"] = np.nan
    first = ["task", *VARIANT_COLUMNS, "sample_id", "true_label", "predicted_label"]
    probabilities = [f"p_{name}" for name in samples.classes if f"p_{name}" in table]
    rest = [name for name in ("neighbours", "neighbour_labels", *PER_SAMPLE_COLUMNS) if name in table]
    return table[first + probabilities + rest]


def _joined(values: np.ndarray) -> list[str]:
    """(N, k) strings → N strings joined by LIST_SEPARATOR."""
    return [LIST_SEPARATOR.join(row) for row in values.tolist()]


def misclassified_frame(predictions: "pd.DataFrame", samples: SampleTable) -> "pd.DataFrame":
    """The rows of ``predictions`` with a prediction that is wrong or differs from the clean one.

    Columns: task, corruption, severity, stage, sample_id, path, true_label,
    predicted_label, clean_predicted_label, wrong, changed.
    """
    predicted = predictions[predictions.predicted_label.notna()]
    clean = predicted[predicted.corruption == "none"][["task", "sample_id", "predicted_label"]]
    clean = clean.rename(columns={"predicted_label": "clean_predicted_label"})
    merged = predicted.merge(clean, on=["task", "sample_id"], how="left", validate="many_to_one")
    merged["wrong"] = merged.predicted_label != merged.true_label
    merged["changed"] = merged.predicted_label != merged.clean_predicted_label
    paths = dict(zip(samples.sample_ids, ("" if p is None else str(p) for p in samples.paths)))
    merged["path"] = merged.sample_id.map(paths)
    columns = ["task", *VARIANT_COLUMNS, "sample_id", "path", "true_label", "predicted_label",
               "clean_predicted_label", "wrong", "changed"]
    return merged.loc[merged.wrong | merged.changed, columns].reset_index(drop=True)


def write_exports(exports: RunExports, outcomes: "Mapping[tuple[str, str], Outcomes]", out_dir: Path) -> dict[str, Path]:
    """Write predictions.csv, misclassified.csv (as ``exports.predictions`` and ``exports.compress`` say,
    piece by piece: robustpath.output.prediction_files) and, when requested, embeddings/ → name → path."""
    from robustpath.output.prediction_files import write_predictions

    out_dir = Path(out_dir)
    paths = write_predictions(exports, outcomes, out_dir, mode=exports.predictions, compress=exports.compress)
    if exports.embeddings is not None:
        from robustpath.embedding.saved import write_embeddings

        paths["embeddings"] = write_embeddings(exports, out_dir / EMBEDDINGS_DIR)
    return paths
