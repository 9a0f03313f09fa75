"""`robustpath report`: merge the runs of several models / datasets into one report.

Registered on the main app by ``register(app)``; ``FormatOption`` and
``HtmlMaxImagesOption`` are shared with ``robustpath eval``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from robustpath.cli.support import (
    DebugOption,
    PlainUsageCommand,
    choice_option,
    handle_errors,
    parse_output_folder,
    stderr_console,
    stdout_console,
)
from robustpath.errors import UsageError
from robustpath.spec.run_spec import OUTPUT_FORMATS
from robustpath.util.atomic import check_can_create
from robustpath.output.report.html import DEFAULT_MAX_IMAGES


FormatOption = Annotated[
    Optional[list[str]],
    choice_option(
        "--format", "-f", values=OUTPUT_FORMATS, kind="format",
        help="Output format, repeatable: csv (tables), markdown (report.md + plots), html (report.html: one "
        "self-contained page with failure galleries), json (report.json), parquet (needs pyarrow); default: csv, "
        "markdown and html.",
    ),
]

HtmlMaxImagesOption = Annotated[
    int,
    typer.Option(
        "--html-max-images", min=0,
        help="report.html: at most N test images per task × corruption × severity in the failure gallery "
        "(flipped ones, then a third that stayed right); 0 leaves the failure gallery out.",
    ),
]


def report_command(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN_DIR...", help="Run folders written by `robustpath eval` (each with results.csv and run.json).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", parser=parse_output_folder, metavar="DIR",
                                      help="Folder for the merged report (new, empty or an earlier report).")],
    baseline: Annotated[
        Optional[str], typer.Option("--baseline", help="Model name to compute corruption errors (mCE) against.")
    ] = None,
    formats: FormatOption = None,
    no_plots: Annotated[
        bool, typer.Option("--no-plots", help="Skip the PNG plots (and the first run's corruption gallery) in report.md.")
    ] = False,
    html_max_images: HtmlMaxImagesOption = DEFAULT_MAX_IMAGES,
    skip_incomplete: Annotated[
        bool, typer.Option("--skip-incomplete", help="Leave out unfinished runs (with a notice) instead of stopping.")
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Merge the runs of several models or datasets into one report.

    Ranking, worst corruptions, mCE and plots. Reads each RUN_DIR/results.csv and run.json (and,
    for report.html's failure gallery, its predictions.csv and misclassified.csv); writes the
    merged results table, robustness summaries, report.md with plots, report.html and
    report.json (per --format) to --out; prints the ranking.
    """
    from robustpath.output.report.formats import check_formats
    from robustpath.output.report.inputs import load_runs
    from robustpath.output.report.terminal import render_ranking
    from robustpath.output.report.writer import run_gallery_png, write_report_folder, written_summary
    from robustpath.results.robustness import summarise_results

    chosen = check_formats(formats or ())
    if any(out.resolve() == Path(run_dir).resolve() for run_dir in run_dirs):
        raise UsageError(f"--out '{out}' is one of the run folders; its results.csv would be overwritten")
    check_can_create(out)
    runs = load_runs(run_dirs, skip_incomplete=skip_incomplete)
    summary = summarise_results(runs.table, runs.records, baseline)
    used = [run_dir for run_dir in run_dirs if run_dir not in runs.skipped]
    paths, notices = write_report_folder(
        out, runs.table, records=runs.records, formats=chosen, summary=summary, plots=not no_plots,
        gallery=run_gallery_png(used), notes=runs.notes,  # the first run's corruption gallery
        run_dirs=used, html_max_images=html_max_images,
    )
    render_ranking(summary.ranking, stdout_console(), summary.baseline)
    for note in runs.notes + notices:
        stderr_console().print(f"note: {note}", highlight=False)
    stderr_console().print(f"Wrote {written_summary(paths, out)} to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `report` command to ``app``."""
    app.command("report", cls=PlainUsageCommand)(handle_errors(report_command))
