"""Run an evaluation: data + model + variants → embeddings → tasks → results table."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from robustpath.config import RunSpec
from robustpath.errors import UsageError
from robustpath.progress import ProgressReporter, SilentProgress

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass
class RunResult:
    """The results table (schema of robustpath.results) and the run.json record."""

    table: "pd.DataFrame"
    record: dict


def load_preset_or_fail(name_or_path: str):
    import corruptions

    try:
        return corruptions.load_preset(name_or_path)
    except corruptions.CorruptionError as exc:
        raise UsageError(f"--preset: {exc}") from None


def make_run_id(spec: RunSpec, started: datetime) -> str:
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
    return f"{started.strftime('%Y%m%d-%H%M%S')}-{digest[:8]}"


def run_evaluation(spec: RunSpec, progress: ProgressReporter | None = None) -> RunResult:
    """Evaluate ``spec.model`` on ``spec.data`` clean and under every planned variant."""
    from robustpath.data import load_dataset
    from robustpath.device import resolve_device
    from robustpath.engine import compute_embeddings
    from robustpath.models import load_encoder
    from robustpath.results import SCHEMA_VERSION, build_results_table, metric_rows
    from robustpath.prompts import load_prompts
    from robustpath.tasks import TEXT_TASKS, TaskContext, check_task_name, create_task
    from robustpath.tasks.zeroshot import class_text_embeddings
    from robustpath.variants import CLEAN_VARIANT, plan_variants
    from robustpath.versions import package_versions

    progress = progress or SilentProgress()
    started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    if spec.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {spec.batch_size}")
    tasks = [check_task_name(name) for name in dict.fromkeys(spec.tasks)]
    if not tasks:
        raise UsageError("no task selected: pass --task linear_probe and/or --task retrieval")
    preset = load_preset_or_fail(spec.preset)
    variants = plan_variants(preset, spec.corruptions, spec.severities, spec.stage)
    device = resolve_device(spec.device)
    dataset = load_dataset(spec.data, test_fraction=spec.test_fraction, seed=spec.seed)
    timings["load_data"] = time.perf_counter() - clock

    clock = time.perf_counter()
    encoder = load_encoder(spec.model, pooling=spec.pooling, trust_remote_code=spec.trust_remote_code)
    timings["load_model"] = time.perf_counter() - clock
    notes: list[str] = []
    skipped = [name for name in tasks if name in TEXT_TASKS and not encoder.has_text]
    if skipped:
        tasks = [name for name in tasks if name not in skipped]
        notes.append(f"Zero-shot skipped: model '{encoder.name}' has no text encoder (image-only).")
    if not tasks:
        raise UsageError(f"nothing to evaluate: model '{encoder.name}' has no text encoder, so zero-shot cannot run")
    if tuple(dataset.native_size) == tuple(encoder.preprocessing.input_size):
        notes.append(
            f"The model input ({encoder.preprocessing.input_size[0]} px) equals the native image size, "
            "so pre- and post-resize corruptions coincide."
        )
    prompts = None
    if any(name in TEXT_TASKS for name in tasks) or spec.prompts is not None:
        prompts = load_prompts(spec.prompts, dataset.classes, spec.templates)

    clock = time.perf_counter()
    embeddings = compute_embeddings(
        encoder, dataset, variants, preset=preset, seed=spec.seed, device=device,
        batch_size=spec.batch_size, num_workers=spec.num_workers, progress=progress,
    )
    timings["embed"] = time.perf_counter() - clock

    clock = time.perf_counter()
    text_embeddings = None
    if prompts is not None and encoder.has_text:
        text_embeddings = class_text_embeddings(encoder, prompts, device)
    train_indices = dataset.indices("train")
    context = TaskContext(
        train_embeddings=embeddings.clean[train_indices],
        train_labels=dataset.labels[train_indices],
        test_labels=dataset.labels[embeddings.test_indices],
        class_names=dataset.classes,
        seed=spec.seed,
        text_embeddings=text_embeddings,
        clean_test_embeddings=embeddings.clean[embeddings.test_indices],
    )
    run_id = make_run_id(spec, started)
    rows: list[dict] = []
    task_records = {}
    progress.start("tasks", "Scoring tasks", len(tasks) * (len(variants) + 1))
    for name in tasks:
        task = create_task(name)
        task.fit(context)
        task_records[name] = task.describe()
        for variant in [CLEAN_VARIANT, *variants]:
            test = context.clean_test_embeddings if variant.is_clean else embeddings.variants[variant.key]
            values = task.evaluate(test)
            rows.extend(metric_rows(run_id, encoder.name, dataset.name, name, variant, values))
            progress.advance("tasks")
    progress.finish("tasks")
    timings["tasks"] = time.perf_counter() - clock
    table = build_results_table(rows)

    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "started": started.isoformat(timespec="seconds"),
        "completed": True,
        "spec": spec.to_dict(),
        "device": str(device),
        "precision": "fp32" if device.type != "cuda" else "autocast",
        "model": {"name": encoder.name, **encoder.describe()},
        "dataset": {
            "name": dataset.name,
            "classes": list(dataset.classes),
            "native_size": list(dataset.native_size),
            "counts": dataset.describe(),
            "content_sha256": dataset.content_digest(),
        },
        "preset": {
            "name": preset.name,
            "source": str(preset.path),
            "variants": [
                {
                    "corruption": v.corruption, "severity": v.severity, "stage": v.stage,
                    "parameter": _parameter(preset, v), "unit": preset.corruptions[v.corruption].unit,
                }
                for v in variants
            ],
        },
        "tasks": task_records,
        "prompts": prompts.as_dict() if prompts is not None and "zeroshot" in tasks else None,
        "notes": notes + _task_notes(tasks),
        "timings_seconds": {**timings, "per_variant_embedding": embeddings.seconds},
        "versions": package_versions(),
    }
    return RunResult(table=table, record=record)


def _task_notes(tasks: list[str]) -> list[str]:
    notes = {
        "linear_probe": "The linear probe is trained on clean training embeddings and scored on corrupted test embeddings.",
        "retrieval": "Retrieval: corrupted test queries against the clean training gallery.",
        "zeroshot": "Zero-shot: class text embeddings (prompt ensembles) are computed once from clean prompts.",
    }
    return [notes[name] for name in tasks if name in notes]


def _parameter(preset, variant) -> object:
    entry = preset.corruptions[variant.corruption]
    return entry.values[variant.severity - 1]
