"""Robustness summaries computed from the results table (one run or several merged).

Per model, dataset, task and metric, and per condition c = (corruption, stage),
over the severities s of that condition (main evaluation only: the probe on all
training images):

- mean_value: mean over severities;  mean_retention = mean_value / clean value;
- normalised_auc: area under the degradation curve (severity 0 = clean, then
  each severity; trapezoids), divided by the highest severity, after rescaling
  each value v to (v − chance) / (clean − chance): 1 = no degradation, 0 = at
  chance throughout; NaN for lower-is-better metrics.  ``chance`` is the level
  the run recorded for the metric (robustpath.tasks.chance: the expectation under a
  stated null, e.g. a random gallery ranking for retrieval);
- near chance: retention and normalised AUC are undefined (NaN, with the reason
  in ``summary_note``) when the clean value is not clearly above chance: its 95%
  bootstrap interval reaches chance, or it lies less than 10% of the way from
  chance to a perfect 1 (robustpath.results.chance_summary).  Near chance both blow up
  or mean nothing (a model at chance "retains" everything);
- corruption error against a baseline model b (ImageNet-C, Hendrycks &
  Dietterich 2019), with error E = 1 − value for higher-is-better metrics:
  CE_c = Σ_s E_{s,c} / Σ_s E^b_{s,c};  relative CE_c = Σ_s (E_{s,c} − E_clean)
  / Σ_s (E^b_{s,c} − E^b_clean); sums run over the severities both were
  evaluated at; mCE / relative mCE = mean over the conditions both share (a
  corruption at two stages counts as two conditions).  Several runs of the
  baseline on one dataset are averaged.
- group shifts (tables group_shift_match and shift_correlation): robustpath.tasks.group_summary;
- ranking: per dataset and task, models ordered by the mean normalised AUC of
  the task's primary metric (higher = more robust); models whose normalised AUC
  is undefined come after the others (by clean value), with the reason shown;
- silent failures: per run and variant, the harm (drop of the main task's primary
  metric) beside the detectability AUROC (robustpath.results.silent_failures).

Detection tasks (results.DETECTION_TASKS: detectability) measure whether a corruption
can be noticed, not a loss, and are left out of every summary but the last.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from robustpath.results.chance_summary import chance_table, summary_notes, undefines_retention
from robustpath.errors import UsageError, unknown_name_message
from robustpath.results.table import DETECTION_TASKS, PRIMARY_METRIC, RUN_KEYS, TASK_ORDER, main_rows
from robustpath.tasks.group_summary import group_shift_table, shift_correlation_table, shift_match_table

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

CONDITION = ["corruption", "stage"]
WORST_CONDITIONS = 3


def condition_label(corruption: str, stage: str) -> str:
    """'gaussian_blur' for the pre-resize stage, 'gaussian_blur (post-resize)' otherwise."""
    return corruption if stage in ("pre", "none") else f"{corruption} ({stage}-resize)"


def normalised_auc(severities, values, clean: float, chance: float) -> float:
    """Trapezoidal area of (v − chance)/(clean − chance) over [0, max severity], / max severity."""
    headroom = clean - chance
    if not np.isfinite(headroom) or headroom <= 0 or len(severities) == 0:
        return float("nan")
    order = np.argsort(severities)
    x = np.concatenate([[0.0], np.asarray(severities, float)[order]])
    y = np.concatenate([[1.0], (np.asarray(values, float)[order] - chance) / headroom])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / x[-1])


@dataclass
class RobustnessSummary:
    """Tables (pandas DataFrames) derived from a results table."""

    conditions: "pd.DataFrame"  # per run/model/dataset/task/metric × condition
    models: "pd.DataFrame"  # per run/model/dataset/task/metric
    ranking: "pd.DataFrame"  # primary metrics, ranked per dataset and task
    worst: "pd.DataFrame"  # the conditions that hurt each model most (primary metrics)
    blur_stages: "pd.DataFrame"  # Gaussian blur before vs after the resize
    data_scale: "pd.DataFrame"  # linear-probe data-scale sweep per variant: mean ± sd over repeats
    data_scale_overview: "pd.DataFrame"  # per training-set size: clean and mean-over-corruptions, mean ± sd
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)  # runs whose chance levels were assumed or unknown
    group_shifts: "pd.DataFrame | None" = None  # robustpath.tasks.group_summary: measures per group pair
    group_shift_match: "pd.DataFrame | None" = None  # robustpath.tasks.group_summary: closest corruption per group shift
    shift_correlation: "pd.DataFrame | None" = None  # Spearman's rho of synthetic vs real robustness across models
    silent_failures: "pd.DataFrame | None" = None  # harm beside detectability per variant (robustpath.results.silent_failures)

    def tables(self) -> dict[str, "pd.DataFrame"]:
        """Name → table, as written to files (robustness_<name>.csv, report.json "tables")."""
        return {
            "ranking": self.ranking, "models": self.models, "conditions": self.conditions,
            "worst_conditions": self.worst, "blur_stages": self.blur_stages,
            "data_scale": self.data_scale, "data_scale_overview": self.data_scale_overview,
            **{name: frame for name, frame in (("group_shifts", self.group_shifts),
                                               ("group_shift_match", self.group_shift_match),
                                               ("shift_correlation", self.shift_correlation)) if frame is not None},
            **({"silent_failures": self.silent_failures} if self.silent_failures is not None else {}),
        }


def check_baseline(table: "pd.DataFrame", baseline: str | None) -> str | None:
    if baseline is None:
        return None
    models = sorted(set(table["model"]))
    if baseline in models:
        return baseline
    raise UsageError(unknown_name_message("baseline model", baseline, models, plural="models in these runs"))


def summarise_results(
    table: "pd.DataFrame", records: list[dict] | None = None, baseline: str | None = None
) -> RobustnessSummary:
    """Every summary table; ``records`` (run.json contents) give each run's chance levels."""
    from robustpath.results.silent_failures import silent_failure_table

    baseline = check_baseline(table, baseline)
    silent_failures = silent_failure_table(table)
    table = table[~table.task.isin(DETECTION_TASKS)]
    chances = chance_table(table, {r.get("run_id"): r for r in records or []})
    conditions = condition_summary(table, chances, baseline)
    models = model_summary(table, conditions, chances)
    return RobustnessSummary(
        conditions=conditions, models=models, ranking=robustness_ranking(models),
        worst=worst_conditions(conditions), blur_stages=blur_stage_comparison(table, chances),
        data_scale=data_scale_summary(table), data_scale_overview=data_scale_overview(table), baseline=baseline,
        notes=summary_notes(models), silent_failures=silent_failures,
        group_shifts=group_shift_table(table), group_shift_match=shift_match_table(table),
        shift_correlation=shift_correlation_table(table),
    )


