"""report.md's section on real shifts between groups (centres, scanners, staining protocols).

Shown when the runs have group-shift rows (robustpath.tasks.group_shifts); the tables
are the summaries of robustpath.tasks.group_summary, so report.md, report.html and
the robustness_group_*.csv files show the same numbers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from robustpath.output.report.markdown import markdown_table, number, task_definitions

if TYPE_CHECKING:  # pragma: no cover
    from robustpath.results.robustness import RobustnessSummary

_GROUP_DEFINITIONS = """\
{tasks}
- **Spearman's rho** across models: synthetic robustness (probe accuracy retention under corruption, embedding
  drift) against real-shift robustness (group-probe retention, identity top-1, RI); needs ≥ 3 models.
- Intervals: 95% bootstrap over tissues (a pair is resampled as one unit)."""


def group_shift_markdown(summary: "RobustnessSummary", plots: Mapping[str, list[str]] | None) -> list[str]:
    """The section's lines (none when the runs have no groups)."""
    overview = summary.group_shifts
    if overview is None or overview.empty:
        return []
    lines = ["## Real shifts between groups", "",
             "Centres, scanners or staining protocols named by the data's `group` column; `A->B`: queries or probe "
             "training in A, gallery or test images in B.", ""]
    rows = [[r.model, r.dataset, r.group_pair, number(r.identity_top1), number(r.identity_top10),
             number(r.probe_accuracy), number(r.within_accuracy),
             f"{number(r.accuracy_drop)} [{number(r.drop_ci_low)}, {number(r.drop_ci_high)}]",
             number(r.embedding_distance), number(r.robustness_index)] for r in overview.itertuples()]
    lines += markdown_table(["model", "dataset", "groups", "identity top-1", "identity top-10", "probe A→B",
                             "probe B→B", "accuracy drop [95% CI]", "embedding distance", "RI"], rows)
    match = summary.group_shift_match
    if match is not None and not match.empty:
        lines += ["### Which corruption moves the embeddings as far as each group shift", ""]
        rows = [[r.model, r.dataset, r.group_pair, f"{number(r.group_distance)} [{number(r.group_ci_low)}, "
                 f"{number(r.group_ci_high)}]", _variant(r), number(r.corruption_distance),
                 "yes" if r.beyond_strongest else ""] for r in match.itertuples()]
        lines += markdown_table(["model", "dataset", "groups", "group distance [95% CI]", "closest corruption",
                                 "its distance", "beyond the strongest"], rows)
    lines += [f"![{relative}]({relative})" for relative in (plots or {}).get("group_shifts", [])] + [""]
    correlation = summary.shift_correlation
    if correlation is not None and not correlation.empty:
        lines += ["### Synthetic vs real robustness across models", ""]
        rows = [[r.dataset, r.synthetic_measure, r.real_measure, number(r.spearman_rho), r.models]
                for r in correlation.itertuples()]
        lines += markdown_table(["dataset", "synthetic", "real", "Spearman rho", "models"], rows)
    return lines + ["### Group-shift definitions", "", _GROUP_DEFINITIONS.replace("{tasks}", "\n".join(task_definitions(group_shift=True))), ""]


def _variant(row) -> str:
    if not row.closest_corruption:
        return "—"
    stage = "" if row.closest_stage in ("pre", "none") else f" ({row.closest_stage}-resize)"
    return f"{row.closest_corruption} {row.closest_severity}{stage}"
