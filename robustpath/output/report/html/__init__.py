"""report.html: one self-contained page per run (``robustpath eval``) or merge (``robustpath report``).

The page holds its styles, script and images inline and loads nothing: its Content
Security Policy allows only its own script and style (by SHA-256) and data: images, so
a browser refuses any network request.  It is rendered with Jinja2 from
templates/report.html.j2 (+ report.css, report.js) and contains the run header, the
summary and ranking tables (sortable), degradation curves and blur before vs after as
inline SVG (hover for values; toggles for series and panels), the failure gallery (per
task × corruption × severity: images whose prediction flipped, and a few that stayed
right; see robustpath.output.report.html.failures), the corruption gallery, the corruption
parameters, the result grids, every row of results.csv and the definitions.

Per-sample data (predictions.csv, misclassified.csv) are read from each run's folder;
images from the run's data (robustpath.output.report.html.thumbnails).  A run without them gets
a line in the page that says why, never an error.
"""
from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from robustpath.results.robustness import RobustnessSummary
    from robustpath.preview.run_gallery import RunGallery

from robustpath.output.layout import HTML_FILE, RECORD_FILE  # noqa: E402
DEFAULT_MAX_IMAGES = 6
TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(script: str, style: str) -> str:
    """Nothing from anywhere, except this page's own script and style (by hash) and data: images."""
    return (f"default-src 'none'; img-src data:; style-src {_sha256_source(style)}; "
            f"script-src {_sha256_source(script)}; base-uri 'none'; form-action 'none'")


def render_html_report(
    table: "pd.DataFrame", records: Sequence[Mapping], summary: "RobustnessSummary | None" = None, *,
    run_folders: Mapping[str, Path] | None = None, gallery: "RunGallery | Path | None" = None,
    max_images: int = DEFAULT_MAX_IMAGES,
) -> str:
    """The page for ``table`` (one run or several merged) → HTML text.

    ``run_folders``: run id → the folder with that run's predictions.csv and
    misclassified.csv (the failure gallery; runs without one get a line saying so);
    ``gallery``: a run's corruption gallery, or the PNG of one; ``max_images``: at most
    this many test images per failure-gallery cell (0: no failure gallery).
    """
    from markupsafe import Markup

    from robustpath.errors import UsageError
    from robustpath.output.report.html.page import page_context

    if max_images < 0:
        raise UsageError(f"--html-max-images must be 0 or more, got {max_images}")
    if summary is None:
        from robustpath.results.robustness import summarise_results

        summary = summarise_results(table, list(records))
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    style = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    context = page_context(table, records, summary, folders=dict(run_folders or {}), gallery=gallery,
                           max_images=max_images)
    return _environment().get_template("report.html.j2").render(
        **context, script=Markup(script), style=Markup(style), csp=content_security_policy(script, style),
    )


def write_html_report(out_dir: Path, table: "pd.DataFrame", records: Sequence[Mapping],
                      summary: "RobustnessSummary | None" = None, **options) -> Path:
    """Render (see render_html_report) and write OUT/report.html atomically → its path."""
    from robustpath.util.atomic import write_text_atomic

    return write_text_atomic(Path(out_dir) / HTML_FILE, render_html_report(table, records, summary, **options))


def find_run_folders(run_dirs: Sequence[Path]) -> dict[str, Path]:
    """run id → folder, for the folders that hold one run's per-sample files (its run.json names the run)."""
    folders: dict[str, Path] = {}
    for run_dir in map(Path, run_dirs):
        try:
            run_id = json.loads((run_dir / RECORD_FILE).read_text()).get("run_id")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(run_id, str):
            folders.setdefault(run_id, run_dir)
    return folders
