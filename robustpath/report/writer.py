"""Write a report (one run or several merged) in the chosen formats, atomically.

Files under the output folder:

| format | files |
|---|---|
| csv | results.csv (the long table) and robustness_<table>.csv for each summary table |
| json | report.json: schema_version, runs, baseline and every table as records |
| parquet | results.parquet and robustness_<table>.parquet (needs pyarrow) |
| markdown | report.md and plots/*.png |

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
) -> dict[str, Path]:
    """Summarise ``table`` (unless ``summary`` is given) and write it in ``formats`` → name → path.

    ``gallery`` (with markdown and plots): a run's corruption gallery to draw, or the
    PNG of one already drawn (a merged report copies it) → plots/corruption_gallery.png.
    """
    from robustpath.robustness import summarise_results

    formats = check_formats(formats)
    out_dir = ensure_writable_dir(Path(out_dir))
    summary = summary or summarise_results(table, list(records), baseline)
    robustness = {f"robustness_{name}": frame for name, frame in summary.tables().items()}
    files = {RESULTS_NAME: table, **{name: frame for name, frame in robustness.items() if not frame.empty}}
    _remove_stale_tables(out_dir, [name for name in robustness if name not in files], formats)
    paths: dict[str, Path] = {}
    drawing = nullcontext({})
    if plots and "markdown" in formats:
        from robustpath.report.plots import drawing_plots

        drawing = drawing_plots(table, summary, out_dir, gallery)
    with drawing as written:  # the plots are drawn meanwhile (in worker processes where possible)
        if "csv" in formats:
            paths.update(write_csv_tables(files, out_dir))
        if "parquet" in formats:
            paths.update({f"{name}.parquet": path for name, path in write_parquet_tables(files, out_dir).items()})
        if "json" in formats:  # one document: every table, empty ones as []
            runs = [{"run_id": r["run_id"], "model": r["model"]["name"], "dataset": r["dataset"]["name"]} for r in records]
            paths["json"] = write_json_document({RESULTS_NAME: table, **robustness}, out_dir, runs=runs,
                                                baseline=summary.baseline)
        if "markdown" in formats:
            from robustpath.report.markdown import render_report

            paths["report"] = write_text_atomic(out_dir / REPORT_FILE, render_report(table, records, summary, written))
        if outcomes:
            from robustpath.outcomes import save_outcomes

            paths["outcomes"] = save_outcomes(out_dir / OUTCOMES_FILE, outcomes)
    paths.update({f"plot:{relative}": out_dir / relative for section in written.values() for relative in section})
    return paths


def _remove_stale_tables(out_dir: Path, names: Sequence[str], formats: Sequence[str]) -> None:
    """Delete robustness_<name>.csv / .parquet left by an earlier report in ``out_dir`` for tables that
    are empty now (no data-scale sweep, no blur after the resize): they would contradict results.csv."""
    suffixes = [suffix for fmt, suffix in (("csv", ".csv"), ("parquet", ".parquet")) if fmt in formats]
    for name in names:
        for suffix in suffixes:
            (Path(out_dir) / f"{name}{suffix}").unlink(missing_ok=True)


def written_summary(paths: Mapping[str, Path], out_dir: Path) -> str:
    """'15 files: a.csv, b.md, embeddings/ (3 files), plots/ (6 files)': every file written under
    ``out_dir``, those in a subfolder counted per folder."""
    out_dir = Path(out_dir)
    top, folders = set(), {}
    for path in map(Path, paths.values()):
        inside = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in inside:
            relative = file.relative_to(out_dir) if file.is_relative_to(out_dir) else Path(file.name)
            if len(relative.parts) > 1:
                folders.setdefault(relative.parts[0], set()).add(relative)
            else:
                top.add(relative.name)
    count = len(top) + sum(len(files) for files in folders.values())
    parts = sorted(top) + [f"{folder}/ ({len(files)} file{'s' if len(files) != 1 else ''})" for folder, files in sorted(folders.items())]
    return f"{count} file{'s' if count != 1 else ''}: {', '.join(parts)}"


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