def condition_summary(
    table: "pd.DataFrame", chances: "pd.DataFrame | None" = None, baseline: str | None = None
) -> "pd.DataFrame":
    """One row per run/model/dataset/task/metric × (corruption, stage); see the module docstring.
    ``chances``: chance_table(table, records) (default: no records, chance unknown)."""
    import pandas as pd

    main = main_rows(table)
    if chances is None:
        chances = chance_table(table, {})
    clean = main[main.corruption == "none"].set_index(RUN_KEYS)["value"]
    facts = chances.set_index(RUN_KEYS)
    corrupted = main[main.corruption != "none"]
    rows = []
    for keys, part in corrupted.groupby(RUN_KEYS + CONDITION, sort=False):
        run_keys, (corruption, stage) = keys[:5], keys[5:]
        clean_value = float(clean.get(run_keys, np.nan))
        higher = bool(part.higher_is_better.iloc[0])
        chance, source, note = (facts.loc[run_keys, ["chance", "chance_source", "summary_note"]]
                                if run_keys in facts.index else (np.nan, "unknown", "no clean value"))
        retention = part.value.mean() / clean_value if clean_value and not undefines_retention(note) else np.nan
        auc = normalised_auc(part.severity.values, part.value.values, clean_value, chance) if higher and not note else np.nan
        rows.append({
            **dict(zip(RUN_KEYS, run_keys)), "corruption": corruption, "stage": stage,
            "condition": condition_label(corruption, stage), "higher_is_better": higher,
            "severities": len(part), "clean_value": clean_value, "mean_value": part.value.mean(),
            "worst_value": part.value.min() if higher else part.value.max(),
            "mean_drop": part.value.mean() - clean_value, "mean_retention": retention,
            "significant_drops": int(part.drop_significant.sum()), "chance": chance, "chance_source": source,
            "normalised_auc": auc, "summary_note": note,
        })
    columns = [*RUN_KEYS, *CONDITION, "condition", "higher_is_better", "severities", "clean_value", "mean_value",
               "worst_value", "mean_drop", "mean_retention", "significant_drops", "chance", "chance_source",
               "normalised_auc", "summary_note"]
    summary = pd.DataFrame(rows, columns=columns)
    return _add_corruption_errors(summary, main, baseline)


