"""Tables to files: CSV, JSON and Parquet, each carrying the results schema version.

- CSV and Parquet: a ``schema_version`` column on every row (a leading comment
  line would trip pandas users); Parquet also stores it in the file metadata;
- JSON: one document with a top-level ``schema_version`` and every table as a
  list of records (NaN → null);
- markdown: report.md states the version on a line of its header;
- html: report.html states it in its header (robustpath.output.report.html).

Each format declares its name and the files it writes (OutputFormat, fnmatch patterns
relative to the output folder, names from robustpath.output.layout); ``list_formats``
gives them in the order of ``--format``'s choices.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from robustpath.util.atomic import write_bytes_atomic, write_text_atomic
from robustpath.spec.run_spec import OUTPUT_FORMATS
from robustpath.errors import UsageError, unknown_name_message
from robustpath.results.table import SCHEMA_VERSION
from robustpath.output.layout import (
    HTML_FILE, JSON_FILE, PLOTS_DIR, REPORT_FILE, RESULTS_NAME, SUMMARY_PREFIX,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DEFAULT_FORMATS = ("csv", "markdown", "html")


@dataclass(frozen=True)
class OutputFormat:
    """An output format: its ``--format`` name, what it is, and the files it writes (fnmatch patterns)."""

    name: str
    description: str
    files: tuple[str, ...]


_FORMATS: dict[str, OutputFormat] = {}


def register_format(output_format: OutputFormat) -> OutputFormat:
    """Add a format; ValueError for a second one of the same name or one without files."""
    if output_format.name in _FORMATS:
        raise ValueError(f"output format '{output_format.name}' is registered twice")
    if not output_format.files:
        raise ValueError(f"output format '{output_format.name}' declares no files")
    _FORMATS[output_format.name] = output_format
    return output_format


def list_formats() -> list[OutputFormat]:
    """The registered formats, in the order of --format's choices (robustpath.spec.run_spec.OUTPUT_FORMATS)."""
    order = {name: position for position, name in enumerate(OUTPUT_FORMATS)}
    return sorted(_FORMATS.values(), key=lambda f: (order.get(f.name, len(order)), f.name))


def get_format(name: str) -> OutputFormat:
    if name not in _FORMATS:
        raise UsageError(unknown_name_message("format", name, list(_FORMATS)))
    return _FORMATS[name]


register_format(OutputFormat("csv", "the results table and each robustness summary as CSV",
                             (f"{RESULTS_NAME}.csv", f"{SUMMARY_PREFIX}*.csv")))
register_format(OutputFormat("markdown", "report.md with its plots", (REPORT_FILE, f"{PLOTS_DIR}/*.png")))
register_format(OutputFormat("html", "report.html: one self-contained page", (HTML_FILE,)))
register_format(OutputFormat("json", "every table in one JSON document", (JSON_FILE,)))
register_format(OutputFormat("parquet", "the results table and each robustness summary as Parquet (needs pyarrow)",
                             (f"{RESULTS_NAME}.parquet", f"{SUMMARY_PREFIX}*.parquet")))
FORMATS = tuple(output_format.name for output_format in list_formats())


def check_formats(formats: Iterable[str] | None) -> tuple[str, ...]:
    """Validate and de-duplicate; parquet needs pyarrow.  None or empty → DEFAULT_FORMATS."""
    chosen = tuple(dict.fromkeys(str(getattr(f, "value", f)) for f in formats or ())) or DEFAULT_FORMATS
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        raise UsageError(unknown_name_message("format", unknown[0], FORMATS))
    if "parquet" in chosen and importlib.util.find_spec("pyarrow") is None:
        raise UsageError("--format parquet needs pyarrow: pip install pyarrow (or choose csv / json)")
    return chosen


def with_schema_version(frame: "pd.DataFrame") -> "pd.DataFrame":
    """``frame`` with a trailing schema_version column (kept if present)."""
    if "schema_version" in frame:
        return frame
    return frame.assign(schema_version=SCHEMA_VERSION)


def table_csv(frame: "pd.DataFrame") -> str:
    """CSV text: floats at full precision (%.12g), '\\n' line ends, no index."""
    return with_schema_version(frame).to_csv(index=False, float_format="%.12g", lineterminator="\n")


def table_records(frame: "pd.DataFrame") -> list[dict]:
    """JSON-ready records (NaN → None, numpy scalars → Python)."""
    return json.loads(frame.to_json(orient="records", double_precision=15))


def write_csv_tables(tables: Mapping[str, "pd.DataFrame"], out_dir: Path) -> dict[str, Path]:
    return {name: write_text_atomic(Path(out_dir) / f"{name}.csv", table_csv(frame)) for name, frame in tables.items()}


def write_parquet_tables(tables: Mapping[str, "pd.DataFrame"], out_dir: Path) -> dict[str, Path]:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {}
    for name, frame in tables.items():
        arrow = pa.Table.from_pandas(with_schema_version(frame), preserve_index=False)
        arrow = arrow.replace_schema_metadata(
            {**(arrow.schema.metadata or {}), b"robustpath_schema_version": str(SCHEMA_VERSION).encode()}
        )
        buffer = io.BytesIO()
        pq.write_table(arrow, buffer)
        paths[name] = write_bytes_atomic(Path(out_dir) / f"{name}.parquet", buffer.getvalue())
    return paths


def json_document(tables: Mapping[str, "pd.DataFrame"], **meta) -> dict:
    from robustpath import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "robustpath_version": __version__,
        **meta,
        "tables": {name: table_records(frame) for name, frame in tables.items()},
    }


def write_json_document(tables: Mapping[str, "pd.DataFrame"], out_dir: Path, **meta) -> Path:
    document = json_document(tables, **meta)
    return write_text_atomic(Path(out_dir) / JSON_FILE, json.dumps(document, indent=1, allow_nan=False) + "\n")
