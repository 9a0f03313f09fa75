"""Report sections of the label-free tasks: embedding drift beside identity retrieval, and silent failures.

- drift beside identity: per run and variant, the mean cosine similarity to the clean
  embedding (embedding_drift) next to identity top-1 / top-10 accuracy and median rank
  (identity): drift says how far the images moved, identity whether they moved past
  their neighbours;
- silent failures: per run and variant, the harm (drop of the main task's primary
  metric) beside the detectability AUROC, flagged when harmful and hard to detect
  (robustpath.results.silent_failures), with a harm-against-detectability plot.

Both are shared by report.md (``markdown_sections``) and report.html.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from robustpath.results.table import main_rows
from robustpath.results.silent_failures import DETECTABLE_AUROC

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DRIFT_IDENTITY_METRICS = {
    ("embedding_drift", "cosine_similarity"): "drift cosine",
    ("identity", "identity_top1_accuracy"): "identity top-1",
    ("identity", "identity_top10_accuracy"): "identity top-10",
    ("identity", "identity_median_rank"): "median rank",
}
NO_HARM_TASK = ("No silent-failure table: it sets the detectability AUROC beside the drop of a task that measures "
                "harm (linear_probe, retrieval, zeroshot or identity), and this run has none.")
HARMFUL_HIDDEN = "harmful, hard to detect"
HARMFUL_SEEN = "harmful, detectable"


def drift_identity_frame(table: "pd.DataFrame") -> "pd.DataFrame":
    """Per run and variant (clean first, then plan order): run_id, model, dataset, condition, severity and one
    column per DRIFT_IDENTITY_METRICS label present; empty when a run has neither task."""
    import pandas as pd

    from robustpath.results.robustness import condition_label

    main = main_rows(table)
    keys = list(DRIFT_IDENTITY_METRICS)
    wanted = main[[(task, metric) in DRIFT_IDENTITY_METRICS for task, metric in zip(main.task, main.metric)]]
    if wanted.empty:
        return pd.DataFrame(columns=["run_id", "model", "dataset", "condition", "severity"])
    wanted = wanted.assign(column=[DRIFT_IDENTITY_METRICS[(t, m)] for t, m in zip(wanted.task, wanted.metric)])
    index = ["run_id", "model", "dataset", "corruption", "stage", "severity"]
    wide = wanted.pivot_table(index=index, columns="column", values="value", aggfunc="first", sort=False).reset_index()
    wide.insert(3, "condition", [("clean" if c == "none" else condition_label(c, s))
                                 for c, s in zip(wide.corruption, wide.stage)])
    columns = [DRIFT_IDENTITY_METRICS[key] for key in keys if DRIFT_IDENTITY_METRICS[key] in wide]
    return wide[["run_id", "model", "dataset", "condition", "severity", *columns]]


def flag_text(row) -> str:
    """'harmful, hard to detect', 'harmful, detectable' or '' for one silent-failure row."""
    if not row.harmful:
        return ""
    return HARMFUL_HIDDEN if row.hard_to_detect else HARMFUL_SEEN


def silent_failure_summary(frame: "pd.DataFrame") -> str:
    """One sentence: how many variants are harmful, and how many of them hard to detect."""
    harmful = int(frame.harmful.sum())
    hidden = int(frame.silent_failure.sum())
    return (f"{harmful} of {len(frame)} corrupted variants are harmful (significant drop); {hidden} of them are hard "
            f"to detect (AUROC < {DETECTABLE_AUROC:g}).")


def _markdown_drift_identity(frame: "pd.DataFrame", several: bool, labels: Mapping[str, str]) -> list[str]:
    from robustpath.output.report.markdown import markdown_table, number

    metrics = [c for c in frame.columns if c in DRIFT_IDENTITY_METRICS.values()]
    header = [*(["model"] if several else []), "condition", "severity", *metrics]
    rows = [[*([labels.get(r["run_id"], r["model"])] if several else []), r["condition"], int(r["severity"]),
             *[number(r[m], 1 if m == "median rank" else 3) for m in metrics]]
            for r in frame.to_dict("records")]
    lines = ["## Embedding drift beside identity retrieval", "",
             "Drift: mean cosine similarity of each test image's corrupted and clean embedding. Identity: does the "
             "corrupted image still find its own clean copy among all clean test images (top-1 / top-10 share, "
             "median rank; chance k/N and (N + 1)/2)? A high drift similarity with a low identity share means the "
             "embeddings crowd together: the image moved little, but past its neighbours.", ""]
    return lines + markdown_table(header, rows)


def _markdown_silent_failures(frame: "pd.DataFrame", several: bool, plots: Mapping | None,
                              labels: Mapping[str, str]) -> list[str]:
    from robustpath.output.report.markdown import markdown_table, number

    task, metric = frame.task.iloc[0], frame.metric.iloc[0]
    tasks = ", ".join(dict.fromkeys(f"{t} · {m}" for t, m in zip(frame.task, frame.metric)))
    lines = ["## Silent failures: harm against detectability", "",
             f"Harm: drop of the main task's primary metric ({tasks}; `*` = paired bootstrap p < 0.05). "
             "Detectability: AUROC of the k-NN out-of-distribution score (mean cosine distance to the 10 nearest clean "
             "training embeddings) separating the corrupted test images from the same images clean (0.5 = "
             f"indistinguishable, 1 = always detected). Flagged *{HARMFUL_HIDDEN}*: a significant drop with AUROC "
             f"below {DETECTABLE_AUROC:g}. " + silent_failure_summary(frame), ""]
    rows = [[*([labels.get(r.run_id, r.model)] if several else []), r.condition, int(r.severity),
             f"{r.drop_from_clean:+.3f}{'*' if r.drop_significant else ''}",
             f"{number(r.ood_auroc)} ({number(r.ood_auroc_ci_low)}–{number(r.ood_auroc_ci_high)})", flag_text(r)]
            for r in frame.itertuples(index=False)]
    header = [*(["model"] if several else []), "condition", "severity",
              "drop" if several else f"drop ({task} · {metric})", "AUROC (95% CI)", "flag"]
    lines += markdown_table(header, rows)
    paths = (plots or {}).get("detectability", [])
    return lines + [f"![detectability]({path})" for path in paths] + ([""] if paths else [])


def markdown_sections(table: "pd.DataFrame", summary, plots: Mapping | None, several: bool) -> list[str]:
    """report.md's label-free sections (each only when the runs have its tasks)."""
    from robustpath.results.robustness import series_labels

    labels = series_labels(table)
    lines: list[str] = []
    drift_identity = drift_identity_frame(table)
    if not drift_identity.empty:
        lines += _markdown_drift_identity(drift_identity, several, labels)
    silent = getattr(summary, "silent_failures", None)
    if silent is not None and not silent.empty:
        lines += _markdown_silent_failures(silent, several, plots, labels)
    elif (table.task == "detectability").any():
        lines += ["## Silent failures: harm against detectability", "",
                  f"> {NO_HARM_TASK}", ""]
    return lines


