"""Write a report (one run or several merged) in the chosen formats, atomically.

Files under the output folder:

| format | files |
|---|---|
| csv | results.csv (the long table) and robustness_<table>.csv for each summary table |
| json | report.json: schema_version, runs, baseline, notes (undefined summaries, the report's own notes) and every table as records |
| parquet | results.parquet and robustness_<table>.parquet (needs pyarrow) |
| markdown | report.md and plots/*.png |
| html | report.html: one self-contained page (robustpath.output.report.html) |

``outcomes`` (per-sample outcomes of one run) are written to outcomes.npz.
``write_report_folder`` publishes a merged report into its own --out folder
(robustpath.output.output_folder: locked, written aside, replacing only an earlier report).
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from robustpath.util.atomic import ensure_writable_dir, write_text_atomic
from robustpath.output.report.formats import check_formats, write_csv_tables, write_json_document, write_parquet_tables

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from robustpath.tasks.outcomes import Outcomes
    from robustpath.results.robustness import RobustnessSummary
    from robustpath.preview.run_gallery import RunGallery

from robustpath.output.layout import OUTCOMES_FILE, REPORT_FILE, RESULTS_NAME, summary_name  # noqa: E402


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
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Summarise ``table`` (unless ``summary`` is given) and write it in ``formats`` → name → path.

    ``gallery`` (with markdown and plots): a run's corruption gallery to draw, or the
    PNG of one already drawn (a merged report copies it) → plots/corruption_gallery.png.
    html: the failure gallery reads the per-sample files of ``run_dirs`` (a merge) or,
    for one run, of ``out_dir``; at most ``html_max_images`` images per cell.
    ``notes``: about the report as a whole (report.md shows them with the runs' notes).
    """
    from robustpath.results.robustness import summarise_results

    formats = check_formats(formats)
    out_dir = ensure_writable_dir(Path(out_dir))
    if notes:  # report.md shows every record's notes once, under the header
        records = [{**records[0], "notes": [*records[0].get("notes", []), *notes]}, *records[1:]]
    summary = summary or summarise_results(table, list(records), baseline)
    robustness = {summary_name(name): frame for name, frame in summary.tables().items()}
    # empty tables are not written (an earlier run's file of that name is removed when the set is published)
    files = {RESULTS_NAME: table, **{name: frame for name, frame in robustness.items() if not frame.empty}}
    paths: dict[str, Path] = {}
    drawing = nullcontext({})
    if plots and "markdown" in formats:
        from robustpath.output.report.plots import drawing_plots

        drawing = drawing_plots(table, summary, out_dir, gallery)
    with drawing as written:  # the plots are drawn meanwhile (in worker processes where possible)
        paths.update(_write_tables(files, {RESULTS_NAME: table, **robustness}, formats, out_dir, records, summary, notes))
        if "markdown" in formats:
            from robustpath.output.report.markdown import render_report

            paths["report"] = write_text_atomic(out_dir / REPORT_FILE, render_report(table, records, summary, written))
        if "html" in formats:
            paths["html"] = _write_html(table, records, summary, out_dir, gallery, run_dirs, html_max_images)
        if outcomes:
            from robustpath.tasks.outcomes import save_outcomes

            paths["outcomes"] = save_outcomes(out_dir / OUTCOMES_FILE, outcomes)
    paths.update({f"plot:{relative}": out_dir / relative for section in written.values() for relative in section})
    return paths


def _write_tables(files, every_table, formats, out_dir: Path, records, summary, notes) -> dict[str, Path]:
    """The tables in the csv and parquet formats (``files``: the non-empty ones) and the json document
    (``every_table``, empty ones as [])."""
    from robustpath.results.chance_summary import undefined_summary_notes

    paths: dict[str, Path] = {}
    if "csv" in formats:
        paths.update(write_csv_tables(files, out_dir))
    if "parquet" in formats:
        paths.update({f"{name}.parquet": path for name, path in write_parquet_tables(files, out_dir).items()})
    if "json" in formats:
        runs = [{"run_id": r["run_id"], "model": r["model"]["name"], "dataset": r["dataset"]["name"]} for r in records]
        json_notes = [*undefined_summary_notes(summary.ranking), *summary.notes, *notes]
        paths["json"] = write_json_document(every_table, out_dir, runs=runs, baseline=summary.baseline, notes=json_notes)
    return paths


def _write_html(table, records, summary, out_dir: Path, gallery, run_dirs, max_images: int | None) -> Path:
    from robustpath.output.report.html import DEFAULT_MAX_IMAGES, find_run_folders, write_html_report

    if run_dirs is not None:
        folders = find_run_folders(run_dirs)
    else:  # one run writing its own folder: its per-sample files are there
        folders = {records[0]["run_id"]: out_dir} if len(records) == 1 else {}
    return write_html_report(out_dir, table, records, summary, run_folders=folders, gallery=gallery,
                             max_images=DEFAULT_MAX_IMAGES if max_images is None else max_images)


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
    from robustpath.output.report.plots import GALLERY_FILE, PLOTS_DIR

    for run_dir in map(Path, run_dirs):
        if (run_dir / PLOTS_DIR / GALLERY_FILE).is_file():
            return run_dir / PLOTS_DIR / GALLERY_FILE
    return None


def write_report_folder(out_dir: Path, table: "pd.DataFrame", **options) -> tuple[dict[str, Path], list[str]]:
    """write_report into ``out_dir`` as one publication → (name → final path, notices).

    ``out_dir`` must be new, empty or hold an earlier report: a run folder or a folder
    with other files is refused, and of an earlier report only the files robustpath
    wrote, unchanged, are replaced.
    """
    from robustpath.output.output_folder import OutputFolder

    folder = OutputFolder.open(Path(out_dir), "report")
    try:
        folder.refuse_unless_own()
        with folder.publishing() as staging:
            written = write_report(table, staging, **options)
        paths = {name: folder.path / path.relative_to(staging) for name, path in written.items()}
    finally:
        folder.close()
    if folder.interrupted:  # Ctrl-C while the complete report was published
        raise KeyboardInterrupt
    return paths, folder.kept_notices()
