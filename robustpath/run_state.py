"""The output folder of one evaluation: never clobber a finished run, resume an unfinished one.

Life of ``OUT`` (the ``--out`` folder):

1. ``inspect_run_folder`` (before anything heavy, writes nothing) reads ``OUT/run.json``:
   none → a new run; ``"completed": true`` → refused unless ``overwrite``;
   ``"completed": false`` → resumed when the recorded spec matches this one (fields
   that cannot change results, such as batch size and workers, are ignored), else
   refused unless ``overwrite``.
2. ``RunFolder.start`` writes ``run.json`` with ``"completed": false`` (run id, first
   start time, spec, versions; a new or replaced run first removes the outputs of the
   old one, predictions.csv, misclassified.csv and embeddings/ included) and creates
   ``OUT/.partial/``, where the sweep stores
   the embeddings of every (chunk, variant) as soon as they are finished.  A resumed
   run keeps the run id and start time of the first session, so its results.csv is
   identical to that of an uninterrupted run.
3. ``finish_run_folder`` (after results, report and the final ``run.json`` with
   ``"completed": true`` are written) removes ``OUT/.partial/``.

Every file is written atomically, so a run killed at any moment (SIGKILL included)
leaves either the old or the new version of each file.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from robustpath.errors import RobustPathError, UsageError

PARTIAL_DIR = ".partial"
RECORD_FILE = "run.json"
# What a new run (or --overwrite) removes from OUT first, so that no output of an earlier
# run survives beside the new one (robustpath.report.writer and robustpath.exports write these).
REPLACED_FILES = ("results.csv", "report.md", "report.json", RECORD_FILE, "predictions.csv", "misclassified.csv",
                  "outcomes.npz", "robustness_*.csv", "*.parquet")
REPLACED_FOLDERS = ("embeddings", "plots")
# Spec fields that cannot change results: a run may resume with other values.
RESUME_IGNORED_FIELDS = frozenset({
    "out", "batch_size", "num_workers", "overwrite", "no_cache", "cache_dir", "save_embeddings", "embeddings_dtype",
})


class RunInterrupted(RobustPathError):
    """The user pressed Ctrl-C; finished variants are kept in OUT/.partial for a re-run."""

    exit_code = 130

    def __init__(self, out: Path | None = None) -> None:
        where = f" with --out '{out}'" if out is not None else ""
        super().__init__(f"interrupted; re-run the same command{where} to resume")


def comparable_spec(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in RESUME_IGNORED_FIELDS}


def spec_differences(recorded: dict, current: dict) -> list[str]:
    """Names of the fields (beyond RESUME_IGNORED_FIELDS) whose values differ."""
    old, new = comparable_spec(recorded), comparable_spec(json.loads(json.dumps(current, default=str)))
    return sorted(k for k in set(old) | set(new) if old.get(k, "<absent>") != new.get(k, "<absent>"))


@dataclass
class RunFolder:
    """What to do with ``path``: action "new", "resume" or "replace"; run id and first start when resuming."""

    path: Path
    action: str
    run_id: str | None = None
    started: str | None = None
    sessions: list[str] = field(default_factory=list)

    @property
    def partial_dir(self) -> Path:
        return self.path / PARTIAL_DIR

    @property
    def resumed(self) -> bool:
        return self.action == "resume"

    def start(self, *, run_id: str, started: str, record: dict) -> None:
        """Write the start record (``"completed": false``) and create the partial store."""
        from robustpath.atomic import ensure_writable_dir, write_json_atomic

        ensure_writable_dir(self.path)
        if self.action != "resume":
            for pattern in REPLACED_FILES:
                for path in self.path.glob(pattern):
                    path.unlink(missing_ok=True)
            for name in REPLACED_FOLDERS:
                shutil.rmtree(self.path / name, ignore_errors=True)
            shutil.rmtree(self.partial_dir, ignore_errors=True)
        if not (self.run_id and self.started):
            self.run_id, self.started = run_id, started
        self.sessions.append(record.get("session_started", started))
        start_record = {
            "schema_version": record.get("schema_version"),
            "run_id": self.run_id,
            "started": self.started,
            "completed": False,
            "sessions": list(self.sessions),
            **{k: v for k, v in record.items() if k not in ("schema_version", "session_started")},
            "note": "incomplete run: re-run the same command with the same --out to resume it",
        }
        write_json_atomic(self.path / RECORD_FILE, start_record)
        ensure_writable_dir(self.partial_dir)

    def store(self):
        from robustpath.cache import EmbeddingStore

        return EmbeddingStore(self.partial_dir, strict=True)


def inspect_run_folder(out: Path, spec: dict, *, overwrite: bool = False) -> RunFolder:
    """Decide between a new run, a resumed run and a refusal; writes nothing."""
    from robustpath.atomic import check_can_create

    out = check_can_create(Path(out))
    record_path = out / RECORD_FILE
    if not record_path.exists():
        return RunFolder(out, "new")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        completed = record["completed"]
        if not isinstance(record.get("spec"), dict) or not isinstance(completed, bool):
            raise ValueError("no spec")
    except (OSError, ValueError, KeyError, TypeError):
        if overwrite:
            return RunFolder(out, "replace")
        raise UsageError(
            f"'{record_path}' is not a robustpath run record; choose another --out or pass --overwrite to replace it"
        ) from None
    if overwrite:
        return RunFolder(out, "replace")
    if completed:
        raise UsageError(
            f"'{out}' already holds a complete run; pass --overwrite to replace it or choose another --out"
        )
    differences = spec_differences(record["spec"], spec)
    if differences:
        raise UsageError(
            f"'{out}' holds an unfinished run with other options ({', '.join(differences)}); re-run it with the "
            "same options to resume, pass --overwrite to start afresh, or choose another --out"
        )
    return RunFolder(
        out, "resume", run_id=record.get("run_id"), started=record.get("started"),
        sessions=list(record.get("sessions") or [record.get("started")]),
    )


def finish_run_folder(out: Path) -> None:
    """Remove ``OUT/.partial`` once the final outputs (run.json last) are written."""
    shutil.rmtree(Path(out) / PARTIAL_DIR, ignore_errors=True)
