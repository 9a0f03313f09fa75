"""Run an evaluation: data + model + variants → embeddings → tasks → results table.

With ``spec.out`` set, the run owns that folder (see robustpath.output.run_folder): it locks it,
a complete run there is not replaced without ``overwrite``, an unfinished one with the
same spec and inputs is resumed from the embeddings it stored under ``OUT/.partial``.
The returned RunResult holds the locked folder; robustpath.output.report.files.write_run_outputs
publishes the outputs there and unlocks it.  Embeddings are also read from and written
to the shared cache (robustpath.embedding.cache) unless ``no_cache``.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.spec.run_spec import BOOTSTRAP_RESAMPLES, RunSpec
from robustpath.errors import UsageError
from robustpath.util.progress import ProgressReporter, SilentProgress, notify

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


def load_preset_or_fail(name_or_path: "str | tuple[str, ...]"):
    """The preset of a run: one name or file, or several combined into one sweep (``corruptions.combine_presets``)."""
    import corruptions

    names = (name_or_path,) if isinstance(name_or_path, str) else tuple(name_or_path)
    try:
        return corruptions.combine_presets([corruptions.load_preset(name) for name in names])
    except corruptions.CorruptionError as exc:  # an unknown name says so itself; a bad file gets the option's name
        raise UsageError(str(exc) if str(exc).startswith("unknown preset") else f"--preset: {exc}") from None


# Spec fields left out of the run id: how a run executes (not what it measures), and fields
# whose resolved content enters the id instead (model weights, dataset images, prompts,
# preset values, the device type that "auto" became).
_RUN_ID_IGNORED_FIELDS = frozenset(
    {"out", "batch_size", "num_workers", "overwrite", "no_cache", "cache_dir", "compile", "deterministic",
     "save_embeddings", "embeddings_dtype", "predictions", "compress_exports", "model", "data", "prompts", "preset",
     "device", "mpp"}
)


def make_run_id(spec: RunSpec, *, model: dict, dataset: dict, preset: dict, prompts: dict | None,
                device: str, precision: str, versions: dict | None = None) -> str:
    """A content digest of what a run measures: the same inputs and seed give the same id.

    ``model``: its identity (weights digest, architecture, preprocessing); ``dataset``:
    name and content digest; ``preset``: name and the planned variants' values; device
    type and precision; the versions of the packages that make embeddings (``versions``,
    default: the installed ones).  No time and no path: two runs of one command into
    other --out folders write byte-identical results.csv files on CPU, and the output
    folder, batch size, workers, cache, exports and compile/deterministic switches do not
    change the id; the bootstrap resamples do when they are not the default 1,000.
    """
    if versions is None:
        from robustpath.embedding.cache import embedding_versions

        versions = embedding_versions()
    measured = {k: v for k, v in spec.to_dict().items() if k not in _RUN_ID_IGNORED_FIELDS}
    if measured.get("bootstrap") == BOOTSTRAP_RESAMPLES:  # the default keeps the ids runs had before --bootstrap
        del measured["bootstrap"]
    identity = {
        "spec": measured,
        "model": model, "dataset": dataset, "preset": preset, "prompts": prompts,
        "device": device, "precision": precision, "versions": versions,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:16]


def run_evaluation(spec: RunSpec, progress: ProgressReporter | None = None) -> RunResult | None:
    """Evaluate ``spec.model`` on ``spec.data`` clean and under every planned variant.

    Ctrl-C raises RunInterrupted (exit code 130 on the command line); what was finished
    stays in ``OUT/.partial`` and the same call resumes from it.  Under torchrun the
    processes share the embedding work (robustpath.embedding.distributed); rank 0 returns the
    result, the other ranks return None and write nothing.
    """
    from robustpath.util.heap import frozen_heap
    from robustpath.output.run_folder import RunInterrupted, interrupted_by_user

    folders: list = []  # the locked --out folder, once open: unlocked here unless a result carries it
    try:
        with frozen_heap():
            if not getattr(spec, "deterministic", False):
                return _run_evaluation(spec, progress or SilentProgress(), folders)
            from robustpath.util.device import deterministic_mode

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


def _run_evaluation(spec: RunSpec, progress: ProgressReporter, folders: list) -> RunResult | None:
    from robustpath.embedding.cache import dataset_content_digest, model_identity, sample_digests
    from robustpath.data import load_dataset
    from robustpath.util.device import resolve_device
    from robustpath.embedding.distributed import join
    from robustpath.embedding.engine import compute_embeddings, precision_name, resize_is_identity
    from robustpath.util.heap import freeze_now
    from robustpath.output.exports import (
        EMBEDDINGS_DIR, RunExports, SampleTable, check_export_options,
    )
    from robustpath.models import load_encoder
    from robustpath.tasks.prompts import load_prompts
    from robustpath.results.table import SCHEMA_VERSION, build_results_table, metric_rows
    from robustpath.preview.run_gallery import build_run_gallery
    from robustpath.util.fault_points import fault_point
    from robustpath.output.run_folder import open_run_folder
    from robustpath.tasks.scoring import TaskScorer
    from robustpath.tasks import TEXT_TASKS, TaskContext, check_task_name, create_tasks
    from robustpath.tasks.zeroshot import class_text_embeddings
    from robustpath.variants import CLEAN_VARIANT, plan_variants, variant_parameter
    from robustpath.util.versions import package_versions

    options = ExecutionOptions.from_spec(spec)
    recorded_spec = {k: v for k, v in spec.to_dict().items() if k != "overwrite"}  # a replay must not clobber
    session_started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    if spec.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {spec.batch_size}")
    save_embeddings, embeddings_dtype = check_export_options(spec)
    tasks = [check_task_name(name) for name in dict.fromkeys(spec.tasks)]
    if not tasks:
        raise UsageError("no task selected: pass --task linear_probe and/or --task retrieval")
    preset = load_preset_or_fail(spec.preset)
    variants = plan_variants(preset, spec.corruptions, spec.severities, spec.stage)
    device = resolve_device(spec.device)
    group, device = join(device)  # (None, device) unless launched by torchrun
    main = group is None or group.is_main  # only rank 0 reads and writes OUT and the cache, and reports
    if not main:
        progress = SilentProgress()
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
    notes: list[str] = list(dataset.notes()) if hasattr(dataset, "notes") else []
    if options.deterministic and getattr(spec, "compile", False):
        notes.append("--deterministic: --compile was ignored (compiled kernels are not guaranteed to be deterministic).")
    skipped = [name for name in tasks if name in TEXT_TASKS and not encoder.has_text]
    if skipped:
        tasks = [name for name in tasks if name not in skipped]
        notes.append(f"Zero-shot skipped: model '{encoder.name}' has no text encoder (image-only).")
    if not tasks:
        raise UsageError(f"nothing to evaluate: model '{encoder.name}' has no text encoder, so zero-shot cannot run")
    if resize_is_identity(dataset.native_size, encoder.preprocessing) and any(v.stage == "post" for v in variants):
        notes.append(
            f"The model takes the images at their native {encoder.preprocessing.input_size[0]} px (no resize), so "
            "each corruption after the resize is the same as before it: the post-resize rows repeat the pre-resize "
            "rows (computed once). Blur before vs after the resize differs only for models that resize the images."
        )
    small = _small_image_note(tuple(dataset.native_size), model_facts, tuple(encoder.preprocessing.input_size))
    if small:
        notes.append(small)
    prompts = None
    if any(name in TEXT_TASKS for name in tasks) or spec.prompts is not None:
        prompts = load_prompts(spec.prompts, dataset.classes, spec.templates)
    task_objects = {
        task.key: task
        for name in tasks
        for task in create_tasks(name, samples_per_class=spec.samples_per_class, repeats=spec.repeats, gallery=spec.gallery)
    }
    corrupt_training = any(getattr(task, "needs_corrupted_training", False) for task in task_objects.values())

    clock = time.perf_counter()
    digests = sample_digests(dataset) if main else None
    content_sha256 = dataset_content_digest(dataset, digests) if main else None
    run_id = make_run_id(
        spec, model={"name": encoder.name, **model_identity(model_facts)},
        dataset={"name": dataset.name, "content_sha256": content_sha256},
        preset={"name": preset.name, "variants": [
            [v.key, preset.corruptions[v.corruption].operation, variant_parameter(preset, v)] for v in variants]},
        prompts=prompts.as_dict() if prompts is not None else None,
        device=device.type, precision=precision_name(device, options.amp),
    )
    started = session_started.isoformat(timespec="seconds")
    stores = []
    if folder is not None:
        folder.start(
            run_id=run_id, started=started,
            record={"schema_version": SCHEMA_VERSION, "session_started": started, "spec": recorded_spec,
                    "model": {"name": encoder.name, **model_facts}, "device": str(device),
                    "dataset": {"name": dataset.name, "content_sha256": content_sha256},
                    "versions": package_versions()},
        )
        run_id, started = folder.run_id, folder.started
        fault_point("run-started")
        stores.append(folder.store())
        if folder.resumed:
            notify(progress, f"resuming the unfinished run in '{folder.path}' (run {run_id})")
    cache_dir = None
    if not options.no_cache and main:
        from robustpath.embedding.cache import EmbeddingStore, resolve_cache_dir

        cache_dir = resolve_cache_dir(options.cache_dir)
        stores.append(EmbeddingStore(cache_dir))
    store, keys = _stores_and_keys(stores, encoder, model_facts, dataset, digests, spec.seed, device, options)
    timings["prepare"] = time.perf_counter() - clock

    train_indices = dataset.indices("train")
    text_embeddings = None
    if main and prompts is not None and encoder.has_text:
        text_embeddings = class_text_embeddings(encoder.to(device), prompts, device)

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
            device=device,
            classifier_heads=getattr(encoder, "classifier_heads", None),
        )

    clock = time.perf_counter()
    # without --save-embeddings a variant's embeddings are dropped once scored (they stay in the stores)
    # the group-shift measures compare every variant's embeddings with the group shifts after the sweep
    keep_variants = save_embeddings or getattr(dataset, "groups", None) is not None
    scorer = TaskScorer(task_objects, variants, make_context, release=not keep_variants) if main else None
    try:
        embeddings = compute_embeddings(
            encoder, dataset, variants, preset=preset, seed=spec.seed, device=device,
            batch_size=spec.batch_size, num_workers=spec.num_workers, progress=progress,
            store=store, keys=keys, amp=options.amp, compile=options.compile, corrupt_training=corrupt_training,
            group=group, on_plan=_index_recorder(stores, spec, content_sha256, device, options, corrupt_training,
                                                 preset, variants) if stores else None,
            on_ready=scorer.ready if scorer is not None else None,
        )
        timings["embed"] = time.perf_counter() - clock
        if scorer is None:
            return None
        clock = time.perf_counter()
        scores = scorer.finish(embeddings, progress)
    except BaseException:
        if scorer is not None:
            scorer.cancel()
        raise
    timings["tasks_after_embedding"] = time.perf_counter() - clock
    rows: list[dict] = []
    outcomes = {}  # in a fixed order, whatever order the variants were scored in
    for key, task in task_objects.items():
        for variant in [CLEAN_VARIANT, *variants]:
            outcomes[(key, variant.key)] = scores.outcomes[(key, variant.key)]
            values = scores.values[(key, variant.key)]
            rows.extend(metric_rows(run_id, encoder.name, dataset.name, task.name, variant, values, **task.row_fields))
    task_records = {key: scores.records[key] for key in task_objects}
    group_record = None
    if getattr(dataset, "groups", None) is not None:  # real shifts between centres, scanners, stains
        from robustpath.tasks.group_shifts import evaluate_group_shifts

        clock = time.perf_counter()
        group_results, group_record = evaluate_group_shifts(
            dataset, embeddings, variants, seed=spec.seed,
            resamples=getattr(spec, "bootstrap", BOOTSTRAP_RESAMPLES), progress=progress,
        )
        for task_name, by_variant in group_results.items():
            for variant, values in by_variant.items():
                rows.extend(metric_rows(run_id, encoder.name, dataset.name, task_name, variant, values))
        timings["group_shifts"] = time.perf_counter() - clock
    table = build_results_table(rows)
    exports = RunExports(
        samples=SampleTable.from_dataset(dataset), test_indices=embeddings.test_indices, train_indices=train_indices,
        variants=[CLEAN_VARIANT, *variants], embeddings=embeddings if save_embeddings else None,
        text_embeddings=text_embeddings if save_embeddings else None, embeddings_dtype=embeddings_dtype,
        predictions=getattr(spec, "predictions", "all"), compress=bool(getattr(spec, "compress_exports", False)),
    )
    clock = time.perf_counter()
    gallery = build_run_gallery(dataset, preset, variants, seed=spec.seed)
    timings["gallery"] = time.perf_counter() - clock

    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "started": started,
        "completed": True,
        "sessions": list(folder.sessions) if folder is not None else [started],
        "spec": recorded_spec,
        "device": str(device),
        "precision": embeddings.stats["precision"],
        "deterministic": options.deterministic,
        "model": {"name": encoder.name, **model_facts},
        "dataset": {
            "name": dataset.name,
            "classes": list(dataset.classes),
            "native_size": list(dataset.native_size),
            **({"mpp": list(run_mpp(spec, dataset))} if run_mpp(spec, dataset) is not None else {}),
            "counts": dataset.describe(),
            "content_sha256": content_sha256,
            "skipped_images": [{"path": path, "reason": reason} for path, reason in getattr(dataset, "skipped", ())],
            "identical_images": getattr(dataset, "identical", None) or None,
        },
        "preset": {
            "name": preset.name,
            "source": str(preset.path),
            "variants": [
                {
                    "corruption": v.corruption, "severity": v.severity, "stage": v.stage,
                    "parameter": variant_parameter(preset, v), "unit": preset.corruptions[v.corruption].unit,
                    "native_equivalent": _native_equivalent(preset, v, dataset.native_size, encoder.preprocessing,
                                                            run_mpp(spec, dataset)),
                }
                for v in variants
            ],
        },
        "tasks": task_records,
        "groups": group_record,
        "prompts": prompts.as_dict() if prompts is not None and "zeroshot" in tasks else None,
        "notes": notes + embeddings.notes + _task_notes(tasks, spec.gallery)
        + [record["note"] for record in task_records.values() if record.get("note")]
        + (group_record["notes"] if group_record else []),
        "gallery": gallery.describe() if gallery is not None else None,
        "embedding": {
            **embeddings.stats,
            "reused_variants": embeddings.reused,
            "cache_dir": str(cache_dir) if cache_dir is not None else None,
            "resumed": bool(folder is not None and folder.resumed),
        },
        "timings_seconds": {**timings, "per_variant_embedding": embeddings.seconds},
        "versions": package_versions(),
        "exports": {
            **exports.file_names(),
            "embeddings": {"folder": EMBEDDINGS_DIR, "dtype": embeddings_dtype} if save_embeddings else None,
        },
    }
    if group is not None:
        record["distributed"] = group.describe()
    return RunResult(table=table, record=record, outcomes=outcomes, exports=exports, gallery=gallery, folder=folder)


def _index_recorder(stores, spec, content_sha256, device, options, corrupt_training, preset, variants):
    """on_plan for compute_embeddings: index the run's entries in its stores, so that
    ``eval --dry-run`` can count what is embedded (robustpath.embedding.cache_index), even mid-run."""
    from robustpath.embedding.cache_index import record_run, run_lookup
    from robustpath.embedding.engine import precision_name

    def record(entry_digests: dict[str, list[str]]) -> None:
        lookup = run_lookup(spec, content_sha256, device, precision_name(device, options.amp), options.compile,
                            corrupt_training)
        record_run([store.root for store in stores], lookup, preset, variants, entry_digests)

    return record


def _stores_and_keys(stores, encoder, model_facts, dataset, digests, seed, device, options: ExecutionOptions):
    """A StoreChain over ``stores`` and the EmbeddingKeys of this run (None, None without stores)."""
    if not stores:
        return None, None
    from robustpath.embedding.cache import EmbeddingKeys, StoreChain, embedding_versions, model_identity
    from robustpath.embedding.engine import precision_name

    keys = EmbeddingKeys(
        model=model_identity(model_facts),
        preprocessing=encoder.preprocessing.as_dict(),
        native_size=tuple(dataset.native_size),
        digests=digests,
        sample_ids=dataset.sample_ids,
        seed=seed,
        versions=embedding_versions(),
        device=device.type,
        precision=precision_name(device, options.amp),
        compiled=options.compile,
    )
    return StoreChain(stores), keys


# Below one patch of the model (every adapter reads it from the loaded model; 16 px, the patch
# of most ViTs, when the model has none) an image still runs, upscaled to the input size,
# but its content fills only a few patches.
TYPICAL_PATCH = 16


def _small_image_note(native_size: tuple[int, int], model_facts: dict, input_size: tuple[int, int]) -> str | None:
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


def _task_notes(tasks: list[str], gallery: str = "clean") -> list[str]:
    from robustpath.tasks.registry import get_task_info

    notes = [get_task_info(name).note(gallery) for name in tasks]
    return [note for note in notes if note]


def _native_equivalent(preset, variant, native_size, preprocessing, mpp: tuple[float, float] | None) -> dict | None:
    """The variant's parameter in native pixels ({"value", "unit"}), None when it has no size; with the
    images' microns per pixel ``mpp`` (smallest, largest), a length also in micrometres ("microns": [low, high])."""
    from corruptions import get_operation, native_equivalent

    if preprocessing.crop == "center":  # shorter side to resize_size, then the central crop
        resized = preprocessing.resize_size or max(preprocessing.input_size)
    else:  # the whole image to input_size
        resized = tuple(preprocessing.input_size)
    entry = preset.entry(variant.corruption)
    native = native_equivalent(entry, variant.severity, stage=variant.stage, native_size=tuple(native_size),
                               resized_size=resized)
    if native is not None and mpp is not None and get_operation(entry.operation).spatial == "length":
        native["microns"] = [native["value"] * mpp[0], native["value"] * mpp[1]]
    return native


def run_mpp(spec: RunSpec, dataset) -> tuple[float, float] | None:
    """Microns per native pixel as (smallest, largest): --mpp for every image, else the data's own."""
    return (float(spec.mpp), float(spec.mpp)) if spec.mpp is not None else getattr(dataset, "mpp", None)
