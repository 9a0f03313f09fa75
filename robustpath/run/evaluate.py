"""The measuring part of a run: sweep the variants, score the tasks, build the results table.

``embed_and_score`` runs the sweep (robustpath.embedding.engine.compute_embeddings) and
scores each variant as soon as its embeddings are ready (robustpath.tasks.scoring);
``tabulate`` turns the scores, and the group shifts when the data has groups, into the
tidy rows of robustpath.results.table in a fixed order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from robustpath.embedding.engine import compute_embeddings
from robustpath.output.exports import RunExports, SampleTable
from robustpath.results.table import metric_rows
from robustpath.run.prepare import PreparedRun
from robustpath.run.stores import RunStores, index_recorder
from robustpath.spec.run_spec import BOOTSTRAP_RESAMPLES
from robustpath.tasks import TaskContext
from robustpath.tasks.group_shifts import evaluate_group_shifts
from robustpath.tasks.scoring import TaskScorer
from robustpath.tasks.zeroshot import class_text_embeddings
from robustpath.variants import CLEAN_VARIANT


@dataclass
class Evaluation:
    """The swept embeddings and what was measured on them."""

    embeddings: object  # robustpath.embedding.engine.Embeddings
    rows: list  # metric rows of robustpath.results.table
    outcomes: dict  # (task key, variant key) → robustpath.tasks.outcomes.Outcomes
    task_records: dict  # task key → its run.json record
    group_record: dict | None  # real shifts between groups, None without groups


def text_embeddings_of(run: PreparedRun):
    """The class text embeddings for zero-shot (computed once from clean prompts), None without them."""
    if not (run.main and run.prompts is not None and run.encoder.has_text):
        return None
    return class_text_embeddings(run.encoder.to(run.device), run.prompts, run.device)


def embed_and_score(run: PreparedRun, stores: RunStores, text_embeddings, timings: dict):
    """Sweep and score: (embeddings, scores), or None on torchrun ranks other than 0."""
    spec, options = run.spec, run.options
    clock = time.perf_counter()
    # without --save-embeddings a variant's embeddings are dropped once scored (they stay in the stores)
    # the group-shift measures compare every variant's embeddings with the group shifts after the sweep
    keep_variants = run.selection.save_embeddings or getattr(run.dataset, "groups", None) is not None
    scorer = TaskScorer(run.task_objects, run.variants, _context_factory(run, text_embeddings),
                        release=not keep_variants) if run.main else None
    try:
        embeddings = compute_embeddings(
            run.encoder, run.dataset, run.variants, preset=run.preset, seed=spec.seed, device=run.device,
            batch_size=spec.batch_size, num_workers=spec.num_workers, progress=run.progress,
            store=stores.store, keys=stores.keys, amp=options.amp, compile=options.compile,
            corrupt_training=run.corrupt_training, group=run.group, on_plan=index_recorder(run, stores),
            on_ready=scorer.ready if scorer is not None else None,
        )
        timings["embed"] = time.perf_counter() - clock
        if scorer is None:
            return None
        clock = time.perf_counter()
        scores = scorer.finish(embeddings, run.progress)
    except BaseException:
        if scorer is not None:
            scorer.cancel()
        raise
    timings["tasks_after_embedding"] = time.perf_counter() - clock
    return embeddings, scores


def _context_factory(run: PreparedRun, text_embeddings):
    """make_context for TaskScorer: a variant's embeddings → the TaskContext its tasks score."""
    dataset, spec = run.dataset, run.spec
    train_indices = dataset.indices("train")

    def make_context(embeddings) -> TaskContext:
        return TaskContext(
            train_embeddings=embeddings.clean[train_indices],
            train_labels=dataset.labels[train_indices],
            test_labels=dataset.labels[embeddings.test_indices],
            class_names=dataset.classes,
            seed=spec.seed,
            text_embeddings=text_embeddings,
            clean_test_embeddings=embeddings.clean[embeddings.test_indices],
            bootstrap=getattr(spec, "bootstrap", BOOTSTRAP_RESAMPLES),
            device=run.device,
            classifier_heads=getattr(run.encoder, "classifier_heads", None),
        )

    return make_context


def tabulate(run: PreparedRun, run_id: str, embeddings, scores, timings: dict) -> Evaluation:
    """The metric rows and outcomes in a fixed order (tasks × clean + variants), whatever order they were scored in."""
    model, dataset = run.encoder.name, run.dataset.name
    rows: list[dict] = []
    outcomes = {}
    for key, task in run.task_objects.items():
        for variant in [CLEAN_VARIANT, *run.variants]:
            outcomes[(key, variant.key)] = scores.outcomes[(key, variant.key)]
            values = scores.values[(key, variant.key)]
            rows.extend(metric_rows(run_id, model, dataset, task.name, variant, values, **task.row_fields))
    task_records = {key: scores.records[key] for key in run.task_objects}
    group_record = None
    if getattr(run.dataset, "groups", None) is not None:  # real shifts between centres, scanners, stains
        group_record = _group_shifts(run, run_id, embeddings, rows, timings)
    return Evaluation(embeddings=embeddings, rows=rows, outcomes=outcomes, task_records=task_records,
                      group_record=group_record)


def _group_shifts(run: PreparedRun, run_id: str, embeddings, rows: list, timings: dict) -> dict:
    """Score the shifts between the data's groups, appending their rows; their run.json record."""
    clock = time.perf_counter()
    group_results, group_record = evaluate_group_shifts(
        run.dataset, embeddings, run.variants, seed=run.spec.seed,
        resamples=getattr(run.spec, "bootstrap", BOOTSTRAP_RESAMPLES), progress=run.progress,
    )
    for task_name, by_variant in group_results.items():
        for variant, values in by_variant.items():
            rows.extend(metric_rows(run_id, run.encoder.name, run.dataset.name, task_name, variant, values))
    timings["group_shifts"] = time.perf_counter() - clock
    return group_record


def build_exports(run: PreparedRun, evaluation: Evaluation, text_embeddings):
    """What predictions.csv, misclassified.csv and embeddings/ are written from (robustpath.output.exports)."""
    spec, selection, embeddings = run.spec, run.selection, evaluation.embeddings
    save = selection.save_embeddings
    return RunExports(
        samples=SampleTable.from_dataset(run.dataset), test_indices=embeddings.test_indices,
        train_indices=run.dataset.indices("train"), variants=[CLEAN_VARIANT, *run.variants],
        embeddings=embeddings if save else None, text_embeddings=text_embeddings if save else None,
        embeddings_dtype=selection.embeddings_dtype, predictions=getattr(spec, "predictions", "all"),
        compress=bool(getattr(spec, "compress_exports", False)),
    )
