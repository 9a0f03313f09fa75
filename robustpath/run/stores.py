"""Where a run's embeddings are read and written: the --out folder's store and the shared cache.

``open_stores`` digests the dataset, gives the run its id (robustpath.run.record.make_run_id),
starts (or resumes) the --out folder and chains its store with the shared cache unless
``no_cache``.  Only rank 0 of a torchrun launch has stores.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from robustpath.embedding.cache import (
    EmbeddingKeys, EmbeddingStore, StoreChain, dataset_content_digest, embedding_versions, model_identity,
    resolve_cache_dir, sample_digests,
)
from robustpath.embedding.cache_index import record_run, run_lookup
from robustpath.embedding.engine import precision_name
from robustpath.run.prepare import ExecutionOptions, PreparedRun
from robustpath.run.record import run_id_of, start_record
from robustpath.util.fault_points import fault_point
from robustpath.util.progress import notify


@dataclass
class RunStores:
    """The run's id and start time, and the embedding stores it reads and writes."""

    run_id: str
    started: str  # ISO time of the first session of this run (a resumed run keeps it)
    content_sha256: str | None  # of the dataset's images, None off rank 0
    stores: list = field(default_factory=list)  # EmbeddingStore-like, --out folder first
    store: object = None  # robustpath.embedding.cache.StoreChain over ``stores``, None without stores
    keys: object = None  # robustpath.embedding.cache.EmbeddingKeys, None without stores
    cache_dir: Path | None = None


def open_stores(run: PreparedRun, session_started: datetime) -> RunStores:
    """Digest the data, name the run, start its --out folder (a resume says so) and open the cache."""
    digests = sample_digests(run.dataset) if run.main else None
    content_sha256 = dataset_content_digest(run.dataset, digests) if run.main else None
    run_id = run_id_of(run, content_sha256)
    started = session_started.isoformat(timespec="seconds")
    stores = []
    folder = run.folder
    if folder is not None:
        folder.start(run_id=run_id, started=started, record=start_record(run, started, content_sha256))
        run_id, started = folder.run_id, folder.started
        fault_point("run-started")
        stores.append(folder.store())
        if folder.resumed:
            notify(run.progress, f"resuming the unfinished run in '{folder.path}' (run {run_id})")
    cache_dir = None
    if not run.options.no_cache and run.main:
        cache_dir = resolve_cache_dir(run.options.cache_dir)
        stores.append(EmbeddingStore(cache_dir))
    store, keys = _stores_and_keys(stores, run.encoder, run.model_facts, run.dataset, digests, run.spec.seed,
                                   run.device, run.options)
    return RunStores(run_id=run_id, started=started, content_sha256=content_sha256, stores=stores, store=store,
                     keys=keys, cache_dir=cache_dir)


def index_recorder(run: PreparedRun, stores: RunStores):
    """on_plan for compute_embeddings: index the run's entries in its stores, so that
    ``eval --dry-run`` can count what is embedded (robustpath.embedding.cache_index), even mid-run."""
    if not stores.stores:
        return None
    spec, device, options = run.spec, run.device, run.options

    def record(entry_digests: dict[str, list[str]]) -> None:
        lookup = run_lookup(spec, stores.content_sha256, device, precision_name(device, options.amp), options.compile,
                            run.corrupt_training)
        record_run([store.root for store in stores.stores], lookup, run.preset, run.variants, entry_digests)

    return record


def _stores_and_keys(stores, encoder, model_facts, dataset, digests, seed, device, options: ExecutionOptions):
    """A StoreChain over ``stores`` and the EmbeddingKeys of this run (None, None without stores)."""
    if not stores:
        return None, None
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
