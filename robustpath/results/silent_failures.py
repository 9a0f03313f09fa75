"""Silent failures: corruptions that hurt the model and that a label-free monitor would not notice.

Per run and corrupted variant (corruption × severity × stage), the **harm** is the
drop of the primary metric of the run's main task — the first of linear_probe,
retrieval, zeroshot and identity that the run evaluated (robustpath.results.table
PRIMARY_METRIC) — and it counts when the paired-bootstrap drop is significant
(p < 0.05) in the worse direction.  The **detectability** is the detectability task's
``ood_auroc`` (robustpath.tasks.detectability: the k-NN distance to clean training
embeddings, corrupted vs clean test images).  A variant is flagged *harmful and hard
to detect* when its harm counts and its AUROC is below DETECTABLE_AUROC = 0.7 (a
monitor at that AUROC misses most corrupted inputs at any useful false-alarm rate).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from robustpath.results.table import PRIMARY_METRIC, main_rows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DETECTABLE_AUROC = 0.7
HARM_TASKS = ("linear_probe", "retrieval", "zeroshot", "identity")  # the main task: the first a run has
DETECTION = ("detectability", "ood_auroc")
VARIANT = ["corruption", "severity", "stage"]
COLUMNS = [
    "run_id", "model", "dataset", "task", "metric", *VARIANT, "condition", "clean_value", "value", "drop_from_clean",
    "drop_significant", "harmful", "ood_auroc", "ood_auroc_ci_low", "ood_auroc_ci_high", "hard_to_detect",
    "silent_failure",
]


def main_task(tasks) -> str | None:
    """The task whose primary metric measures a run's harm: the first of HARM_TASKS among ``tasks``."""
    present = set(tasks)
    return next((task for task in HARM_TASKS if task in present), None)


def silent_failure_table(table: "pd.DataFrame", threshold: float = DETECTABLE_AUROC) -> "pd.DataFrame":
    """One row per run and corrupted variant that has both a harm and a detectability value (see the
    module docstring); empty (with COLUMNS) when no run evaluated detectability and a harm task."""
    import pandas as pd

    from robustpath.results.robustness import condition_label

    main = main_rows(table)
    frames = []
    for run_id, run in main.groupby("run_id", sort=False):
        task = main_task(run.task.unique())
        detection = run[(run.task == DETECTION[0]) & (run.metric == DETECTION[1]) & (run.corruption != "none")]
        if task is None or detection.empty:
            continue
        metric = PRIMARY_METRIC[task]
        harm = run[(run.task == task) & (run.metric == metric) & (run.corruption != "none")]
        auroc = detection[VARIANT + ["value", "ci_low", "ci_high"]].rename(
            columns={"value": "ood_auroc", "ci_low": "ood_auroc_ci_low", "ci_high": "ood_auroc_ci_high"})
        frames.append(harm.merge(auroc, on=VARIANT, how="inner"))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    rows = pd.concat(frames, ignore_index=True)
    worse = rows.drop_from_clean.where(rows.higher_is_better, -rows.drop_from_clean) < 0
    rows = rows.assign(
        condition=[condition_label(c, s) for c, s in zip(rows.corruption, rows.stage)],
        clean_value=rows.value - rows.drop_from_clean,
        drop_significant=rows.drop_significant.astype(bool),
        harmful=rows.drop_significant.astype(bool) & worse,
        hard_to_detect=rows.ood_auroc < threshold,
    )
    rows["silent_failure"] = rows.harmful & rows.hard_to_detect
    return rows[COLUMNS].reset_index(drop=True)
