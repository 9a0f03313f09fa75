"""The run's identity and its run.json record.

``make_run_id`` digests what a run measures; ``start_record`` is what an unfinished run's
run.json holds; ``completed_record`` is the full record of a finished run (schema in
robustpath.results.table.SCHEMA_VERSION).
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from corruptions import get_operation, native_equivalent

from robustpath.embedding.cache import embedding_versions, model_identity
from robustpath.embedding.engine import precision_name
from robustpath.output.exports import EMBEDDINGS_DIR
from robustpath.results.table import SCHEMA_VERSION
from robustpath.spec.run_spec import BOOTSTRAP_RESAMPLES, RunSpec
from robustpath.util.versions import package_versions
from robustpath.variants import variant_parameter

if TYPE_CHECKING:  # pragma: no cover
    from robustpath.run.prepare import PreparedRun
    from robustpath.run.stores import RunStores

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


def run_id_of(run: "PreparedRun", content_sha256: str | None) -> str:
    """make_run_id for a prepared run whose images digest to ``content_sha256``."""
    preset, encoder = run.preset, run.encoder
    return make_run_id(
        run.spec, model={"name": encoder.name, **model_identity(run.model_facts)},
        dataset={"name": run.dataset.name, "content_sha256": content_sha256},
        preset={"name": preset.name, "variants": [
            [v.key, preset.corruptions[v.corruption].operation, variant_parameter(preset, v)] for v in run.variants]},
        prompts=run.prompts.as_dict() if run.prompts is not None else None,
        device=run.device.type, precision=precision_name(run.device, run.options.amp),
    )


def recorded_spec(spec: RunSpec) -> dict:
    """The spec as run.json records it: without ``overwrite`` (a replay must not clobber)."""
    return {k: v for k, v in spec.to_dict().items() if k != "overwrite"}


def start_record(run: "PreparedRun", started: str, content_sha256: str | None) -> dict:
    """The run.json of a run that has started and not finished."""
    return {"schema_version": SCHEMA_VERSION, "session_started": started, "spec": recorded_spec(run.spec),
            "model": {"name": run.encoder.name, **run.model_facts}, "device": str(run.device),
            "dataset": {"name": run.dataset.name, "content_sha256": content_sha256},
            "versions": package_versions()}


def completed_record(run: "PreparedRun", stores: "RunStores", outcome, *, notes: list[str], gallery, exports,
                     timings: dict) -> dict:
    """The run.json of a finished run; ``outcome`` is the robustpath.run.evaluate.Evaluation."""
    embeddings, folder, selection = outcome.embeddings, run.folder, run.selection
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": stores.run_id,
        "started": stores.started,
        "completed": True,
        "sessions": list(folder.sessions) if folder is not None else [stores.started],
        "spec": recorded_spec(run.spec),
        "device": str(run.device),
        "precision": embeddings.stats["precision"],
        "deterministic": run.options.deterministic,
        "model": {"name": run.encoder.name, **run.model_facts},
        "dataset": _dataset_record(run, stores.content_sha256),
        "preset": _preset_record(run),
        "tasks": outcome.task_records,
        "groups": outcome.group_record,
        "prompts": run.prompts.as_dict() if run.prompts is not None and "zeroshot" in run.tasks else None,
        "notes": notes,
        "gallery": gallery.describe() if gallery is not None else None,
        "embedding": {
            **embeddings.stats,
            "reused_variants": embeddings.reused,
            "cache_dir": str(stores.cache_dir) if stores.cache_dir is not None else None,
            "resumed": bool(folder is not None and folder.resumed),
        },
        "timings_seconds": {**timings, "per_variant_embedding": embeddings.seconds},
        "versions": package_versions(),
        "exports": {
            **exports.file_names(),
            "embeddings": {"folder": EMBEDDINGS_DIR, "dtype": selection.embeddings_dtype}
            if selection.save_embeddings else None,
        },
    }
    if run.group is not None:
        record["distributed"] = run.group.describe()
    return record


def _dataset_record(run: "PreparedRun", content_sha256: str | None) -> dict:
    dataset = run.dataset
    mpp = run_mpp(run.spec, dataset)
    return {
        "name": dataset.name,
        "classes": list(dataset.classes),
        "native_size": list(dataset.native_size),
        **({"mpp": list(mpp)} if mpp is not None else {}),
        "counts": dataset.describe(),
        "content_sha256": content_sha256,
        "skipped_images": [{"path": path, "reason": reason} for path, reason in getattr(dataset, "skipped", ())],
        "identical_images": getattr(dataset, "identical", None) or None,
    }


def _preset_record(run: "PreparedRun") -> dict:
    preset, mpp = run.preset, run_mpp(run.spec, run.dataset)
    return {
        "name": preset.name,
        "source": str(preset.path),
        "variants": [
            {
                "corruption": v.corruption, "severity": v.severity, "stage": v.stage,
                "parameter": variant_parameter(preset, v), "unit": preset.corruptions[v.corruption].unit,
                "native_equivalent": _native_equivalent(preset, v, run.dataset.native_size,
                                                        run.encoder.preprocessing, mpp),
            }
            for v in run.variants
        ],
    }


def _native_equivalent(preset, variant, native_size, preprocessing, mpp: tuple[float, float] | None) -> dict | None:
    """The variant's parameter in native pixels ({"value", "unit"}), None when it has no size; with the
    images' microns per pixel ``mpp`` (smallest, largest), a length also in micrometres ("microns": [low, high])."""
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
