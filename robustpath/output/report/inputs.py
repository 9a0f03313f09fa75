"""Read the run folders that `robustpath report` merges, and say what is unusual about them.

Each folder must hold a finished run: results.csv and a run.json that says
``"completed": true`` and belongs to the same run (a folder without run.json, such as an
earlier merged report, is read with a note: its chance levels stay unknown).  Unfinished
runs (``"completed": false``, or outputs whose publication was interrupted) are refused,
or left out with a notice when asked (``skip_incomplete``); an unreadable run.json and a
results.csv of another run than its run.json are refused.  The notes of ``LoadedRuns``
(shown in report.md and on stderr) name what else is unusual: results of several schema
versions, one preset name with different corruption parameters, several robustpath
versions.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from robustpath.errors import DataError
from robustpath.output.output_folder import PUBLISH_DIR, RECORD_FILE

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

from robustpath.output.layout import RESULTS_FILE as RUN_RESULTS  # noqa: E402


@dataclass
class LoadedRuns:
    """The merged version-2 table, one record per run id, notes for the report, folders left out."""

    table: "pd.DataFrame"
    records: list[dict]
    notes: list[str] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


class UnfinishedRun(DataError):
    """A run folder whose run has not finished (it cannot be merged)."""


def minimal_record(run_id: str, table: "pd.DataFrame") -> dict:
    """A stand-in for a missing run.json: names only (chance levels then stay unknown)."""
    rows = table[table.run_id == run_id]
    return {
        "run_id": run_id, "model": {"name": str(rows.model.iloc[0])},
        "dataset": {"name": str(rows.dataset.iloc[0]), "classes": []},
        "notes": [f"Run {run_id}: no run.json, so the number of classes (chance level) is unknown."],
    }


def load_runs(run_dirs: Sequence[Path], *, skip_incomplete: bool = False) -> LoadedRuns:
    """Read RUN_DIR/results.csv (+ run.json) of each folder (see the module docstring)."""
    import pandas as pd

    tables, records, origin, versions, skipped = [], [], {}, {}, []
    for run_dir in map(Path, run_dirs):
        try:
            table, record = _read_run_folder(run_dir)
        except UnfinishedRun:
            if not skip_incomplete:
                raise
            skipped.append(run_dir)
            continue
        for run_id in dict.fromkeys(table.run_id):
            if run_id in origin:
                raise DataError(
                    f"run '{run_id}' appears twice: in '{origin[run_id]}' and '{run_dir}' (the same model, data, "
                    "options and seed give the same run id); give one of them"
                )
            origin[run_id] = run_dir
        records += [record if record is not None else minimal_record(run_id, table) for run_id in dict.fromkeys(table.run_id)]
        versions[run_dir] = _schema_version(run_dir / RUN_RESULTS)
        tables.append(table)
    if not tables:
        raise DataError("no finished run folders given" if skipped else "no run folders given")
    notes = [f"Left out the unfinished run in '{run_dir}' (--skip-incomplete)." for run_dir in skipped]
    notes += _merge_notes(records, versions)
    return LoadedRuns(pd.concat(tables, ignore_index=True), records, notes, skipped)


def _read_run_folder(run_dir: Path) -> tuple["pd.DataFrame", dict | None]:
    """(results table, run.json record or None) of a finished run folder."""
    from robustpath.output.output_folder import read_run_record
    from robustpath.results.table import load_results_table

    if (run_dir / PUBLISH_DIR).is_dir():
        raise UnfinishedRun(
            f"'{run_dir}' was stopped while its outputs were written; re-run its eval command to finish it, or pass "
            "--skip-incomplete to leave it out"
        )
    if not (run_dir / RUN_RESULTS).is_file():
        raise DataError(f"'{run_dir}' has no {RUN_RESULTS}: give folders written by `robustpath eval`")
    try:
        record = read_run_record(run_dir / RECORD_FILE)
    except ValueError as exc:
        raise DataError(f"'{run_dir / RECORD_FILE}' is not a robustpath run record ({exc}); give folders written "
                        "by `robustpath eval`") from None
    if record is not None and not record["completed"]:
        raise UnfinishedRun(
            f"'{run_dir}' holds an unfinished run (run.json says \"completed\": false); re-run its eval command to "
            "finish it, or pass --skip-incomplete to leave it out"
        )
    table = load_results_table(run_dir / RUN_RESULTS)
    found = sorted(set(table.run_id))
    if record is not None and found != [record["run_id"]]:
        raise DataError(
            f"'{run_dir}' mixes runs: results.csv holds run {', '.join(found)} but run.json is run "
            f"{record['run_id']}; re-run its eval command with --overwrite"
        )
    return table, record


def _schema_version(path: Path) -> int:
    """The results schema version of a results.csv, from its first row (1 when the column is absent)."""
    with open(path, newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle), None) or {}
    try:
        return int(row.get("schema_version") or 1)
    except ValueError:
        return 1


def _merge_notes(records: list[dict], versions: dict[Path, int]) -> list[str]:
    notes = []
    if len(set(versions.values())) > 1:
        old = sorted(str(folder) for folder, version in versions.items() if version < max(versions.values()))
        notes.append(
            f"Results of schema versions {', '.join(map(str, sorted(set(versions.values()))))} were merged: the older "
            f"tables ({', '.join(old)}) were upgraded, so their drop intervals and data-scale rows are missing."
        )
    notes += _preset_notes(records)
    tools = sorted({str(r.get("versions", {}).get("robustpath")) for r in records if r.get("versions", {}).get("robustpath")})
    if len(tools) > 1:
        notes.append(f"The runs were made with different robustpath versions ({', '.join(tools)}).")
    return notes


def _preset_notes(records: list[dict]) -> list[str]:
    """One note per preset name whose runs used different parameters for the same corruption and severity."""
    seen: dict[tuple, tuple[str, object]] = {}
    notes = {}
    for record in records:
        preset = record.get("preset") or {}
        for variant in preset.get("variants") or []:
            key = (preset.get("name"), variant.get("corruption"), variant.get("severity"), variant.get("stage"))
            first = seen.setdefault(key, (record["run_id"], variant.get("parameter")))
            if first[1] != variant.get("parameter") and preset.get("name") not in notes:
                notes[preset.get("name")] = (
                    f"Preset '{preset.get('name')}' has different parameters in runs {first[0]} and {record['run_id']} "
                    f"({key[1]} severity {key[2]}: {first[1]} vs {variant.get('parameter')}): their corruptions differ."
                )
    return list(notes.values())