def _add_corruption_errors(summary: "pd.DataFrame", main: "pd.DataFrame", baseline: str | None) -> "pd.DataFrame":
    """Add ce and relative_ce (NaN without a baseline, for lower-is-better metrics, or a zero denominator)."""
    if baseline is None or summary.empty:
        return summary.assign(ce=np.nan, relative_ce=np.nan)
    keys = ["dataset", "task", "metric", "corruption", "severity", "stage"]
    errors = main[main.higher_is_better].assign(error=lambda t: 1.0 - t.value)
    base = errors[errors.model == baseline].groupby(keys, as_index=False)["error"].mean()
    base_clean = base[base.corruption == "none"][["dataset", "task", "metric", "error"]]
    own_clean = errors[errors.corruption == "none"][RUN_KEYS + ["error"]]
    paired = (
        errors[errors.corruption != "none"]
        .merge(base.rename(columns={"error": "baseline_error"}), on=keys)
        .merge(own_clean.rename(columns={"error": "clean_error"}), on=RUN_KEYS)
        .merge(base_clean.rename(columns={"error": "baseline_clean_error"}), on=["dataset", "task", "metric"])
    )
    paired = paired.assign(
        relative_error=paired.error - paired.clean_error,
        baseline_relative_error=paired.baseline_error - paired.baseline_clean_error,
    )
    sums = paired.groupby(RUN_KEYS + CONDITION, as_index=False)[
        ["error", "baseline_error", "relative_error", "baseline_relative_error"]
    ].sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        sums["ce"] = np.where(sums.baseline_error > 0, sums.error / sums.baseline_error, np.nan)
        sums["relative_ce"] = np.where(
            sums.baseline_relative_error > 0, sums.relative_error / sums.baseline_relative_error, np.nan
        )
    return summary.merge(sums[RUN_KEYS + CONDITION + ["ce", "relative_ce"]], on=RUN_KEYS + CONDITION, how="left")


def model_summary(table: "pd.DataFrame", conditions: "pd.DataFrame", chances: "pd.DataFrame | None" = None) -> "pd.DataFrame":
    """One row per run/model/dataset/task/metric: clean value, means over conditions, mCE, worst condition,
    chance level and summary_note (why retention / normalised AUC are undefined, '' when defined)."""
    import pandas as pd

    main = main_rows(table)
    clean = main[main.corruption == "none"]
    facts = (chances if chances is not None else chance_table(table, {})).set_index(RUN_KEYS)
    rows = []
    for _, row in clean.iterrows():
        key = tuple(row[RUN_KEYS])
        part = conditions[(conditions[RUN_KEYS] == pd.Series(key, index=RUN_KEYS)).all(axis=1)]
        variants = main[(main[RUN_KEYS] == pd.Series(key, index=RUN_KEYS)).all(axis=1) & (main.corruption != "none")]
        worst = ""
        if not part.empty:
            worst = part.sort_values("mean_drop", ascending=bool(row.higher_is_better)).condition.iloc[0]
        chance, source, note = facts.loc[key, ["chance", "chance_source", "summary_note"]] if key in facts.index else (np.nan, "unknown", "")
        rows.append({
            **dict(zip(RUN_KEYS, key)), "higher_is_better": bool(row.higher_is_better),
            "clean_value": row.value, "clean_ci_low": row.ci_low, "clean_ci_high": row.ci_high,
            "mean_corrupted_value": variants.value.mean(), "mean_retention": part.mean_retention.mean(),
            "mean_normalised_auc": part.normalised_auc.mean(), "mce": part.ce.mean(),
            "relative_mce": part.relative_ce.mean(), "worst_condition": worst,
            "significant_drops": int(variants.drop_significant.sum()), "variants": len(variants),
            "chance": chance, "chance_source": source, "summary_note": note,
        })
    columns = [*RUN_KEYS, "higher_is_better", "clean_value", "clean_ci_low", "clean_ci_high", "mean_corrupted_value",
               "mean_retention", "mean_normalised_auc", "mce", "relative_mce", "worst_condition",
               "significant_drops", "variants", "chance", "chance_source", "summary_note"]
    return pd.DataFrame(rows, columns=columns)


def _primary(frame: "pd.DataFrame") -> "pd.DataFrame":
    return frame[frame.metric == frame.task.map(PRIMARY_METRIC).fillna(frame.metric)]


def _task_rank(tasks: "pd.Series") -> "pd.Series":
    return tasks.map({task: i for i, task in enumerate(TASK_ORDER)}).fillna(len(TASK_ORDER))


def robustness_ranking(models: "pd.DataFrame") -> "pd.DataFrame":
    """Primary metric per task; rank 1 = highest mean normalised AUC within (dataset, task); models whose
    normalised AUC is undefined (summary_note) come last, by clean value."""
    primary = _primary(models).assign(
        task_rank=lambda t: _task_rank(t.task),
        undefined=lambda t: (t.summary_note != "") | t.mean_normalised_auc.isna(),
    ).sort_values(
        ["dataset", "task_rank", "task", "undefined", "mean_normalised_auc", "clean_value"],
        ascending=[True, True, True, True, False, False],
    )
    primary = primary.assign(rank=primary.groupby(["dataset", "task"]).cumcount() + 1)
    columns = ["dataset", "task", "metric", "rank", "model", "run_id", "clean_value", "chance", "mean_retention",
               "mean_normalised_auc", "mce", "relative_mce", "worst_condition", "summary_note"]
    return primary[columns].reset_index(drop=True)


