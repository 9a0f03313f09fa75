"""report.html's tables on real shifts between groups (the summaries of robustpath.tasks.group_summary)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from robustpath.output.report.html.tables import Table, frame_table

if TYPE_CHECKING:  # pragma: no cover
    from robustpath.results.robustness import RobustnessSummary


def group_shift_tables(summary: "RobustnessSummary") -> list[Table]:
    """The group-shift overview, the closest corruption per group shift and the cross-model correlations,
    each when it has rows."""
    tables = []
    overview = summary.group_shifts
    if overview is not None and not overview.empty:
        tables.append(frame_table(overview, [
            ("model", "model"), ("dataset", "dataset"), ("group_pair", "groups A→B"),
            ("identity_top1", "identity top-1"), ("identity_top10", "identity top-10"),
            ("probe_accuracy", "probe A→B"), ("within_accuracy", "probe B→B"), ("accuracy_drop", "accuracy drop"),
            ("drop_ci_low", "drop CI low"), ("drop_ci_high", "drop CI high"),
            ("embedding_distance", "embedding distance"), ("robustness_index", "RI"), ("run_id", "run")],
            id="group-shifts", caption="Real shifts between groups", source="robustness_group_shifts.csv",
            note="Identity: each tissue of A finds itself among B's images (top-k). Probe trained on A's clean "
                 "training images, tested on B's; drop against the probe trained on B (paired bootstrap). "
                 "RI (PathoROB, k = 10): share of same-class-other-group among the informative neighbours."))
    match = summary.group_shift_match
    if match is not None and not match.empty:
        tables.append(frame_table(match, [
            ("model", "model"), ("dataset", "dataset"), ("group_pair", "groups"), ("group_distance", "group distance"),
            ("closest_corruption", "closest corruption"), ("closest_severity", "severity"), ("closest_stage", "stage"),
            ("corruption_distance", "its distance"), ("beyond_strongest", "beyond the strongest"), ("run_id", "run")],
            id="group-shift-match", caption="Which corruption moves the embeddings as far as each group shift",
            source="robustness_group_shift_match.csv",
            note="Mean cosine distance of centred embeddings: a tissue in two groups vs an image clean and corrupted."))
    correlation = summary.shift_correlation
    if correlation is not None and not correlation.empty:
        tables.append(frame_table(correlation, None, id="shift-correlation",
                                  caption="Synthetic vs real robustness across models (Spearman)",
                                  source="robustness_shift_correlation.csv",
                                  note="One value per model; rho needs at least 3 models."))
    return tables
