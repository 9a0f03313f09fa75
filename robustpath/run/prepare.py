"""Prepare a run: check the spec's selection, then load the dataset and the model.

``check_selection`` is shared by the run and the dry run (robustpath.run.plan): the batch
size, the export options, the task names, the preset and the planned variants, checked in
that order.  ``prepare_run`` adds what only a real run does: the device (joined to the
torchrun group when launched by torchrun), the locked --out folder, the dataset, the
encoder, the run's notes, the prompts and the task objects.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from robustpath.data import load_dataset
from robustpath.embedding.distributed import join
from robustpath.embedding.engine import resize_is_identity
from robustpath.errors import UsageError
from robustpath.models import load_encoder
from robustpath.output.exports import check_export_options
from robustpath.output.run_folder import open_run_folder
from robustpath.run.presets import load_preset_or_fail
from robustpath.spec.run_spec import RunSpec
from robustpath.tasks import TEXT_TASKS, check_task_name, create_tasks
from robustpath.tasks.prompts import load_prompts
from robustpath.util.device import resolve_device
from robustpath.util.heap import freeze_now
from robustpath.util.progress import ProgressReporter, SilentProgress
from robustpath.variants import plan_variants


@dataclass(frozen=True)
class ExecutionOptions:
    """How a run executes, not what it measures (RunSpec fields; defaults when a spec lacks them)."""

    overwrite: bool = False
    no_cache: bool = False
    cache_dir: Path | None = None
    compile: bool = False
    amp: bool = True
    deterministic: bool = False

    @classmethod
    def from_spec(cls, spec: RunSpec) -> "ExecutionOptions":
        """``deterministic`` turns off autocast (fp32) and torch.compile."""
        cache_dir = getattr(spec, "cache_dir", None)
        deterministic = bool(getattr(spec, "deterministic", False))
        return cls(
            overwrite=bool(getattr(spec, "overwrite", False)),
            no_cache=bool(getattr(spec, "no_cache", False)),
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
            compile=bool(getattr(spec, "compile", False)) and not deterministic,
            amp=bool(getattr(spec, "amp", True)) and not deterministic,
            deterministic=deterministic,
        )


@dataclass(frozen=True)
class Selection:
    """What a spec selects, checked: export options, task names, the preset and its planned variants."""

    save_embeddings: bool
    embeddings_dtype: str
    tasks: list
    preset: object  # corruptions.Preset
    variants: list  # robustpath.variants.Variant, in plan order


def check_selection(spec: RunSpec, *, require_tasks: bool) -> Selection:
    """Check batch size, exports, tasks (at least one when ``require_tasks``), preset and variants, in that order."""
    if spec.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {spec.batch_size}")
    save_embeddings, embeddings_dtype = check_export_options(spec)
    tasks = [check_task_name(name) for name in dict.fromkeys(spec.tasks)]
    if require_tasks and not tasks:
        raise UsageError("no task selected: pass --task linear_probe and/or --task retrieval")
    preset = load_preset_or_fail(spec.preset)
    variants = plan_variants(preset, spec.corruptions, spec.severities, spec.stage)
    return Selection(save_embeddings, embeddings_dtype, tasks, preset, variants)


@dataclass
class PreparedRun:
    """Everything loaded before the sweep; ``main`` is False on torchrun ranks other than 0."""

    spec: RunSpec
    options: ExecutionOptions
    selection: Selection
    progress: ProgressReporter
    device: object  # torch.device
    group: object  # robustpath.embedding.distributed process group, None without torchrun
    folder: object  # robustpath.output.run_folder.RunFolder, None without --out or off rank 0
    dataset: object
    encoder: object
    model_facts: dict
    tasks: list  # task names, zero-shot left out for image-only models
    prompts: object  # robustpath.tasks.prompts.Prompts or None
    task_objects: dict  # task key → task
    notes: list = field(default_factory=list)

    @property
    def main(self) -> bool:
        return self.group is None or self.group.is_main

    @property
    def preset(self):
        return self.selection.preset

    @property
    def variants(self) -> list:
        return self.selection.variants

    @property
    def corrupt_training(self) -> bool:
        """Whether a task embeds the training images under every variant too (retrieval --gallery corrupted)."""
        return any(getattr(task, "needs_corrupted_training", False) for task in self.task_objects.values())


def prepare_run(spec: RunSpec, options: ExecutionOptions, progress: ProgressReporter, folders: list,
                timings: dict) -> PreparedRun:
    """Check the spec, open the --out folder (appended to ``folders``), load data and model; time both loads."""
    clock = time.perf_counter()
    selection = check_selection(spec, require_tasks=True)
    group, device = join(resolve_device(spec.device))  # (None, device) unless launched by torchrun
    main = group is None or group.is_main  # only rank 0 reads and writes OUT and the cache, and reports
    folder = None
    if spec.out is not None and main:
        folder = open_run_folder(spec.out, spec.to_dict(), overwrite=options.overwrite)
        folders.append(folder)
    dataset = load_dataset(
        spec.data, test_fraction=spec.test_fraction, seed=spec.seed, on_bad_image=getattr(spec, "on_bad_image", "skip")
    )
    timings["load_data"] = time.perf_counter() - clock

    clock = time.perf_counter()
    encoder = load_encoder(spec.model, pooling=spec.pooling, trust_remote_code=spec.trust_remote_code)
    model_facts = encoder.describe()
    freeze_now()  # the model and the modules it imported live as long as the run
    timings["load_model"] = time.perf_counter() - clock
    notes, tasks = _notes_and_tasks(spec, options, selection, dataset, encoder, model_facts)
    return PreparedRun(
        spec=spec, options=options, selection=selection, progress=progress if main else SilentProgress(),
        device=device, group=group, folder=folder, dataset=dataset, encoder=encoder, model_facts=model_facts,
        tasks=tasks, prompts=_load_prompts(spec, tasks, dataset), task_objects=_create_tasks(spec, tasks), notes=notes,
    )


def _notes_and_tasks(spec: RunSpec, options: ExecutionOptions, selection: Selection, dataset, encoder,
                     model_facts: dict) -> tuple[list[str], list[str]]:
    """The run's notes about its inputs, and the tasks left once zero-shot is dropped for image-only models."""
    notes: list[str] = list(dataset.notes()) if hasattr(dataset, "notes") else []
    if options.deterministic and getattr(spec, "compile", False):
        notes.append("--deterministic: --compile was ignored (compiled kernels are not guaranteed to be deterministic).")
    tasks = selection.tasks
    skipped = [name for name in tasks if name in TEXT_TASKS and not encoder.has_text]
    if skipped:
        tasks = [name for name in tasks if name not in skipped]
        notes.append(f"Zero-shot skipped: model '{encoder.name}' has no text encoder (image-only).")
    if not tasks:
        raise UsageError(f"nothing to evaluate: model '{encoder.name}' has no text encoder, so zero-shot cannot run")
    if resize_is_identity(dataset.native_size, encoder.preprocessing) and any(
            v.stage == "post" for v in selection.variants):
        notes.append(
            f"The model takes the images at their native {encoder.preprocessing.input_size[0]} px (no resize), so "
            "each corruption after the resize is the same as before it: the post-resize rows repeat the pre-resize "
            "rows (computed once). Blur before vs after the resize differs only for models that resize the images."
        )
    small = small_image_note(tuple(dataset.native_size), model_facts, tuple(encoder.preprocessing.input_size))
    if small:
        notes.append(small)
    return notes, tasks


