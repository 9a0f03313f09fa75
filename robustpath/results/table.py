"""The tidy results table: the single source of every output format.

One row per (run, model, dataset, task, samples_per_class, repeat, metric,
corruption, severity, stage).  Clean rows have corruption "none", severity 0 and
stage "none".  Columns, in order (schema version 3):

- run_id, model, dataset, task, metric, corruption, severity, stage;
- value, ci_low, ci_high: the metric and its 95% percentile-bootstrap interval
  over the n test images;  n;  higher_is_better;
- drop_from_clean = value − clean value (derived; negative = worse when higher
  is better);  relative_retention = value / clean value (derived);
- drop_ci_low, drop_ci_high: 95% paired-bootstrap interval of the drop (the
  same resampled images for clean and corrupted); 0 on clean rows, NaN when
  unknown;  drop_p_value: two-sided paired-bootstrap p-value of the drop
  (robustpath.tasks.metrics; 1 on clean rows, NaN when unknown);
  drop_significant: drop_p_value < 0.05 (derived; for tables without p-values,
  read from older files: the interval excludes 0);
- samples_per_class: training images per class of the linear probe (0 = all;
  always 0 for other tasks);  repeat: repetition of a data-scale subsample
  (0 when samples_per_class is 0);
- schema_version: 3 on every row.

Version 1 tables (without the last seven columns) and version 2 tables (without
drop_p_value) are read by load_results_table and upgraded: samples_per_class =
repeat = 0, missing drop intervals and p-values NaN.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.errors import DataError
from robustpath.tasks.metrics import SIGNIFICANCE, MetricValue
from robustpath.tasks.registry import list_task_infos, lower_is_better_metrics, primary_metrics
from robustpath.variants import Variant

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SCHEMA_VERSION = 3
SCHEMA_COLUMNS = (
    "run_id", "model", "dataset", "task", "metric", "corruption", "severity", "stage",
    "value", "ci_low", "ci_high", "n", "higher_is_better",
)
DERIVED_COLUMNS = ("drop_from_clean", "relative_retention", "drop_significant")
PAIRED_COLUMNS = ("drop_ci_low", "drop_ci_high", "drop_p_value")
SCALE_COLUMNS = ("samples_per_class", "repeat")
RESULT_COLUMNS = (
    *SCHEMA_COLUMNS, "drop_from_clean", "relative_retention", *PAIRED_COLUMNS, "drop_significant",
    *SCALE_COLUMNS, "schema_version",
)
ADDED_IN_VERSION_2 = ("drop_ci_low", "drop_ci_high", "drop_significant", *SCALE_COLUMNS, "schema_version")
ADDED_IN_VERSION_3 = ("drop_p_value",)
# Derived from the task registry (robustpath.tasks.registry), where each task declares its metrics.
LOWER_IS_BETTER: frozenset[str] = lower_is_better_metrics()
TASK_ORDER = tuple(info.name for info in list_task_infos(group_shift=False))
PRIMARY_METRIC = primary_metrics(group_shift=False)
# Tasks that measure whether a corruption can be noticed, not what it costs: left out of the
# robustness summaries (retention, normalised AUC, ranking), reported beside the harm instead.
DETECTION_TASKS = frozenset(info.name for info in list_task_infos() if info.detection)
RUN_KEYS = ["run_id", "model", "dataset", "task", "metric"]  # one metric of one run (summaries)
GROUP_COLUMNS = ["run_id", "model", "dataset", "task", "samples_per_class", "repeat", "metric"]
VARIANT_COLUMNS = ["corruption", "severity", "stage"]


def metric_rows(
    run_id: str, model: str, dataset: str, task: str, variant: Variant, values: dict[str, MetricValue],
    *, samples_per_class: int = 0, repeat: int = 0,
) -> list[dict]:
    """Rows in the schema for one task evaluated on one variant."""
    return [
        {
            "run_id": run_id, "model": model, "dataset": dataset, "task": task, "metric": metric,
            "corruption": variant.corruption, "severity": variant.severity, "stage": variant.stage,
            "value": value.value, "ci_low": value.ci_low, "ci_high": value.ci_high, "n": value.n,
            "higher_is_better": metric not in LOWER_IS_BETTER,
            "drop_ci_low": value.drop_ci_low, "drop_ci_high": value.drop_ci_high, "drop_p_value": value.drop_p_value,
            "samples_per_class": int(samples_per_class), "repeat": int(repeat),
        }
        for metric, value in values.items()
    ]


def build_results_table(rows: list[dict]) -> "pd.DataFrame":
    """Rows → DataFrame with every column of RESULT_COLUMNS, in order."""
    import pandas as pd

    measured = [c for c in RESULT_COLUMNS if c not in DERIVED_COLUMNS and c != "schema_version"]
    table = pd.DataFrame(rows, columns=measured)
    return _finish(table)


def _finish(table: "pd.DataFrame") -> "pd.DataFrame":
    for column in ("severity", "n", "samples_per_class", "repeat"):
        table[column] = table[column].astype("int64")
    table["higher_is_better"] = table["higher_is_better"].astype(bool)
    for column in ("value", "ci_low", "ci_high", *PAIRED_COLUMNS):
        table[column] = table[column].astype(float)
    table = add_derived_columns(table)
    table["schema_version"] = SCHEMA_VERSION
    return table[list(RESULT_COLUMNS)]


def add_derived_columns(table: "pd.DataFrame") -> "pd.DataFrame":
    """drop_from_clean, relative_retention and drop_significant (p < 0.05, or the interval excludes 0
    where no p-value is known), matched on GROUP_COLUMNS."""
    import numpy as np

    group = [c for c in GROUP_COLUMNS if c in table]
    clean = table[table["corruption"] == "none"][group + ["value"]].rename(columns={"value": "clean_value"})
    clean = clean.drop_duplicates(subset=group)
    merged = table.drop(columns=[c for c in DERIVED_COLUMNS if c in table]).merge(clean, on=group, how="left")
    merged["drop_from_clean"] = merged["value"] - merged["clean_value"]
    with np.errstate(divide="ignore", invalid="ignore"):
        merged["relative_retention"] = np.where(
            merged["clean_value"] != 0, merged["value"] / merged["clean_value"], np.nan
        )
    if "drop_ci_low" in merged:
        by_interval = (merged["drop_ci_low"] > 0) | (merged["drop_ci_high"] < 0)
        p_value = merged["drop_p_value"] if "drop_p_value" in merged else np.nan
        merged["drop_significant"] = np.where(np.isfinite(p_value), p_value < SIGNIFICANCE, by_interval)
    return merged.drop(columns=["clean_value"])


def upgrade_results_table(table: "pd.DataFrame", source: str = "results table") -> "pd.DataFrame":
    """A version-1, 2 or 3 table (e.g. read from CSV) → a version-3 table."""
    version = int(table["schema_version"].iloc[0]) if "schema_version" in table and len(table) else 1
    if version > SCHEMA_VERSION:
        raise DataError(
            f"{source} has results schema version {version}; this robustpath reads up to {SCHEMA_VERSION}: upgrade robustpath"
        )
    missing = [c for c in SCHEMA_COLUMNS if c not in table]
    if missing:
        raise DataError(f"{source} is not a robustpath results table: missing columns {', '.join(missing)}")
    table = table.copy()
    for column in SCALE_COLUMNS:
        if column not in table:
            table[column] = 0
    for column in PAIRED_COLUMNS:
        if column not in table:
            table[column] = float("nan")
    for column in ("run_id", "model", "dataset", "task", "metric", "corruption", "stage"):
        table[column] = table[column].astype(str)
    return _finish(table)


def load_results_table(path: Path) -> "pd.DataFrame":
    """Read a results.csv (schema version 1, 2 or 3) as a version-3 table."""
    import pandas as pd

    path = Path(path)
    try:
        _check_last_line(path)
        table = pd.read_csv(path, keep_default_na=False, na_values=["", "NaN", "nan"])
    except FileNotFoundError:
        raise DataError(f"'{path}' does not exist") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read '{path}' as CSV: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
    _check_complete_rows(table, f"'{path}'")
    return upgrade_results_table(table, source=f"'{path}'")


_TRUNCATED = "(truncated?); re-run the evaluation or restore the file"


def _check_last_line(path: Path) -> None:
    """robustpath ends every results.csv with a newline: a file cut short does not."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            raise DataError(f"'{path}' is empty {_TRUNCATED}")
        handle.seek(-1, 2)
        if handle.read(1) != b"\n":
            raise DataError(f"'{path}' ends in the middle of a line {_TRUNCATED}")


def _check_complete_rows(table: "pd.DataFrame", source: str) -> None:
    """Every row names its run, task, metric and variant, with whole-number severity and n."""
    import pandas as pd

    if table.empty:
        raise DataError(f"{source} holds no result rows {_TRUNCATED}")
    named = [c for c in SCHEMA_COLUMNS if c in table and c not in ("value", "ci_low", "ci_high")]
    bad = table[named].isna().any(axis=1)
    for column in ("severity", "n", *SCALE_COLUMNS):
        if column in table:
            numbers = pd.to_numeric(table[column], errors="coerce")
            bad |= numbers.isna() | (numbers != numbers.round())
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + 2  # 1-based, after the header
        raise DataError(f"{source} line {line} is incomplete or malformed {_TRUNCATED}")


def main_rows(table: "pd.DataFrame") -> "pd.DataFrame":
    """Rows of the main evaluation: the probe on all training images (samples_per_class 0), without the
    group-shift tasks (robustpath.tasks.group_shifts: summarised by robustpath.tasks.group_summary)."""
    from robustpath.tasks.group_shifts import group_tasks

    return table[(table["samples_per_class"] == 0) & (table["repeat"] == 0) & ~table["task"].isin(group_tasks())]
