"""Run an evaluation: data + model + variants → embeddings → tasks → results table.

With ``spec.out`` set, the run owns that folder (see robustpath.output.run_folder): it locks it,
a complete run there is not replaced without ``overwrite``, an unfinished one with the
same spec and inputs is resumed from the embeddings it stored under ``OUT/.partial``.
The returned RunResult holds the locked folder; robustpath.output.report.files.write_run_outputs
publishes the outputs there and unlocks it.  Embeddings are also read from and written
to the shared cache (robustpath.embedding.cache) unless ``no_cache``.

The stages live beside this module: robustpath.run.prepare (spec → data, model, tasks),
robustpath.run.stores (run id, --out folder, cache), robustpath.run.evaluate (sweep, scores,
rows) and robustpath.run.record (run.json).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.output.report.files import write_run_outputs
from robustpath.output.run_folder import RunInterrupted, interrupted_by_user
from robustpath.preview.run_gallery import build_run_gallery
from robustpath.results.table import build_results_table
from robustpath.run.evaluate import build_exports, embed_and_score, tabulate, text_embeddings_of
from robustpath.run.prepare import ExecutionOptions, prepare_run, small_image_note as _small_image_note  # noqa: F401
from robustpath.run.presets import load_preset_or_fail  # noqa: F401 (read here by older callers)
from robustpath.run.record import completed_record, make_run_id  # noqa: F401 (make_run_id: read here by older callers)
from robustpath.run.stores import open_stores
from robustpath.spec.run_spec import RunSpec
from robustpath.util.device import deterministic_mode
from robustpath.util.heap import frozen_heap
from robustpath.util.progress import ProgressReporter, SilentProgress

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass
class RunResult:
    """The results table (schema of robustpath.results.table) and the run.json record."""

    table: "pd.DataFrame"
    record: dict
    outcomes: dict = field(default_factory=dict)  # (task key, variant key) → robustpath.tasks.outcomes.Outcomes
    exports: object | None = None  # robustpath.output.exports.RunExports: what predictions.csv and embeddings/ need
    gallery: object = None  # robustpath.preview.run_gallery.RunGallery: a few test images under each corruption
    folder: object = None  # robustpath.output.run_folder.RunFolder: the locked --out folder, until the outputs are written
    notices: list = field(default_factory=list)  # about the output folder, for the user (set by write_run_outputs)

    def release(self) -> None:
        """Unlock the output folder (write_run_outputs does it; call it when not writing the outputs)."""
        if self.folder is not None:
            self.folder.close()
            self.folder = None


def run_evaluation(spec: RunSpec, progress: ProgressReporter | None = None) -> RunResult | None:
    """Evaluate ``spec.model`` on ``spec.data`` clean and under every planned variant.

    Ctrl-C raises RunInterrupted (exit code 130 on the command line); what was finished
    stays in ``OUT/.partial`` and the same call resumes from it.  Under torchrun the
    processes share the embedding work (robustpath.embedding.distributed); rank 0 returns the
    result, the other ranks return None and write nothing.
    """
    folders: list = []  # the locked --out folder, once open: unlocked here unless a result carries it
    try:
        with frozen_heap():
            if not getattr(spec, "deterministic", False):
                return _run_evaluation(spec, progress or SilentProgress(), folders)
            with deterministic_mode(spec.seed) as settings:
                result = _run_evaluation(spec, progress or SilentProgress(), folders)
        if result is not None:  # None on ranks other than 0 under torchrun
            result.record["deterministic_settings"] = settings
        return result
    except BaseException as error:
        for folder in folders:
            folder.close()
        if interrupted_by_user(error):
            raise RunInterrupted(spec.out) from None
        raise


def evaluate_and_write(spec: RunSpec, progress: ProgressReporter | None = None, formats=None,
                       html_max_images: int | None = None) -> "tuple[RunResult, dict[str, Path]] | None":
    """run_evaluation, then with ``spec.out`` its outputs written there (robustpath.output.report.files):
    the one path of the command line and the Python API.  Returns the result and name → written path
    ({} without ``spec.out``), None on torchrun ranks other than 0.  Ctrl-C, during the run or while
    the outputs are written, raises RunInterrupted with the hint to re-run the same command.
    """
    result = run_evaluation(spec, progress=progress)
    if result is None:  # a rank other than 0 under torchrun: rank 0 writes the outputs
        return None
    if spec.out is None:
        return result, {}
    try:
        paths = write_run_outputs(result, spec.out, formats, html_max_images)
    except BaseException as error:  # Ctrl-C: nothing was published, run.json still says "completed": false
        if interrupted_by_user(error):
            raise RunInterrupted(spec.out) from None
        raise
    finally:
        result.release()
    return result, paths


def _run_evaluation(spec: RunSpec, progress: ProgressReporter, folders: list) -> RunResult | None:
    """Prepare, sweep and score, tabulate, describe: the run top to bottom (None off rank 0 under torchrun)."""
    options = ExecutionOptions.from_spec(spec)
    session_started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    run = prepare_run(spec, options, progress, folders, timings)

    clock = time.perf_counter()
    stores = open_stores(run, session_started)
    timings["prepare"] = time.perf_counter() - clock

    text_embeddings = text_embeddings_of(run)
    swept = embed_and_score(run, stores, text_embeddings, timings)
    if swept is None:  # a rank other than 0 under torchrun
        return None
    evaluation = tabulate(run, stores.run_id, *swept, timings)
    table = build_results_table(evaluation.rows)
    exports = build_exports(run, evaluation, text_embeddings)
    clock = time.perf_counter()
    gallery = build_run_gallery(run.dataset, run.preset, run.variants, seed=spec.seed)
    timings["gallery"] = time.perf_counter() - clock

    notes = (run.notes + evaluation.embeddings.notes + _task_notes(run.tasks, spec.gallery)
             + [record["note"] for record in evaluation.task_records.values() if record.get("note")]
             + (evaluation.group_record["notes"] if evaluation.group_record else []))
    record = completed_record(run, stores, evaluation, notes=notes, gallery=gallery, exports=exports, timings=timings)
    return RunResult(table=table, record=record, outcomes=evaluation.outcomes, exports=exports, gallery=gallery,
                     folder=run.folder)


def _task_notes(tasks: list[str], gallery: str = "clean") -> list[str]:
    from robustpath.tasks.registry import get_task_info

    notes = [get_task_info(name).note(gallery) for name in tasks]
    return [note for note in notes if note]
