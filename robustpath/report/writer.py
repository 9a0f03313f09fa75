"""Write a report (one run or several merged) in the chosen formats, atomically.

Files under the output folder:

| format | files |
|---|---|
| csv | results.csv (the long table) and robustness_<table>.csv for each summary table |
| json | report.json: schema_version, runs, baseline, notes (undefined summaries) and every table as records |
| parquet | results.parquet and robustness_<table>.parquet (needs pyarrow) |
| markdown | report.md and plots/*.png |
| html | report.html: one self-contained page (robustpath.report.html) |

``outcomes`` (per-sample outcomes of one run) are written to outcomes.npz.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from robustpath.atomic import ensure_writable_dir, write_text_atomic
from robustpath.errors import DataError
from robustpath.report.formats import check_formats, write_csv_tables, write_json_document, write_parquet_tables

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from robustpath.outcomes import Outcomes
    from robustpath.robustness import RobustnessSummary
    from robustpath.run_gallery import RunGallery

RESULTS_NAME = "results"
REPORT_FILE = "report.md"
OUTCOMES_FILE = "outcomes.npz"
RUN_RESULTS = "results.csv"
RUN_RECORD = "run.json"


def write_report(
    table: "pd.DataFrame",
    out_dir: Path,
    *,
    records: Sequence[Mapping],
    formats: Iterable[str] | None = None,
    baseline: str | None = None,
    outcomes: "Mapping[tuple[str, str], Outcomes] | None" = None,
    plots: bool = True,
    summary: "RobustnessSummary | None" = None,
    gallery: "RunGallery | Path | None" = None,
    run_dirs: Sequence[Path] | None = None,
    html_max_images: int | None = None,
) -> dict[str, Path]:
    """Summarise ``table`` (unless ``summary`` is given) and write it in ``formats`` → name → path.

    ``gallery`` (with markdown and plots): a run's corruption gallery to draw, or the
    PNG of one already drawn (a merged report copies it) → plots/corruption_gallery.png.
    html: the failure gallery reads the per-sample files of ``run_dirs`` (a merge) or,
    for one run, of ``out_dir``; at most ``html_max_images`` images per cell.
    """
    from robustpath.chance_summary import undefined_summary_notes
    from robustpath.robustness import summarise_results

    formats = check_formats(formats)
    out_dir = ensure_writable_dir(Path(out_dir))
    summary = summary or summarise_results(table, list(records), baseline)
    tables = {RESULTS_NAME: table, **{f"robustness_{name}": frame for name, frame in summary.tables().items()}}
    paths: dict[str, Path] = {}
    drawing = nullcontext({})
    if plots and "markdown" in formats:
        from robustpath.report.plots import drawing_plots

        drawing = drawing_plots(table, summary, out_dir, gallery)
    with drawing as written:  # the plots are drawn meanwhile (in worker processes where possible)
        if "csv" in formats:
            paths.update(write_csv_tables(tables, out_dir))
        if "parquet" in formats:
            paths.update({f"{name}.parquet": path for name, path in write_parquet_tables(tables, out_dir).items()})
        if "json" in formats:
            runs = [{"run_id": r["run_id"], "model": r["model"]["name"], "dataset": r["dataset"]["name"]} for r in records]
            notes = [*undefined_summary_notes(summary.ranking), *summary.notes]
            paths["json"] = write_json_document(tables, out_dir, runs=runs, baseline=summary.baseline, notes=notes)
        if "markdown" in formats:
            from robustpath.report.markdown import render_report

            paths["report"] = write_text_atomic(out_dir / REPORT_FILE, render_report(table, records, summary, written))
        if "html" in formats:
            paths["html"] = _write_html(table, records, summary, out_dir, gallery, run_dirs, html_max_images)
        if outcomes:
            from robustpath.outcomes import save_outcomes

            paths["outcomes"] = save_outcomes(out_dir / OUTCOMES_FILE, outcomes)
    return paths


def _write_html(table, records, summary, out_dir: Path, gallery, run_dirs, max_images: int | None) -> Path:
    from robustpath.report.html import DEFAULT_MAX_IMAGES, find_run_folders, write_html_report

    if run_dirs is not None:
        folders = find_run_folders(run_dirs)
    else:  # one run writing its own folder: its per-sample files are there
        folders = {records[0]["run_id"]: out_dir} if len(records) == 1 else {}
    return write_html_report(out_dir, table, records, summary, run_folders=folders, gallery=gallery,
                             max_images=DEFAULT_MAX_IMAGES if max_images is None else max_images)


def run_gallery_png(run_dirs: Sequence[Path]) -> Path | None:
    """The corruption gallery PNG of the first run folder that has one (a merged report shows it)."""
    from robustpath.report.plots import GALLERY_FILE, PLOTS_DIR

    for run_dir in map(Path, run_dirs):
        if (run_dir / PLOTS_DIR / GALLERY_FILE).is_file():
            return run_dir / PLOTS_DIR / GALLERY_FILE
    return None


def minimal_record(run_id: str, table: "pd.DataFrame") -> dict:
    """A stand-in for a missing run.json: names only (chance levels then stay unknown)."""
    rows = table[table.run_id == run_id]
    return {
        "run_id": run_id, "model": {"name": str(rows.model.iloc[0])},
        "dataset": {"name": str(rows.dataset.iloc[0]), "classes": []},
        "notes": [f"Run {run_id}: no run.json, so the number of classes (chance level) is unknown."],
    }


def load_runs(run_dirs: Sequence[Path]) -> tuple["pd.DataFrame", list[dict]]:
    """Read RUN_DIR/results.csv (+ run.json) of each folder → (merged version-2 table, records)."""
    import pandas as pd

    from robustpath.results import load_results_table

    tables, records, origin = [], [], {}
    for run_dir in map(Path, run_dirs):
        results = run_dir / RUN_RESULTS
        if not results.is_file():
            raise DataError(f"'{run_dir}' has no {RUN_RESULTS}: give folders written by `robustpath eval`")
        table = load_results_table(results)
        for run_id in dict.fromkeys(table.run_id):
            if run_id in origin:
                raise DataError(
                    f"run '{run_id}' appears twice: in '{origin[run_id]}' and '{run_dir}' (the same model, data, "
                    "options and seed give the same run id); give one of them"
                )
            origin[run_id] = run_dir
        record_path = run_dir / RUN_RECORD
        known = {}
        if record_path.is_file():
            try:
                record = json.loads(record_path.read_text())
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read '{record_path}': {exc}") from None
            known[record.get("run_id")] = record
        records += [known.get(run_id) or minimal_record(run_id, table) for run_id in dict.fromkeys(table.run_id)]
        tables.append(table)
    if not tables:
        raise DataError("no run folders given")
    return pd.concat(tables, ignore_index=True), records
