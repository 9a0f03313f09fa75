"""The output folder of one evaluation: never clobber a finished run, resume an unfinished one.

Life of ``OUT`` (the ``--out`` folder, a robustpath.output.output_folder.OutputFolder of kind "run"):

1. ``open_run_folder`` (before anything heavy) creates and locks OUT (a second writer
   fails at once, naming the holder), finishes a publication that a killed process left
   half done, and reads ``OUT/run.json``:
   none → a new run, but only in an empty folder (robustpath never writes beside, or
   deletes, files it did not write); ``"completed": true`` → refused unless
   ``overwrite``, and then only while the files robustpath wrote there are unchanged;
   ``"completed": false`` → resumed when the recorded spec matches this one (fields that
   cannot change results, such as batch size and workers, are ignored), else refused
   unless ``overwrite``.
2. ``RunFolder.start`` checks that a resumed run is still about the same inputs (its run
   id, a digest of the model, images, prompts and versions, must be the recorded one),
   then writes the start record (``"completed": false``) to ``OUT/.partial/run.json`` and,
   unless OUT holds a complete run being replaced, to ``OUT/run.json``.  The sweep stores
   the embeddings of every (chunk, variant) under ``OUT/.partial`` as soon as they are
   finished.  A resumed run keeps the run id and start time of its first session, so its
   results.csv is identical to that of an uninterrupted run.
3. ``RunFolder.publishing`` (robustpath.output.report.files) writes every output aside and
   publishes the complete set: the outputs, then the final run.json
   (``"completed": true``), with ``.partial`` removed before it.  A complete run being
   replaced stays in place, untouched, until then.

A run killed at any moment (SIGKILL included) leaves either the earlier state or the
complete new one, and the same command then resumes or says that the run is complete.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from robustpath.util.atomic import write_json_atomic
from robustpath.errors import RobustPathError, UsageError
from robustpath.output.output_folder import PARTIAL_DIR, RECORD_FILE, OutputFolder, read_run_record, shown_names

# Spec fields that cannot change results: a run may resume with other values.
RESUME_IGNORED_FIELDS = frozenset({
    "out", "batch_size", "num_workers", "overwrite", "no_cache", "cache_dir", "save_embeddings", "embeddings_dtype",
})
_INCOMPLETE_NOTE = "incomplete run: re-run the same command with the same --out to resume it"


class RunInterrupted(RobustPathError):
    """The user pressed Ctrl-C; finished variants are kept in OUT/.partial for a re-run."""

    exit_code = 130

    def __init__(self, out: Path | None = None, *, complete: bool = False) -> None:
        if complete:
            super().__init__(f"interrupted after the run was complete; its outputs are in '{out}'")
            return
        where = f" with --out '{out}'" if out is not None else ""
        super().__init__(f"interrupted; re-run the same command{where} to resume")


def interrupted_by_user(error: BaseException) -> bool:
    """Ctrl-C, or an error it caused (not one of robustpath's own errors).

    A C extension imported at the moment of Ctrl-C reports ``ImportError("initialization
    failed")`` caused by the KeyboardInterrupt (matplotlib's, imported while the outputs
    are written, does); such an error is an interruption too."""
    if isinstance(error, RobustPathError):
        return False
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def comparable_spec(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in RESUME_IGNORED_FIELDS}


def spec_differences(recorded: dict, current: dict) -> list[str]:
    """Names of the fields (beyond RESUME_IGNORED_FIELDS) whose values differ."""
    old, new = comparable_spec(recorded), comparable_spec(json.loads(json.dumps(current, default=str)))
    return sorted(k for k in set(old) | set(new) if old.get(k, "<absent>") != new.get(k, "<absent>"))


@dataclass
class RunFolder:
    """The locked OUT and what to do there: action "new", "resume" or "replace".

    ``replacing``: OUT holds a complete run that stays until this one is published;
    ``run_id``, ``started`` and ``sessions`` are the recorded ones when resuming.
    """

    output: OutputFolder
    action: str
    run_id: str | None = None
    started: str | None = None
    sessions: list[str] = field(default_factory=list)
    replacing: bool = False

    @property
    def path(self) -> Path:
        return self.output.path

    @property
    def partial_dir(self) -> Path:
        return self.path / PARTIAL_DIR

    @property
    def resumed(self) -> bool:
        return self.action == "resume"

    def start(self, *, run_id: str, started: str, record: dict) -> None:
        """Write the start record (``"completed": false``) and create the partial store."""
        if self.resumed and self.run_id != run_id:
            if not self.replacing:
                raise UsageError(
                    f"'{self.path}' holds an unfinished run of other inputs: it was started as run {self.run_id}, and "
                    f"the model, images, prompts or package versions now give run {run_id}; pass --overwrite to start "
                    "afresh or choose another --out"
                )
            self.action, self.run_id, self.started, self.sessions = "replace", None, None, []
        if not self.resumed:
            shutil.rmtree(self.partial_dir, ignore_errors=True)
            self.output.claim()
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
            "note": _INCOMPLETE_NOTE,
        }
        write_json_atomic(self.partial_dir / RECORD_FILE, start_record)
        if not self.replacing:
            write_json_atomic(self.path / RECORD_FILE, start_record)

    def store(self):
        from robustpath.embedding.cache import EmbeddingStore

        return EmbeddingStore(self.partial_dir, strict=True)

    def publishing(self):
        """Context manager: the staging folder to write every output into (robustpath.output.output_folder)."""
        return self.output.publishing()

    def close(self) -> None:
        self.output.close()


def open_run_folder(out: Path, spec: dict, *, overwrite: bool = False) -> RunFolder:
    """Lock OUT and decide between a new run, a resumed run and a refusal (see the module docstring)."""
    output = OutputFolder.open(Path(out), "run")
    try:
        return _decide(output, spec, overwrite)
    except BaseException:
        output.close()
        raise


def _decide(output: OutputFolder, spec: dict, overwrite: bool) -> RunFolder:
    out = output.path
    try:
        record = read_run_record(out / RECORD_FILE)
    except ValueError:
        raise UsageError(
            f"'{out / RECORD_FILE}' is not a robustpath run record, and robustpath does not replace files it did not "
            "write; choose another --out"
        ) from None
    if record is None:
        output.refuse_unless_own()
        return RunFolder(output, "new")
    if record["completed"]:
        return _replace_complete(output, record, spec, overwrite)
    if overwrite:
        return RunFolder(output, "replace")
    differences = spec_differences(record["spec"], spec)
    if differences:
        raise UsageError(
            f"'{out}' holds an unfinished run with other options ({', '.join(differences)}); re-run it with the "
            "same options to resume, pass --overwrite to start afresh, or choose another --out"
        )
    return RunFolder(output, "resume", run_id=record["run_id"], started=record.get("started"),
                     sessions=list(record.get("sessions") or [record.get("started")]))


def _replace_complete(output: OutputFolder, record: dict, spec: dict, overwrite: bool) -> RunFolder:
    """OUT holds a complete run: refuse, or replace it (resuming a replacement that was interrupted)."""
    out = output.path
    pending = _pending_replacement(out, record)
    if not overwrite:
        finished = " (its interrupted write has now been finished)" if output.recovered else ""
        raise UsageError(
            f"'{out}' already holds a complete run{finished}; pass --overwrite to replace it or choose another --out"
        )
    changed = output.changed_files()
    if changed:
        raise UsageError(
            f"'{out}' holds files robustpath wrote and someone changed since ({shown_names(changed)}); --overwrite does not "
            "replace them: move them out of the folder first, or choose another --out"
        )
    if pending is not None and not spec_differences(pending["spec"], spec):
        return RunFolder(output, "resume", run_id=pending["run_id"], started=pending.get("started"),
                         sessions=list(pending.get("sessions") or []), replacing=True)
    return RunFolder(output, "replace", replacing=True)


def _pending_replacement(out: Path, record: dict) -> dict | None:
    """The start record of an interrupted replacement of the complete run in OUT, if any.

    A ``.partial`` store left beside the complete run it belonged to (a run of an earlier
    version killed after its final run.json) is removed."""
    partial = out / PARTIAL_DIR
    if not partial.is_dir():
        return None
    try:
        pending = read_run_record(partial / RECORD_FILE)
    except ValueError:
        pending = None
    if pending is None or (pending["run_id"], pending.get("started")) == (record["run_id"], record.get("started")):
        shutil.rmtree(partial, ignore_errors=True)
        return None
    return pending
