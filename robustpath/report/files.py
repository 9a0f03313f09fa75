"""Write a run's outputs atomically: results.csv, report.md, run.json."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.atomic import ensure_writable_dir, write_json_atomic, write_text_atomic
from robustpath.report.markdown import render_markdown

if TYPE_CHECKING:  # pragma: no cover
    from robustpath.evaluate import RunResult

RESULTS_FILE = "results.csv"
REPORT_FILE = "report.md"
RECORD_FILE = "run.json"


def results_csv(table) -> str:
    """The results table as CSV text (floats at full precision, stable order)."""
    return table.to_csv(index=False, float_format="%.12g", lineterminator="\n")


def write_run_outputs(result: "RunResult", out_dir: Path) -> dict[str, Path]:
    out_dir = ensure_writable_dir(Path(out_dir))
    paths = {
        "results": write_text_atomic(out_dir / RESULTS_FILE, results_csv(result.table)),
        "report": write_text_atomic(out_dir / REPORT_FILE, render_markdown(result.table, result.record)),
    }
    paths["record"] = write_json_atomic(out_dir / RECORD_FILE, result.record)
    return paths
