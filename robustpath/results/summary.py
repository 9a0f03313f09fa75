"""A compact, machine-readable summary of one run (``robustpath eval --json``)."""
from __future__ import annotations


def run_summary(result, outputs: dict[str, str]) -> dict:
    """Clean value of every task/metric and the mean drop from clean per corruption and stage.

    ``result`` is an evaluate RunResult; the numbers come from its results table.
    """
    from robustpath.results.table import main_rows

    table = main_rows(result.table)  # the probe on all training images, not the data-scale sweep
    record = result.record
    clean = table[table.corruption == "none"]
    corrupted = table[table.corruption != "none"]
    summary = {
        "run_id": record["run_id"],
        "model": record["model"]["name"],
        "dataset": record["dataset"]["name"],
        "device": record["device"],
        "completed": record.get("completed", True),
        "outputs": outputs,
        "clean": {},
        "mean_drop_from_clean": {},
        "notes": list(record.get("notes", [])),
    }
    for row in clean.itertuples(index=False):
        summary["clean"].setdefault(row.task, {})[row.metric] = row.value
    grouped = corrupted.groupby(["task", "metric", "corruption", "stage"], sort=False)["drop_from_clean"].mean()
    for (task, metric, corruption, stage), drop in grouped.items():
        key = corruption if stage == "pre" else f"{corruption}@{stage}"
        summary["mean_drop_from_clean"].setdefault(task, {}).setdefault(metric, {})[key] = float(drop)
    return summary
