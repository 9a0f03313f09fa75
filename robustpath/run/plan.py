"""Dry run: validate a RunSpec and describe the work without loading any weights."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from robustpath.data import load_dataset
from robustpath.embedding.cache import dataset_content_digest, resolve_cache_dir, sample_digests
from robustpath.embedding.cache_index import embedded_variants, run_lookup
from robustpath.embedding.engine import precision_name, resize_is_identity
from robustpath.models import resolve_model_spec
from robustpath.models.customvit import customvit_preprocessing, load_customvit_config
from robustpath.models.recipes.availability import check_local_copy
from robustpath.models.registry import check_pooling, check_remote_code, get_model_recipe, resolved_pooling
from robustpath.output.exports import EMBEDDINGS_DIR, MISCLASSIFIED_FILE, PREDICTIONS_FILE
from robustpath.output.run_folder import PARTIAL_DIR
from robustpath.run.prepare import ExecutionOptions, check_selection
from robustpath.spec.run_spec import CARD_POOLING, RunSpec
from robustpath.tasks import TEXT_TASKS, create_tasks
from robustpath.tasks.prompts import load_prompts
from robustpath.util.device import resolve_device
from robustpath.variants import distinct_pipelines

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
    pooling: str | None = None  # the embedding, when known without loading weights (a model card's recipe)
    pooling_source: str | None = None  # "model card" or "--pooling"

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
    selection = check_selection(spec, require_tasks=False)  # the checks a run makes first, in the same order
    preset, variants = selection.preset, selection.variants
    device = resolve_device(spec.device)
    source, argument = resolve_model_spec(spec.model)
    recipe = _check_model_options(spec)
    text = "no" if recipe is not None else _has_text(source.name, argument)
    dataset = load_dataset(spec.data, test_fraction=spec.test_fraction, seed=spec.seed, on_bad_image=spec.on_bad_image)
    tasks = [name for name in selection.tasks if name not in TEXT_TASKS] if text == "no" else selection.tasks
    _check_prompts(spec, tasks, dataset)
    test_images = len(dataset.indices("test"))
    corrupt_training = _corrupts_training(spec, tasks)
    embedded = _embedded(spec, dataset, preset, variants, corrupt_training, device)
    prep = recipe.preprocessing if recipe is not None else _preprocessing(source.name, argument)
    distinct = _distinct_pipelines(dataset, prep, variants)
    images = len(dataset) + distinct * (len(dataset) if corrupt_training else test_images)  # as the sweep plans them
    return RunPlan(
        model=spec.model, source=source.name, text_encoder=text, dataset=dataset.name,
        images=len(dataset), test_images=test_images, skipped_images=len(dataset.skipped),
        variants=tuple(v.key for v in variants), tasks=tuple(tasks),
        images_to_embed=images, forward_passes=-(-images // spec.batch_size), batch_size=spec.batch_size,
        coinciding=len(variants) - distinct, input_size=tuple(prep.input_size) if prep is not None else None,
        embedded=embedded, pooling=resolved_pooling(spec.model, spec.pooling),
        pooling_source=_pooling_source(spec) if recipe else None,
        exports=_export_files(spec, selection),
    )


def _check_prompts(spec: RunSpec, tasks, dataset) -> None:
    """Load the prompts as the run would (a text task, or --prompts given), to check them."""
    if any(name in TEXT_TASKS for name in tasks) or spec.prompts is not None:
        load_prompts(spec.prompts, dataset.classes, spec.templates)


def _distinct_pipelines(dataset, prep, variants) -> int:
    """How many variants the sweep embeds apart (post twins of pre variants coincide at the native size)."""
    identity = prep is not None and resize_is_identity(dataset.native_size, prep)
    return len(distinct_pipelines(variants, identity))


def _pooling_source(spec: RunSpec) -> str:
    return "--pooling" if spec.pooling not in (None, CARD_POOLING) else "model card"


def _export_files(spec: RunSpec, selection) -> tuple[str, ...]:
    """Per-sample files besides results.csv: the prediction CSVs and, with --save-embeddings, embeddings/."""
    saved = (f"{EMBEDDINGS_DIR}/ ({selection.embeddings_dtype})",) if selection.save_embeddings else ()
    return (*_prediction_files(spec), *saved)


def _check_model_options(spec: RunSpec):
    """Pooling, repository code and (offline) a local copy of an alias's repository; its recipe or None."""
    check_pooling(spec.model, spec.pooling)
    check_remote_code(spec.model, spec.trust_remote_code)
    recipe = get_model_recipe(spec.model)
    if recipe is not None:
        check_local_copy(recipe)
    return recipe


def _preprocessing(source: str, argument: str):
    """The model's Preprocessing when its config gives it without loading weights (CustomViT), else None."""
    if source != "customvit":
        return None
    return customvit_preprocessing(load_customvit_config(Path(argument)))


def _corrupts_training(spec: RunSpec, tasks) -> bool:
    """Whether a task embeds the training images under every variant too (retrieval --gallery corrupted)."""
    return any(
        getattr(task, "needs_corrupted_training", False)
        for name in tasks
        for task in create_tasks(name, samples_per_class=spec.samples_per_class, repeats=spec.repeats, gallery=spec.gallery)
    )


def _embedded(spec: RunSpec, dataset, preset, variants, corrupt_training: bool, device) -> dict[str, set[str]]:
    """Variants already embedded in OUT/.partial and the shared cache (robustpath.embedding.cache_index)."""
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


def _prediction_files(spec) -> tuple[str, ...]:
    """The per-sample CSV files a run of ``spec`` writes (--predictions, --compress-exports)."""
    mode = getattr(spec, "predictions", "all")
    if mode == "none":
        return ()
    suffix = ".gz" if getattr(spec, "compress_exports", False) else ""
    return (PREDICTIONS_FILE + suffix + (" (changed rows only)" if mode == "changed" else ""), MISCLASSIFIED_FILE + suffix)
