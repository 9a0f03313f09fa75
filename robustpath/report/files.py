"""Write a run's outputs atomically: results.csv, report.md, then run.json (completed).

The run's notes (run.json, report.md, printed by ``eval``) gain one line per primary
metric whose retention / normalised AUC are undefined because it is near chance.

run.json is written last: until it says ``"completed": true`` a re-run of the same
command resumes the run (robustpath.run_state); after it, ``OUT/.partial`` (the
stored embeddings of the unfinished run) is removed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.atomic import ensure_writable_dir, write_json_atomic
from robustpath.report.formats import DEFAULT_FORMATS, table_csv
from robustpath.report.writer import write_report
from robustpath.run_state import finish_run_folder

if TYPE_CHECKING:  # pragma: no cover
    from robustpath.runner import RunResult

RESULTS_FILE = "results.csv"
REPORT_FILE = "report.md"
RECORD_FILE = "run.json"


def results_csv(table) -> str:
    """The results table as CSV text (floats at full precision, stable order)."""
    return table_csv(table)  # with the schema_version column


def write_run_outputs(result: "RunResult", out_dir: Path, formats=None, html_max_images: int | None = None) -> dict[str, Path]:
    """Write the per-sample exports (predictions.csv, misclassified.csv, embeddings/:
    robustpath.exports), results.csv, the report in ``formats`` (default csv + markdown +
    html: robustness_*.csv, report.md + plots/, the corruption gallery included,
    report.html with its failure gallery from the exports; json: report.json; parquet)
    and outcomes.npz, then run.json; then drop the partial store."""
    from robustpath.heap import frozen_heap

    with frozen_heap():
        return _write_run_outputs(result, out_dir, formats, html_max_images)


def _write_run_outputs(result: "RunResult", out_dir: Path, formats, html_max_images: int | None) -> dict[str, Path]:
    from robustpath.chance_summary import undefined_summary_notes
    from robustpath.robustness import summarise_results

    out_dir = ensure_writable_dir(Path(out_dir))
    summary = summarise_results(result.table, [result.record])
    notes = result.record.setdefault("notes", [])  # printed by eval, kept in run.json and report.md
    notes += [note for note in (*undefined_summary_notes(summary.ranking), *summary.notes) if note not in notes]
    paths: dict[str, Path] = {}
    if getattr(result, "exports", None) is not None:  # first: report.html shows images these files list
        from robustpath.exports import write_exports

        paths.update(write_exports(result.exports, result.outcomes, out_dir))
    paths.update(write_report(
        result.table, out_dir, records=[result.record], formats=("csv", *(formats or DEFAULT_FORMATS)),
        outcomes=getattr(result, "outcomes", None), gallery=getattr(result, "gallery", None), summary=summary,
        html_max_images=html_max_images,
    ))
    from robustpath.report.plots import GALLERY_FILE, PLOTS_DIR

    if not (out_dir / PLOTS_DIR / GALLERY_FILE).is_file():  # run.json names the gallery images only when drawn,
        result.record.pop("gallery", None)  # so a merged report's caption and picture come from the same run
    paths["record"] = write_json_atomic(out_dir / RECORD_FILE, result.record)
    if result.record.get("completed", True):
        finish_run_folder(out_dir)
    return paths
