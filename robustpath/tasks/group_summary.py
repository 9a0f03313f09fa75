"""Synthetic vs real shifts, read from the results table (one run or several merged).

group_shifts: per run and ordered pair of groups A->B, the group-shift measures side
by side (identity top-1 / top-10, the probe trained in A tested in B, its accuracy
drop against the probe trained in B with the 95% paired interval, the embedding
distance for A before B), and one "mean" row per run with the means over pairs and
the Robustness Index.

shift_match: per run and pair of groups A, B (shift_distance rows), the corruption,
severity and stage whose mean embedding distance is closest to the distance of the
real shift from A to B — "this scanner change moves the embeddings about as far as
blur at severity 2".  ``beyond_strongest`` marks a group shift larger than every
corruption of the run (the match is then the strongest corruption, not a peer).

shift_correlation: across the models of one dataset, the Spearman rank correlation
between a synthetic robustness measure and a real-shift robustness measure (one
value per model; several runs of one model are averaged):

- synthetic: ``probe_retention`` = mean over the corrupted variants of the linear
  probe's accuracy / its clean accuracy; ``drift_similarity`` = mean embedding-drift
  cosine similarity over the corrupted variants;
- real: ``group_probe_retention`` = group_probe accuracy, mean over group pairs /
  mean within groups; ``identity_top1`` = cross-group identity retrieval top-1
  (mean over group pairs); ``robustness_index``.

Spearman's rho is the Pearson correlation of the average ranks (ties share the mean
of their ranks); it needs at least 3 models with both measures (NaN otherwise) and
is NaN when either measure is the same for every model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robustpath.tasks.group_shifts import ALL, GROUP_PREFIX, MEAN, WITHIN, pair_label

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

RUN = ["run_id", "model", "dataset"]
MATCH_COLUMNS = [*RUN, "group_pair", "group_distance", "group_ci_low", "group_ci_high", "closest_corruption",
                 "closest_severity", "closest_stage", "corruption_distance", "beyond_strongest"]
CORRELATION_COLUMNS = ["dataset", "synthetic_measure", "real_measure", "spearman_rho", "models"]
MIN_MODELS = 3
OVERVIEW_COLUMNS = [*RUN, "group_pair", "identity_top1", "identity_top10", "probe_accuracy", "within_accuracy",
                    "accuracy_drop", "drop_ci_low", "drop_ci_high", "embedding_distance", "robustness_index"]
OVERVIEW_CELLS = {  # column → (task, metric, field)
    "identity_top1": ("cross_group_retrieval", "top1_accuracy", "value"),
    "identity_top10": ("cross_group_retrieval", "top10_accuracy", "value"),
    "probe_accuracy": ("group_probe", "accuracy", "value"),
    "accuracy_drop": ("group_probe", "accuracy_drop", "value"),
    "drop_ci_low": ("group_probe", "accuracy_drop", "ci_low"),
    "drop_ci_high": ("group_probe", "accuracy_drop", "ci_high"),
    "embedding_distance": ("shift_distance", "embedding_distance", "value"),
}


def average_ranks(values: np.ndarray) -> np.ndarray:
    """(n,) → (n,) float64 ranks 1..n, tied values sharing the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of two (n,) arrays (NaN for n < 2 or a constant array)."""
    if len(x) < 2:
        return float("nan")
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def group_shift_table(table: "pd.DataFrame") -> "pd.DataFrame":
    """The group_shifts overview of the module docstring (empty without group-shift rows)."""
    import pandas as pd

    part = table[table.task.isin(("cross_group_retrieval", "robustness_index", "group_probe", "shift_distance"))
                 & table.corruption.str.startswith(GROUP_PREFIX)]
    lookup = {(r.run_id, r.task, r.metric, r.corruption): r for r in part.itertuples()}
    rows = []
    for keys, run in part.groupby(RUN, sort=False):
        pairs = sorted({c for c in run.corruption if _is_cross_pair(c)})
        for corruption in [*pairs, MEAN]:
            row = {**dict(zip(RUN, keys)), "group_pair": corruption[len(GROUP_PREFIX):]}
            for column, (task, metric, field) in OVERVIEW_CELLS.items():
                found = lookup.get((keys[0], task, metric, corruption))
                row[column] = float(getattr(found, field)) if found is not None else float("nan")
            target = corruption.split("->")[-1] if corruption != MEAN else None
            within = lookup.get((keys[0], "group_probe", "accuracy", WITHIN if target is None else pair_label(target, target)))
            row["within_accuracy"] = float(within.value) if within is not None else float("nan")
            index = lookup.get((keys[0], "robustness_index", "robustness_index", ALL)) if corruption == MEAN else None
            row["robustness_index"] = float(index.value) if index is not None else float("nan")
            rows.append(row)
    return pd.DataFrame(rows, columns=OVERVIEW_COLUMNS)


def _is_cross_pair(corruption: str) -> bool:
    """'group:A->B' with A ≠ B."""
    if not corruption.startswith(GROUP_PREFIX) or "->" not in corruption:
        return False
    first, second = corruption[len(GROUP_PREFIX):].split("->", 1)
    return first != second


def shift_match_table(table: "pd.DataFrame") -> "pd.DataFrame":
    """One row per run and group pair: the corruption whose embedding distance is closest (see module)."""
    import pandas as pd

    part = table[(table.task == "shift_distance") & (table.metric == "embedding_distance")]
    rows = []
    for keys, run in part.groupby(RUN, sort=False):
        shifts = run[run.corruption.str.startswith(GROUP_PREFIX)]
        synthetic = run[~run.corruption.str.startswith(GROUP_PREFIX) & (run.corruption != "none")]
        synthetic = synthetic.sort_values(["corruption", "stage", "severity"], kind="stable")
        for shift in shifts.itertuples():
            match = {"closest_corruption": "", "closest_severity": 0, "closest_stage": "",
                     "corruption_distance": float("nan"), "beyond_strongest": False}
            if len(synthetic):
                gaps = (synthetic.value - shift.value).abs().to_numpy()
                best = synthetic.iloc[int(np.argmin(gaps))]  # ties: the first in the sorted order
                match = {"closest_corruption": best.corruption, "closest_severity": int(best.severity),
                         "closest_stage": best.stage, "corruption_distance": float(best.value),
                         "beyond_strongest": bool(shift.value > synthetic.value.max())}
            rows.append({**dict(zip(RUN, keys)), "group_pair": shift.corruption[len(GROUP_PREFIX):],
                         "group_distance": shift.value, "group_ci_low": shift.ci_low, "group_ci_high": shift.ci_high,
                         **match})
    return pd.DataFrame(rows, columns=MATCH_COLUMNS)


def _model_measures(table: "pd.DataFrame") -> "pd.DataFrame":
    """Per dataset and model: every synthetic and real measure of the module docstring (NaN when absent)."""
    import pandas as pd

    def values(task, metric, corruption=None, corrupted=False):
        part = table[(table.task == task) & (table.metric == metric)
                     & (table.samples_per_class == 0) & (table.repeat == 0)]
        if corruption is not None:
            part = part[part.corruption == corruption]
        if corrupted:
            part = part[(part.corruption != "none") & ~part.corruption.str.startswith(GROUP_PREFIX)]
        return part.groupby(["dataset", "model"]).value.mean()

    clean_probe = values("linear_probe", "accuracy", "none")
    measures = {
        "probe_retention": values("linear_probe", "accuracy", corrupted=True) / clean_probe,
        "drift_similarity": values("embedding_drift", "cosine_similarity", corrupted=True),
        "group_probe_retention": values("group_probe", "accuracy", MEAN) / values("group_probe", "accuracy", WITHIN),
        "identity_top1": values("cross_group_retrieval", "top1_accuracy", MEAN),
        "robustness_index": values("robustness_index", "robustness_index", ALL),
    }
    return pd.DataFrame(measures)


SYNTHETIC_MEASURES = ("probe_retention", "drift_similarity")
REAL_MEASURES = ("group_probe_retention", "identity_top1", "robustness_index")


def shift_correlation_table(table: "pd.DataFrame") -> "pd.DataFrame":
    """Per dataset with group-shift rows: Spearman's rho of each synthetic × real measure across models."""
    import pandas as pd

    measures = _model_measures(table)
    rows = []
    for dataset in sorted(set(table[table.task.isin(("group_probe", "robustness_index"))].dataset)):
        if dataset not in measures.index.get_level_values("dataset"):
            continue
        per_model = measures.xs(dataset, level="dataset")
        for synthetic in SYNTHETIC_MEASURES:
            for real in REAL_MEASURES:
                both = per_model[[synthetic, real]].dropna()
                if both.empty:
                    continue
                rho = spearman_rho(both[synthetic].to_numpy(), both[real].to_numpy()) if len(both) >= MIN_MODELS else float("nan")
                rows.append({"dataset": dataset, "synthetic_measure": synthetic, "real_measure": real,
                             "spearman_rho": rho, "models": len(both)})
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)
