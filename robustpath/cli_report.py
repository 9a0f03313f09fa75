"""`robustpath report`: merge the runs of several models / datasets into one report.

Registered on the main app by ``register(app)``; ``OutputFormat`` and
``FormatOption`` is shared with ``robustpath eval``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from robustpath.cli_support import (
    DebugOption,
    PlainUsageCommand,
    choice_option,
    handle_errors,
    stderr_console,
    stdout_console,
)
from robustpath.config import OUTPUT_FORMATS


FormatOption = Annotated[
    Optional[list[str]],
    choice_option(
        "--format", "-f", values=OUTPUT_FORMATS, kind="format",
        help="Output format, repeatable: csv (tables), markdown (report.md + plots), json (report.json), "
        "parquet (needs pyarrow); default: csv and markdown.",
    ),
]


def report_command(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN_DIR...", help="Run folders written by `robustpath eval` (each with results.csv and run.json).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the merged report.")],
    baseline: Annotated[
        Optional[str], typer.Option("--baseline", help="Model name to compute corruption errors (mCE) against.")
    ] = None,
    formats: FormatOption = None,
    no_plots: Annotated[
        bool, typer.Option("--no-plots", help="Skip the PNG plots (and the first run's corruption gallery) in report.md.")
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Merge the runs of several models or datasets into one report.

    Ranking, worst corruptions, mCE and plots. Reads each RUN_DIR/results.csv and run.json; writes the merged results table, robustness
    summaries, report.md with plots and report.json (per --format) to --out; prints the ranking.
    """
    from robustpath.atomic import check_can_create
    from robustpath.errors import UsageError
    from robustpath.report.formats import check_formats
    from robustpath.report.terminal import render_ranking
    from robustpath.report.writer import load_runs, run_gallery_png, write_report, written_summary
    from robustpath.robustness import summarise_results

    chosen = check_formats(formats or ())
    if any(out.resolve() == Path(run_dir).resolve() for run_dir in run_dirs):
        raise UsageError(f"--out '{out}' is one of the run folders; its results.csv would be overwritten")
    check_can_create(out)
    table, records = load_runs(run_dirs)
    summary = summarise_results(table, records, baseline)
    paths = write_report(table, out, records=records, formats=chosen, summary=summary, plots=not no_plots,
                         gallery=run_gallery_png(run_dirs))  # the first run's corruption gallery
    render_ranking(summary.ranking, stdout_console(), summary.baseline)
    stderr_console().print(f"Wrote {written_summary(paths, out)} to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `report` command to ``app``."""
    app.command("report", cls=PlainUsageCommand)(handle_errors(report_command))
