"""The tidy results table: the single source of every output format.

One row per (run, model, dataset, task, metric, corruption, severity, stage).
Clean rows have corruption "none", severity 0 and stage "none".  Derived
columns are computed from the table itself:

- drop_from_clean = value − clean value (negative = worse for higher-is-better);
- relative_retention = value / clean value.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from robustpath.metrics import MetricValue
from robustpath.variants import Variant

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SCHEMA_VERSION = 1
SCHEMA_COLUMNS = (
    "run_id", "model", "dataset", "task", "metric", "corruption", "severity", "stage",
    "value", "ci_low", "ci_high", "n", "higher_is_better",
)
DERIVED_COLUMNS = ("drop_from_clean", "relative_retention")
LOWER_IS_BETTER: frozenset[str] = frozenset()
_GROUP = ["run_id", "model", "dataset", "task", "metric"]


def metric_rows(
    run_id: str, model: str, dataset: str, task: str, variant: Variant, values: dict[str, MetricValue]
) -> list[dict]:
    """Rows in the schema for one task evaluated on one variant."""
    return [
        {
            "run_id": run_id, "model": model, "dataset": dataset, "task": task, "metric": metric,
            "corruption": variant.corruption, "severity": variant.severity, "stage": variant.stage,
            "value": value.value, "ci_low": value.ci_low, "ci_high": value.ci_high, "n": value.n,
            "higher_is_better": metric not in LOWER_IS_BETTER,
        }
        for metric, value in values.items()
    ]


def build_results_table(rows: list[dict]) -> "pd.DataFrame":
    """Rows → DataFrame with the schema columns (in order) plus derived columns."""
    import pandas as pd

    table = pd.DataFrame(rows, columns=list(SCHEMA_COLUMNS))
    table["severity"] = table["severity"].astype("int64")
    table["n"] = table["n"].astype("int64")
    table["higher_is_better"] = table["higher_is_better"].astype(bool)
    return add_derived_columns(table)


def add_derived_columns(table: "pd.DataFrame") -> "pd.DataFrame":
    """Add drop_from_clean and relative_retention, matched on run/model/dataset/task/metric."""
    import numpy as np

    clean = table[table["corruption"] == "none"][_GROUP + ["value"]].rename(columns={"value": "clean_value"})
    merged = table.drop(columns=[c for c in DERIVED_COLUMNS if c in table], errors="ignore").merge(
        clean, on=_GROUP, how="left"
    )
    merged["drop_from_clean"] = merged["value"] - merged["clean_value"]
    with np.errstate(divide="ignore", invalid="ignore"):
        merged["relative_retention"] = np.where(
            merged["clean_value"] != 0, merged["value"] / merged["clean_value"], np.nan
        )
    return merged.drop(columns=["clean_value"])
