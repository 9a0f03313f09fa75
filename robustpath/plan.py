"""Dry run: validate a RunSpec and describe the work without loading any weights."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from robustpath.config import RunSpec
from robustpath.errors import UsageError

_TEXT_SOURCES = {"open_clip": "yes", "customvit": "no", "timm": "no"}


@dataclass(frozen=True)
class RunPlan:
    """What ``robustpath eval`` would do: counts, variants and the resolved inputs."""

    model: str
    source: str
    text_encoder: str  # "yes", "no" or "unknown until loaded"
    dataset: str
    images: int
    test_images: int
    skipped_images: int
    variants: tuple[str, ...]
    tasks: tuple[str, ...]
    forward_passes: int
    exports: tuple[str, ...] = ()  # per-sample files written besides results.csv
    embedded: dict = None  # store ("run folder", "cache") → variant keys (clean included) already embedded there

    def as_dict(self) -> dict:
        return {**self.__dict__, "variants": list(self.variants), "tasks": list(self.tasks), "exports": list(self.exports),
                "embedded": {store: sorted(keys) for store, keys in (self.embedded or {}).items()}}

    def embedded_summary(self) -> str:
        """E.g. '12 of 33 (run folder 4, cache 12)': variants, clean included, whose embeddings exist."""
        stores = self.embedded or {}
        found = set().union(*stores.values()) if stores else set()
        where = ", ".join(f"{store} {len(keys)}" for store, keys in stores.items())
        return f"{len(found)} of {len(self.variants) + 1}" + (f" ({where})" if stores else " (no store: --no-cache)")


def _has_text(source: str, argument: str) -> str:
    if source in _TEXT_SOURCES:
        return _TEXT_SOURCES[source]
    config = Path(argument).expanduser() / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
        except (OSError, ValueError, AttributeError):
            return "unknown until loaded"
        return "yes" if "clip" in str(model_type).lower() else "no"
    return "unknown until loaded"


def plan_run(spec: RunSpec) -> RunPlan:
    """Check data, model spec, preset, tasks and options; load no weights, touch no network."""
    from robustpath.data import load_dataset
    from robustpath.device import resolve_device
    from robustpath.exports import EMBEDDINGS_DIR, MISCLASSIFIED_FILE, PREDICTIONS_FILE, check_export_options
    from robustpath.runner import load_preset_or_fail
    from robustpath.models import resolve_model_spec
    from robustpath.prompts import load_prompts
    from robustpath.tasks import TEXT_TASKS, check_task_name
    from robustpath.variants import plan_variants

    if spec.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {spec.batch_size}")
    save_embeddings, embeddings_dtype = check_export_options(spec)
    tasks = [check_task_name(name) for name in dict.fromkeys(spec.tasks)]
    preset = load_preset_or_fail(spec.preset)
    variants = plan_variants(preset, spec.corruptions, spec.severities, spec.stage)
    device = resolve_device(spec.device)
    source, argument = resolve_model_spec(spec.model)
    text = _has_text(source.name, argument)
    dataset = load_dataset(spec.data, test_fraction=spec.test_fraction, seed=spec.seed, on_bad_image=spec.on_bad_image)
    if text == "no":
        tasks = [name for name in tasks if name not in TEXT_TASKS]
    if any(name in TEXT_TASKS for name in tasks) or spec.prompts is not None:
        load_prompts(spec.prompts, dataset.classes, spec.templates)
    test_images = len(dataset.indices("test"))
    embedded = _embedded(spec, dataset, preset, variants, tasks, device)
    return RunPlan(
        model=spec.model, source=source.name, text_encoder=text, dataset=dataset.name,
        images=len(dataset), test_images=test_images, skipped_images=len(dataset.skipped),
        variants=tuple(v.key for v in variants), tasks=tuple(tasks),
        forward_passes=len(dataset) + test_images * len(variants),
        embedded=embedded,
        exports=(PREDICTIONS_FILE, MISCLASSIFIED_FILE, *((f"{EMBEDDINGS_DIR}/ ({embeddings_dtype})",) if save_embeddings else ())),
    )


def _embedded(spec: RunSpec, dataset, preset, variants, tasks, device) -> dict[str, set[str]]:
    """Variants already embedded in OUT/.partial and the shared cache (robustpath.cache_index)."""
    from robustpath.cache import dataset_content_digest, resolve_cache_dir, sample_digests
    from robustpath.cache_index import embedded_variants, run_lookup
    from robustpath.engine import precision_name
    from robustpath.run_state import PARTIAL_DIR
    from robustpath.runner import ExecutionOptions
    from robustpath.tasks import create_tasks

    options = ExecutionOptions.from_spec(spec)
    roots = {}
    if spec.out is not None:
        roots["run folder"] = Path(spec.out) / PARTIAL_DIR
    if not options.no_cache:
        roots["cache"] = resolve_cache_dir(options.cache_dir)
    if not roots:
        return {}
    corrupt_training = any(
        getattr(task, "needs_corrupted_training", False)
        for name in tasks
        for task in create_tasks(name, samples_per_class=spec.samples_per_class, repeats=spec.repeats, gallery=spec.gallery)
    )
    lookup = run_lookup(spec, dataset_content_digest(dataset, sample_digests(dataset)), device,
                        precision_name(device, options.amp), options.compile, corrupt_training)
    return embedded_variants(roots, lookup, preset, variants)