def plot_harm_detectability(frame: "pd.DataFrame", labels: Mapping[str, str], dataset: str, path) -> object:
    """One panel per run of ``dataset``: harm (drop of the main task's primary metric) on x against the
    detectability AUROC on y, one colour per condition, the severity written beside each point; filled =
    significant drop; the shaded corner (significant drop, AUROC < 0.7) holds the silent failures."""
    from matplotlib.lines import Line2D

    from robustpath.output.report.plots import _colours, _figure, save_figure

    part = frame[frame.dataset == dataset]
    runs = list(dict.fromkeys(part.run_id))
    colours = _colours(list(part.condition))
    figure = _figure(7.5, 0.5 + 3.6 * len(runs))
    axes = np.atleast_1d(figure.subplots(len(runs), 1, squeeze=False).ravel())
    low = min(-0.05, float(np.nanmin(part.drop_from_clean)) * 1.1)
    high = max(0.05, float(np.nanmax(part.drop_from_clean)) * 1.1)
    for axis, run_id in zip(axes, runs):
        rows = part[part.run_id == run_id]
        axis.axhspan(0.0, DETECTABLE_AUROC, xmin=0.0, xmax=(0.0 - low) / (high - low), color="#d62728", alpha=0.08,
                     linewidth=0)
        axis.axhline(DETECTABLE_AUROC, color="#d62728", linestyle="--", linewidth=0.8)
        axis.axvline(0.0, color="grey", linewidth=0.6)
        for condition, group in rows.groupby("condition", sort=False):
            filled = group.harmful.to_numpy(bool)
            axis.scatter(group.drop_from_clean, group.ood_auroc, s=30, edgecolors=colours[condition], linewidths=1.2,
                         facecolors=[colours[condition] if f else "none" for f in filled])
            for x, y, severity in zip(group.drop_from_clean, group.ood_auroc, group.severity):
                axis.annotate(str(int(severity)), (x, y), xytext=(3, 2), textcoords="offset points", fontsize=6)
        axis.set_xlim(low, high)
        axis.set_ylim(min(0.4, float(np.nanmin(rows.ood_auroc)) - 0.02), 1.01)
        axis.set_title(f"{labels.get(run_id, run_id)} · harm: {rows.task.iloc[0]} · {rows.metric.iloc[0]}", fontsize=9)
        axis.set_xlabel(f"drop of {rows.metric.iloc[0]} from clean (left = worse)", fontsize=8)
        axis.set_ylabel("detectability AUROC (k-NN distance)", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        handles = [Line2D([], [], marker="o", linestyle="", color=colours[c], label=c) for c in dict.fromkeys(rows.condition)]
        axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    figure.suptitle(f"{dataset} · harm against detectability\nfilled: significant drop; shaded: harmful and hard to "
                    f"detect (AUROC < {DETECTABLE_AUROC:g}); numbers: severity", fontsize=9)
    return save_figure(figure, path)
