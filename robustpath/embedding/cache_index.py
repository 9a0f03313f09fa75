"""Which variants of a planned run are already embedded, known without loading the model.

Store entries (robustpath.embedding.cache) are keyed by facts that only a loaded model gives (its
weights digest and preprocessing), so ``eval --dry-run`` cannot rebuild their keys.
Every run therefore also writes, in each store it uses (``OUT/.partial`` and the shared
cache), an index under ``index/<handle>/``.  The *lookup handle* digests the model spec
with the size and modification time of its local files and the pooling, the dataset
content digest, seed, device type, batch size, precision, compile switch, gallery mode
and package versions; one small file per variant (so concurrent runs never overwrite each other's)
holds the preset value the variant was made with and the digests of its entries.  Hub
models have no local files: a new revision on the hub is not noticed by the index.  A dry run rebuilds the handle and counts the variants whose entries all still
exist (without verifying their content).  The handle only finds the index: entries stay
keyed by content and forward-pass layout, and are verified when read, so a run never
reuses an entry that does not match it exactly, whatever the index says (a run with
other corruptions may recompute entries the dry run counted, where its forward passes
group the images differently).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

INDEX_DIR = "index"


def model_handle(model_spec: str) -> dict:
    """The resolved spec, its model-card recipe (digest) and (name, size, mtime) of the local files that
    its source's ``index_parts`` name (robustpath.models.sources; no weights read)."""
    from robustpath.models import resolve_model_spec
    from robustpath.models.registry import get_model_recipe

    source, argument = resolve_model_spec(model_spec)
    recipe = get_model_recipe(model_spec)
    files = []
    for part in source.index_parts(argument):
        path = Path(part).expanduser()
        if not path.exists():
            continue
        members = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for member in members:
            status = member.stat()
            files.append([str(member.resolve()), status.st_size, status.st_mtime_ns])
    handle = {"source": source.name, "argument": argument, "files": files}
    if recipe is not None:
        handle["recipe"] = recipe.digest()
    return handle


def lookup_digest(**facts) -> str:
    """The index file name for these facts (see the module docstring)."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:32]


def variant_value(preset, variant) -> list:
    """What a variant's embeddings depend on in the preset: [operation, value] (["none"] when clean)."""
    from robustpath.variants import variant_parameter

    if variant.is_clean:
        return ["none"]
    return [preset.corruptions[variant.corruption].operation, variant_parameter(preset, variant)]


def _variant_file(root: Path, digest: str, variant_key: str) -> Path:
    name = hashlib.sha256(variant_key.encode("utf-8")).hexdigest()[:32]
    return Path(root) / INDEX_DIR / digest / f"{name}.json"


def write_index(root: Path, digest: str, variants: dict[str, dict]) -> None:
    """Record ``variants`` (key → {"value": ..., "entries": [entry digests]}) in ``root``'s index."""
    from robustpath.util.atomic import write_json_atomic

    for key, record in variants.items():
        try:
            write_json_atomic(_variant_file(root, digest, key), {"variant": key, **record})
        except Exception:  # an index is a convenience for dry runs; a run never fails for it
            return


def count_embedded(root: Path, digest: str, planned: dict[str, list], entry_path) -> set[str]:
    """The planned variant keys whose recorded entries all exist under ``root``.

    ``planned``: variant key → variant_value(); ``entry_path(root, entry digest)`` → Path.
    """
    found = set()
    for key, value in planned.items():
        record = _read(_variant_file(root, digest, key))
        same_value = record.get("value") == json.loads(json.dumps(value, default=str))
        if (record.get("variant") == key and same_value and record.get("entries")
                and all(entry_path(Path(root), entry).is_file() for entry in record["entries"])):
            found.add(key)
    return found


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_lookup(spec, content_sha256: str, device, precision: str, compiled: bool, corrupt_training: bool) -> str:
    """The lookup handle's digest for one run of ``spec`` (the same in ``eval`` and ``eval --dry-run``)."""
    from robustpath.embedding.cache import embedding_versions
    from robustpath.models.registry import resolved_pooling

    return lookup_digest(
        model=model_handle(spec.model), pooling=resolved_pooling(spec.model, spec.pooling), dataset=content_sha256,
        seed=int(spec.seed),
        device=device.type, batch_size=int(spec.batch_size),
        precision=precision, compiled=bool(compiled), corrupt_training=bool(corrupt_training),
        versions=embedding_versions(),
    )


def record_run(roots, digest: str, preset, variants, entry_digests: dict[str, list[str]]) -> None:
    """Index the entries of the clean set and of ``variants`` in every store root of a run."""
    from robustpath.variants import CLEAN_VARIANT

    recorded = {
        variant.key: {"value": variant_value(preset, variant), "entries": entry_digests[variant.key]}
        for variant in [CLEAN_VARIANT, *variants] if entry_digests.get(variant.key)
    }
    for root in roots:
        write_index(root, digest, recorded)


def embedded_variants(roots: dict[str, Path], digest: str, preset, variants) -> dict[str, set[str]]:
    """Store name ("run folder", "cache") → the variant keys (clean included) found complete there."""
    from robustpath.embedding.cache import entry_path
    from robustpath.variants import CLEAN_VARIANT

    planned = {variant.key: variant_value(preset, variant) for variant in [CLEAN_VARIANT, *variants]}
    return {name: count_embedded(root, digest, planned, entry_path) for name, root in roots.items()}