def worst_conditions(conditions: "pd.DataFrame", top: int = WORST_CONDITIONS) -> "pd.DataFrame":
    """The ``top`` conditions with the largest mean drop, per run and task (primary metric)."""
    primary = _primary(conditions).assign(task_rank=lambda t: _task_rank(t.task)).sort_values(
        ["dataset", "task_rank", "task", "model", "run_id", "mean_drop"]
    )
    worst = primary.groupby(RUN_KEYS, sort=False).head(top)
    columns = [*RUN_KEYS, "condition", "clean_value", "mean_value", "mean_drop", "mean_retention", "worst_value"]
    return worst[columns].reset_index(drop=True)


def blur_stage_comparison(
    table: "pd.DataFrame", chances: "pd.DataFrame | None" = None, corruption: str = "gaussian_blur"
) -> "pd.DataFrame":
    """Primary metrics: the blur at each severity applied before ('pre') and after ('post') the resize.
    Retentions are NaN where the clean value is near chance (summary_note of ``chances``)."""
    import pandas as pd

    main = _primary(main_rows(table))
    blur = main[(main.corruption == corruption) & main.stage.isin(["pre", "post"])]
    keys = [*RUN_KEYS, "severity"]
    columns = [*keys, "pre_value", "post_value", "pre_retention", "post_retention", "post_minus_pre", "summary_note"]
    if blur.empty or blur.stage.nunique() < 2:
        return pd.DataFrame(columns=columns)
    wide = blur.pivot_table(index=keys, columns="stage", values=["value", "relative_retention"], aggfunc="first")
    wide.columns = [f"{stage}_{'value' if name == 'value' else 'retention'}" for name, stage in wide.columns]
    wide = wide.reset_index().reindex(columns=columns[:-2])  # pivot_table drops all-NaN columns (clean value 0)
    wide["post_minus_pre"] = wide["post_value"] - wide["pre_value"]
    notes = chances[[*RUN_KEYS, "summary_note"]] if chances is not None else pd.DataFrame(columns=[*RUN_KEYS, "summary_note"])
    wide = wide.merge(notes, on=RUN_KEYS, how="left").fillna({"summary_note": ""})
    undefined = wide.summary_note.map(undefines_retention)
    wide.loc[undefined, ["pre_retention", "post_retention"]] = np.nan
    return wide[columns]


def data_scale_summary(table: "pd.DataFrame") -> "pd.DataFrame":
    """Linear-probe data-scale sweep: mean and sample sd (ddof 1) over repeats, per variant."""
    sweep = table[table.task.isin(table[table.samples_per_class > 0].task.unique())]
    keys = [*RUN_KEYS, "samples_per_class", "corruption", "severity", "stage"]
    summary = sweep.groupby(keys, as_index=False).agg(
        mean=("value", "mean"), sd=("value", "std"), repeats=("value", "size"),
        mean_drop=("drop_from_clean", "mean"),
    )
    return summary.sort_values(keys).reset_index(drop=True)


def data_scale_overview(table: "pd.DataFrame") -> "pd.DataFrame":
    """Per run, task, metric and samples_per_class: the clean value and the mean over corrupted
    variants, each as mean and sample sd (ddof 1) over repeats."""
    sweep = table[table.task.isin(table[table.samples_per_class > 0].task.unique())]
    keys = [*RUN_KEYS, "samples_per_class"]
    per_repeat = sweep.assign(corrupted=sweep.corruption != "none").groupby(
        [*keys, "repeat", "corrupted"], as_index=False
    )["value"].mean()
    clean = per_repeat[~per_repeat.corrupted].groupby(keys).value.agg(["mean", "std", "size"])
    corrupted = per_repeat[per_repeat.corrupted].groupby(keys).value.agg(["mean", "std"])
    overview = clean.rename(columns={"mean": "clean_mean", "std": "clean_sd", "size": "repeats"}).join(
        corrupted.rename(columns={"mean": "corrupted_mean", "std": "corrupted_sd"}), how="left"
    )
    columns = [*keys, "repeats", "clean_mean", "clean_sd", "corrupted_mean", "corrupted_sd"]
    return overview.reset_index().reindex(columns=columns)


def series_labels(table: "pd.DataFrame") -> dict[str, str]:
    """run_id → legend label: the model name, plus the run id when a model has several runs on one dataset."""
    runs = table[["run_id", "model", "dataset"]].drop_duplicates()
    repeated = runs.duplicated(["model", "dataset"], keep=False)
    return {
        run: f"{model} [{run}]" if again else model
        for run, model, again in zip(runs.run_id, runs.model, repeated)
    }
