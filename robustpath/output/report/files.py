"""Write a run's outputs: results.csv, the report, the exports and the final run.json, published together.

Everything is written into the staging folder of the locked run folder and published as
one set (robustpath.output.output_folder): until the final run.json (``"completed": true``) is
in place a re-run of the same command resumes the run (robustpath.output.run_folder); the
publication removes ``OUT/.partial`` (the stored embeddings of the unfinished run) just
before it.  An interrupted write (Ctrl-C, a full disk) leaves the folder as it was.

The run's notes (run.json, report.md, printed by ``eval``) gain one line per primary
metric whose retention / normalised AUC are undefined because it is near chance.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.util.atomic import write_json_atomic
from robustpath.output.output_folder import RECORD_FILE
from robustpath.output.report.formats import DEFAULT_FORMATS, table_csv
from robustpath.output.report.writer import write_report

if TYPE_CHECKING:  # pragma: no cover
    from robustpath.output.run_folder import RunFolder
    from robustpath.run.runner import RunResult

from robustpath.output.layout import REPORT_FILE, RESULTS_FILE  # noqa: E402,F401  (names of this module)


def results_csv(table) -> str:
    """The results table as CSV text (floats at full precision, stable order)."""
    return table_csv(table)  # with the schema_version column


def write_run_outputs(result: "RunResult", out_dir: Path, formats=None, html_max_images: int | None = None) -> dict[str, Path]:
    """Write the per-sample exports (predictions.csv, misclassified.csv, embeddings/:
    robustpath.output.exports), results.csv, the report in ``formats`` (default csv + markdown +
    html: robustness_*.csv, report.md + plots/, the corruption gallery included,
    report.html with its failure gallery from the exports; json: report.json; parquet),
    outcomes.npz, then run.json, into ``out_dir``; unlock it.

    ``out_dir`` is the run's own --out folder (locked since run_evaluation), or any other
    folder that could take a new run.  Returns name → final path; notices about the folder
    (earlier outputs kept because someone changed them) go to ``result.notices``.
    RunInterrupted(complete=True) when Ctrl-C came while the complete set was published.
    """
    from robustpath.util.heap import frozen_heap
    from robustpath.output.run_folder import RunInterrupted

    out_dir = Path(out_dir)
    folder = _locked_folder(result, out_dir)
    try:
        with frozen_heap(), folder.publishing() as staging:
            written = _write_run_outputs(result, staging, formats, html_max_images)
        paths = {name: out_dir / path.relative_to(staging) for name, path in written.items()}
    finally:
        folder.close()
        if folder is result.folder:
            result.folder = None
    result.notices += folder.output.kept_notices()
    if folder.output.interrupted:
        raise RunInterrupted(out_dir, complete=True)
    return paths


def _locked_folder(result: "RunResult", out_dir: Path) -> "RunFolder":
    """The result's own locked folder when it is ``out_dir``, else ``out_dir`` opened for a new run."""
    from robustpath.output.run_folder import open_run_folder

    own = getattr(result, "folder", None)
    if own is not None and own.path.resolve() == out_dir.resolve():
        return own
    return open_run_folder(out_dir, result.record.get("spec", {}))


def _write_run_outputs(result: "RunResult", out_dir: Path, formats, html_max_images: int | None) -> dict[str, Path]:
    from robustpath.results.chance_summary import undefined_summary_notes
    from robustpath.results.robustness import summarise_results

    summary = summarise_results(result.table, [result.record])
    notes = result.record.setdefault("notes", [])  # printed by eval, kept in run.json and report.md
    notes += [note for note in (*undefined_summary_notes(summary.ranking), *summary.notes) if note not in notes]
    paths: dict[str, Path] = {}
    if getattr(result, "exports", None) is not None:  # first: report.html shows images these files list
        from robustpath.output.exports import write_exports

        paths.update(write_exports(result.exports, result.outcomes, out_dir))
    paths.update(write_report(
        result.table, out_dir, records=[result.record], formats=("csv", *(formats or DEFAULT_FORMATS)),
        outcomes=getattr(result, "outcomes", None), gallery=getattr(result, "gallery", None), summary=summary,
        html_max_images=html_max_images,
    ))
    from robustpath.output.report.plots import GALLERY_FILE, PLOTS_DIR

    if not (out_dir / PLOTS_DIR / GALLERY_FILE).is_file():  # run.json names the gallery images only when drawn,
        result.record.pop("gallery", None)  # so a merged report's caption and picture come from the same run
    paths["record"] = write_json_atomic(out_dir / RECORD_FILE, result.record)
    return paths
