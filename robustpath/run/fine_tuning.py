"""Probe vs fine-tuning: ``robustpath finetune`` as a library call.

``run_fine_tuning(request)`` does, in ``request.out``:

1. ``fine-tuned/``: fine-tunes the model with a linear head (robustpath.models.finetune)
   on the clean training split (all of it, and each --samples-per-class N × --repeats r
   on the probe's class-balanced subsample of the same seed: the probe and the
   fine-tuning see the same images), and saves the set (robustpath.models.finetuned),
   swapped in whole once every setting is trained: Ctrl-C leaves no half-written set.
   A set already there from the same request is reused (an interrupted run resumes
   with the sweeps).
2. ``fine_tune/``: the normal evaluation (robustpath.runner.run_evaluation) of
   ``finetuned:OUT/fine-tuned`` with the ``fine_tune`` task: every variant of the test
   set, the same metrics, intervals and exports as the probe.
3. ``probe/``: the same evaluation of the original model with the ``linear_probe`` task.
4. ``comparison.csv``: probe vs fine-tuning side by side (``compare_runs``).

``robustpath report OUT/probe OUT/fine_tune`` merges the two runs into one report.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustpath.spec.run_spec import RunSpec
from robustpath.errors import UsageError
from robustpath.models.finetune import FineTuneSpec

FINE_TUNED_DIR, FINE_TUNE_RUN, PROBE_RUN, COMPARISON_FILE = "fine-tuned", "fine_tune", "probe", "comparison.csv"


@dataclass(frozen=True)
class FineTuneRequest:
    """What ``robustpath finetune`` was asked: ``evaluation`` holds the model, data and sweep options
    (its ``tasks`` and ``out`` are set per run), ``training`` how to fine-tune."""

    evaluation: RunSpec
    training: FineTuneSpec
    out: Path
    probe: bool = True


@dataclass
class FineTuneOutcome:
    model_folder: Path
    runs: dict = field(default_factory=dict)  # "fine_tune" / "probe" → {"out": Path, "paths": dict, "notes": list}
    comparison: object = None  # pandas DataFrame (compare_runs)


def _settings(spec: RunSpec) -> list[tuple[str, dict]]:
    from robustpath.tasks import create_tasks

    tasks = create_tasks("fine_tune", samples_per_class=spec.samples_per_class, repeats=spec.repeats)
    return [(task.key, {"samples_per_class": task.samples_per_class, "repeat": task.repeat}) for task in tasks]


def _request_record(request: FineTuneRequest) -> dict:
    spec = request.evaluation
    return {"model": spec.model, "data": spec.data, "pooling": spec.pooling, "seed": spec.seed,
            "test_fraction": spec.test_fraction, "samples_per_class": list(spec.samples_per_class),
            "repeats": spec.repeats, "training": dataclasses.asdict(request.training)}


def absolute_model_spec(model: str) -> str:
    """``model`` with a local folder made absolute (customvit:DIR, hf:DIR, a bare folder), so the
    saved set loads from any working directory; other specs unchanged."""
    prefix, sep, argument = model.partition(":")
    if sep and prefix in ("customvit", "hf") and Path(argument).expanduser().exists():
        return f"{prefix}:{Path(argument).expanduser().resolve()}"
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser().resolve())
    return model


def _reusable(folder: Path, record: dict) -> bool:
    from robustpath.errors import ModelError
    from robustpath.models.finetuned import load_manifest

    try:
        return load_manifest(folder).get("request") == record
    except ModelError:
        return False


def train_fine_tuned_set(request: FineTuneRequest, progress=None) -> Path:
    """Step 1 of the module docstring; returns the set's folder."""
    from robustpath.data import load_dataset
    from robustpath.util.device import resolve_device
    from robustpath.models import load_encoder
    from robustpath.models.finetune import fine_tune
    from robustpath.models.finetuned import check_fine_tuned_out, save_fine_tuned_set
    from robustpath.models.training_loop import load_image_tensor
    from robustpath.tasks.linear_probe import class_balanced_subsample

    spec, folder = request.evaluation, Path(request.out) / FINE_TUNED_DIR
    record = _request_record(request)
    if _reusable(folder, record) and not spec.overwrite:
        return folder
    check_fine_tuned_out(folder, overwrite=spec.overwrite)  # another request's set: only with --overwrite
    request.training.check()
    device = resolve_device(spec.device)
    dataset = load_dataset(spec.data, test_fraction=spec.test_fraction, seed=spec.seed,
                           on_bad_image=spec.on_bad_image)
    encoder = load_encoder(spec.model, pooling=spec.pooling, trust_remote_code=spec.trust_remote_code)
    train_indices = dataset.indices("train")
    labels = dataset.labels[train_indices]
    images = load_image_tensor(dataset, train_indices)
    tuned = []
    for key, scale in _settings(spec):
        rows = np.arange(len(labels))
        if scale["samples_per_class"]:
            rows = class_balanced_subsample(labels, scale["samples_per_class"], spec.seed, scale["repeat"])
        training = dataclasses.replace(request.training, seed=request.training.seed + scale["repeat"])
        title = "Fine-tuning" + (f" {scale['samples_per_class']}/class #{scale['repeat']}" if scale["samples_per_class"] else "")
        tuned.append((key, scale, fine_tune(encoder, images[rows], labels[rows], len(dataset.classes), training,
                                            device=device, progress=progress, title=title)))
    return save_fine_tuned_set(tuned, folder, base_model=absolute_model_spec(spec.model), pooling=spec.pooling,
                               class_names=tuple(dataset.classes), request=record)


