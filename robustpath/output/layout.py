"""Every file robustpath writes into a run or report folder, named once.

    OUT/
      run.json                      the run's record (written last: its "completed" marks a finished run)
      results.csv                   the tidy results table (results.parquet with --format parquet)
      robustness_<table>.csv        each robustness summary table (.parquet with --format parquet)
      report.md  report.html  report.json
      plots/<section>__<keys>.png   degradation, retention, blur_stages, data_scale; corruption_gallery.png
      predictions.csv[.gz]  misclassified.csv[.gz]   per-sample exports
      outcomes.npz                  per-sample outcomes (robustpath.tasks.outcomes)
      embeddings/                   manifest.json, samples.csv, *.safetensors (--save-embeddings)
      .partial/  .lock  .robustpath-files.json      an unfinished run's embeddings, the writer's lock,
                                                    the list of files robustpath wrote

The modules that write these files take their names from here; ``legacy_run_files``
(the names of a run folder written before the file list existed) is derived from them.
"""
from __future__ import annotations

from robustpath.embedding.saved import EMBEDDINGS_DIR, MANIFEST_FILE, SAMPLES_FILE

RECORD_FILE = "run.json"
RESULTS_NAME = "results"  # results.csv / results.parquet / report.json's "results" table
RESULTS_FILE = f"{RESULTS_NAME}.csv"
SUMMARY_PREFIX = "robustness_"  # robustness_<table>.csv / .parquet
REPORT_FILE = "report.md"
HTML_FILE = "report.html"
JSON_FILE = "report.json"
OUTCOMES_FILE = "outcomes.npz"
PREDICTIONS_FILE = "predictions.csv"
MISCLASSIFIED_FILE = "misclassified.csv"
COMPRESSED_SUFFIX = ".gz"  # predictions and misclassified with compression
PLOTS_DIR = "plots"
PLOT_SECTIONS = ("degradation", "retention", "blur_stages", "data_scale")  # plots/<section>__<keys>.png
GALLERY_FILE = "corruption_gallery.png"
EMBEDDING_TENSORS = "*.safetensors"
PARTIAL_DIR = ".partial"
LOCK_FILE = ".lock"
FILE_LIST = ".robustpath-files.json"

__all__ = [
    "COMPRESSED_SUFFIX", "EMBEDDINGS_DIR", "EMBEDDING_TENSORS", "FILE_LIST", "GALLERY_FILE", "HTML_FILE", "JSON_FILE",
    "LOCK_FILE", "MANIFEST_FILE", "MISCLASSIFIED_FILE", "OUTCOMES_FILE", "PARTIAL_DIR", "PLOTS_DIR", "PLOT_SECTIONS",
    "PREDICTIONS_FILE", "RECORD_FILE", "REPORT_FILE", "RESULTS_FILE", "RESULTS_NAME", "SAMPLES_FILE",
    "SUMMARY_PREFIX", "legacy_run_files", "summary_name",
]


def summary_name(table: str) -> str:
    """The file stem of a robustness summary table: 'ranking' → 'robustness_ranking'."""
    return f"{SUMMARY_PREFIX}{table}"


def legacy_run_files() -> tuple[str, ...]:
    """Names (fnmatch patterns, relative POSIX paths) of what robustpath wrote into a run folder
    before the file list existed: recognised as its own in such a folder."""
    return (
        RECORD_FILE, RESULTS_FILE, REPORT_FILE, JSON_FILE, PREDICTIONS_FILE, MISCLASSIFIED_FILE, OUTCOMES_FILE,
        f"{SUMMARY_PREFIX}*.csv", f"{RESULTS_NAME}.parquet", f"{SUMMARY_PREFIX}*.parquet",
        *(f"{PLOTS_DIR}/{section}__*.png" for section in PLOT_SECTIONS), f"{PLOTS_DIR}/{GALLERY_FILE}",
        f"{EMBEDDINGS_DIR}/{MANIFEST_FILE}", f"{EMBEDDINGS_DIR}/{SAMPLES_FILE}", f"{EMBEDDINGS_DIR}/{EMBEDDING_TENSORS}",
    )
