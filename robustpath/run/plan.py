"""Dry run: validate a RunSpec and describe the work without loading any weights."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from robustpath.spec.run_spec import RunSpec
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
    images_to_embed: int  # images through the encoder, each distinct pipeline once (before reuse from stores)
    forward_passes: int  # of up to batch_size images
    batch_size: int
    coinciding: int  # variants computed once with their pre twin (the model takes the native size); None: unknown
    input_size: tuple[int, int] | None  # the model's input, when known without loading weights (CustomViT)
    exports: tuple[str, ...] = ()  # per-sample files written besides results.csv
    embedded: dict = None  # store ("run folder", "cache") → variant keys (clean included) already embedded there

    def as_dict(self) -> dict:
        return {**self.__dict__, "variants": list(self.variants), "tasks": list(self.tasks), "exports": list(self.exports),
                "input_size": list(self.input_size) if self.input_size else None,
                "embedded": {store: sorted(keys) for store, keys in (self.embedded or {}).items()}}

    def embedding_summary(self) -> str:
        """E.g. '3760 images in 59 forward passes of up to 64 (4 post-resize variants coincide with pre: ...)'."""
        text = f"{self.images_to_embed} images in {self.forward_passes} forward passes of up to {self.batch_size}"
        if self.input_size is None:
            return text + " (counting every variant: the model's input size is known only once it is loaded)"
        if self.coinciding:
            return (text + f" ({self.coinciding} post-resize variants coincide with pre and are embedded once: "
                    f"the model takes the images at their native {self.input_size[1]}×{self.input_size[0]} px)")
        return text

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
    from robustpath.util.device import resolve_device
    from robustpath.embedding.engine import resize_is_identity
    from robustpath.output.exports import EMBEDDINGS_DIR, MISCLASSIFIED_FILE, PREDICTIONS_FILE, check_export_options
    from robustpath.run.runner import load_preset_or_fail
    from robustpath.models import resolve_model_spec
    from robustpath.tasks.prompts import load_prompts
    from robustpath.tasks import TEXT_TASKS, check_task_name
    from robustpath.variants import distinct_pipelines, plan_variants

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
    corrupt_training = _corrupts_training(spec, tasks)
    embedded = _embedded(spec, dataset, preset, variants, corrupt_training, device)
    prep = _preprocessing(source.name, argument)
    identity = prep is not None and resize_is_identity(dataset.native_size, prep)
    distinct = len(distinct_pipelines(variants, identity))
    images = len(dataset) + distinct * (len(dataset) if corrupt_training else test_images)  # as the sweep plans them
    return RunPlan(
        model=spec.model, source=source.name, text_encoder=text, dataset=dataset.name,
        images=len(dataset), test_images=test_images, skipped_images=len(dataset.skipped),
        variants=tuple(v.key for v in variants), tasks=tuple(tasks),
        images_to_embed=images, forward_passes=-(-images // spec.batch_size), batch_size=spec.batch_size,
        coinciding=len(variants) - distinct, input_size=tuple(prep.input_size) if prep is not None else None,
        embedded=embedded,
        exports=(PREDICTIONS_FILE, MISCLASSIFIED_FILE, *((f"{EMBEDDINGS_DIR}/ ({embeddings_dtype})",) if save_embeddings else ())),
    )


def _preprocessing(source: str, argument: str):
    """The model's Preprocessing when its config gives it without loading weights (CustomViT), else None."""
    if source != "customvit":
        return None
    from robustpath.models.customvit import customvit_preprocessing, load_customvit_config

    return customvit_preprocessing(load_customvit_config(Path(argument)))


def _corrupts_training(spec: RunSpec, tasks) -> bool:
    """Whether a task embeds the training images under every variant too (retrieval --gallery corrupted)."""
    from robustpath.tasks import create_tasks

    return any(
        getattr(task, "needs_corrupted_training", False)
        for name in tasks
        for task in create_tasks(name, samples_per_class=spec.samples_per_class, repeats=spec.repeats, gallery=spec.gallery)
    )


def _embedded(spec: RunSpec, dataset, preset, variants, corrupt_training: bool, device) -> dict[str, set[str]]:
    """Variants already embedded in OUT/.partial and the shared cache (robustpath.embedding.cache_index)."""
    from robustpath.embedding.cache import dataset_content_digest, resolve_cache_dir, sample_digests
    from robustpath.embedding.cache_index import embedded_variants, run_lookup
    from robustpath.embedding.engine import precision_name
    from robustpath.output.run_folder import PARTIAL_DIR
    from robustpath.run.runner import ExecutionOptions

    options = ExecutionOptions.from_spec(spec)
    roots = {}
    if spec.out is not None:
        roots["run folder"] = Path(spec.out) / PARTIAL_DIR
    if not options.no_cache:
        roots["cache"] = resolve_cache_dir(options.cache_dir)
    if not roots:
        return {}
    lookup = run_lookup(spec, dataset_content_digest(dataset, sample_digests(dataset)), device,
                        precision_name(device, options.amp), options.compile, corrupt_training)
    return embedded_variants(roots, lookup, preset, variants)