def _evaluate(spec: RunSpec, progress, formats, html_max_images) -> dict:
    from robustpath.output.report.files import write_run_outputs
    from robustpath.run.runner import run_evaluation

    result = run_evaluation(spec, progress=progress)
    try:
        paths = write_run_outputs(result, spec.out, formats, html_max_images)
    finally:
        result.release()
    return {"out": spec.out, "paths": paths, "notes": result.record["notes"] + result.notices, "table": result.table}


def run_fine_tuning(request: FineTuneRequest, progress=None, formats=(), html_max_images=None) -> FineTuneOutcome:
    """Steps 1–4 of the module docstring."""
    from robustpath.util.atomic import check_can_create, write_text_atomic

    out = check_can_create(Path(request.out))
    folder = train_fine_tuned_set(request, progress)
    base = request.evaluation
    outcome = FineTuneOutcome(folder)
    fine_spec = dataclasses.replace(base, model=f"finetuned:{folder.resolve()}", tasks=("fine_tune",), pooling=None,
                                    trust_remote_code=False, out=out / FINE_TUNE_RUN)
    outcome.runs["fine_tune"] = _evaluate(fine_spec, progress, formats, html_max_images)
    tables = [outcome.runs["fine_tune"]["table"]]
    if request.probe:
        probe_spec = dataclasses.replace(base, tasks=("linear_probe",), out=out / PROBE_RUN)
        outcome.runs["probe"] = _evaluate(probe_spec, progress, formats, html_max_images)
        tables.insert(0, outcome.runs["probe"]["table"])
    outcome.comparison = compare_runs(tables)
    write_text_atomic(out / COMPARISON_FILE, outcome.comparison.to_csv(index=False))
    return outcome


def compare_runs(tables) -> "object":
    """Probe vs fine-tuning, one row per (task, samples_per_class), accuracy:

    clean (mean ± sd over repeats), mean over every corrupted variant, and mean retention
    (the mean over variants of corrupted / clean accuracy, then over repeats).
    """
    import pandas as pd

    table = pd.concat(list(tables), ignore_index=True)
    table = table[(table.metric == "accuracy") & table.task.isin(["linear_probe", "fine_tune"])]
    rows = []
    for (task, size), part in table.groupby(["task", "samples_per_class"], sort=False):
        per_repeat = []
        for _, run in part.groupby("repeat"):
            clean = float(run[run.corruption == "none"].value.iloc[0])
            corrupted = run[run.corruption != "none"].value.to_numpy(dtype=np.float64)
            retention = float(np.mean(corrupted / clean)) if clean > 0 and len(corrupted) else float("nan")
            per_repeat.append((clean, float(np.mean(corrupted)) if len(corrupted) else float("nan"), retention))
        values = np.asarray(per_repeat)
        rows.append({
            "model": str(part.model.iloc[0]), "task": task, "samples_per_class": int(size) or "all",
            "repeats": len(per_repeat), "clean_accuracy": values[:, 0].mean(),
            "clean_accuracy_sd": values[:, 0].std(ddof=1) if len(values) > 1 else 0.0,
            "mean_corrupted_accuracy": values[:, 1].mean(), "mean_retention": values[:, 2].mean(),
        })
    if not rows:
        raise UsageError("no accuracy rows of linear_probe or fine_tune to compare")
    return pd.DataFrame(rows)