def _load_prompts(spec: RunSpec, tasks: list[str], dataset):
    """The class prompts when a text task runs or --prompts is given, else None."""
    if any(name in TEXT_TASKS for name in tasks) or spec.prompts is not None:
        return load_prompts(spec.prompts, dataset.classes, spec.templates)
    return None


def _create_tasks(spec: RunSpec, tasks: list[str]) -> dict:
    """Task key → task object, every task the names expand to (e.g. one per samples-per-class)."""
    return {
        task.key: task
        for name in tasks
        for task in create_tasks(name, samples_per_class=spec.samples_per_class, repeats=spec.repeats, gallery=spec.gallery)
    }


# Below one patch of the model (every adapter reads it from the loaded model; 16 px, the patch
# of most ViTs, when the model has none) an image still runs, upscaled to the input size,
# but its content fills only a few patches.
TYPICAL_PATCH = 16


def small_image_note(native_size: tuple[int, int], model_facts: dict, input_size: tuple[int, int]) -> str | None:
    """A note when the images are smaller than one patch of the model."""
    patch = model_facts.get("patch_size")
    known = isinstance(patch, int) and not isinstance(patch, bool) and patch > 0
    side = patch if known else TYPICAL_PATCH
    if min(native_size) >= side:
        return None
    factor = min(input_size) / min(native_size)
    smaller = f"one {side} px patch of the model" if known else f"{side} px (the patch of most ViTs)"
    return (
        f"The images ({native_size[1]}×{native_size[0]} px) are smaller than {smaller}: "
        f"they are upscaled {factor:.3g}× to the {input_size[1]}×{input_size[0]} px input, and stage-pre "
        "corruptions act on the tiny images; results on such images say little."
    )
