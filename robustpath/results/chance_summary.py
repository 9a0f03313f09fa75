"""Chance levels per run and metric for the robustness summaries, and when a clean value is too
near chance for retention and normalised AUC to mean anything.

A summary of a higher-is-better metric is undefined when the clean value is not
clearly above chance (robustpath.tasks.chance gives the level a run recorded):

- its 95% bootstrap interval reaches chance (ci_low ≤ chance): retention and
  normalised AUC are NaN;
- or it lies less than NEAR_CHANCE_MARGIN = 10% of the way from chance to the
  best attainable value (1, or min(k, R)/R for recall@k; e.g. below 0.40 for
  accuracy with chance 1/3): normalised values would amplify every change more
  than tenfold, and a model at chance "retains" everything;
- or chance is unknown (a run.json without class counts): normalised AUC is NaN,
  retention stays.

The reason is the ``summary_note`` column of every summary table ('' when defined).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from robustpath.tasks.chance import BALANCED_ASSUMED, UNKNOWN, recorded_chance
from robustpath.results.table import RUN_KEYS, main_rows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

NEAR_CHANCE_MARGIN = 0.1  # the clean value must lie this fraction of the way from chance to the best value


def near_chance_note(
    clean: float, clean_ci_low: float, chance: float, higher_is_better: bool = True, best: float = 1.0
) -> str:
    """Why retention and normalised AUC are undefined for this clean value ('' when they are defined)."""
    if not higher_is_better:
        return ""
    if not np.isfinite(chance):
        return "chance level unknown: normalised AUC undefined"
    if not np.isfinite(clean):
        return "no clean value"
    margin = NEAR_CHANCE_MARGIN * (best - chance)
    if np.isfinite(clean_ci_low) and clean_ci_low <= chance:
        return f"near chance: 95% CI low {clean_ci_low:.3f} ≤ chance {chance:.3f}"
    if clean - chance < margin:
        return f"near chance: {clean - chance:.3f} above chance {chance:.3f}, under the margin {margin:.3f}"
    return ""


def undefines_retention(note: str) -> bool:
    """A note that makes retention as well as normalised AUC undefined."""
    return note.startswith(("near chance", "no clean"))


def chance_table(table: "pd.DataFrame", records: Mapping[str, Mapping]) -> "pd.DataFrame":
    """Per run/model/dataset/task/metric (clean rows of the main evaluation): chance, chance_source,
    clean_ci_low and summary_note ('' or why retention / normalised AUC are undefined)."""
    import pandas as pd

    clean = main_rows(table)
    clean = clean[clean.corruption == "none"].drop_duplicates(RUN_KEYS)
    rows = []
    for row in clean.itertuples(index=False):
        chance, best, source = recorded_chance(records.get(row.run_id) or {}, row.task, row.metric)
        note = near_chance_note(row.value, row.ci_low, chance, bool(row.higher_is_better), best)
        rows.append({**{key: getattr(row, key) for key in RUN_KEYS}, "chance": chance, "chance_source": source,
                     "clean_ci_low": row.ci_low, "summary_note": note})
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "chance", "chance_source", "clean_ci_low", "summary_note"])


def summary_notes(models: "pd.DataFrame") -> list[str]:
    """One line per run whose chance levels had to be assumed or stayed unknown (older run.json)."""
    notes = []
    guessed = models[models.chance_source.isin([BALANCED_ASSUMED, UNKNOWN]) & models.higher_is_better]
    for run_id, part in guessed.groupby("run_id", sort=False):
        assumed = (part.chance_source == BALANCED_ASSUMED).any()
        notes.append(f"Run {run_id}: its run.json holds no class counts, so chance levels are "
                     f"{'assumed for balanced classes or ' if assumed else ''}unknown "
                     f"({', '.join(dict.fromkeys(part.metric))}).")
    return notes


def undefined_summary_notes(ranking: "pd.DataFrame") -> list[str]:
    """One line per ranked primary metric whose retention or normalised AUC is undefined."""
    return [
        f"{row.model} on {row.dataset} · {row.task} · {row.metric}: "
        f"{'retention and normalised AUC' if undefines_retention(row.summary_note) else 'normalised AUC'} undefined "
        f"(clean {row.clean_value:.3f}; {row.summary_note})."
        for row in ranking.itertuples() if row.summary_note
    ]
