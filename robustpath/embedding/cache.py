"""Embedding stores on disk: the cache shared by runs, and the run-local store a resumed run reads.

An entry holds the embeddings of one pipeline (the clean images, or one corruption at
one severity and stage) for one ordered chunk of samples: a float32 (n, D) array in a
safetensors file named by the SHA-256 of its key.  The key (also stored inside the
file and checked on every read) records everything that changes those numbers:

- the model: weights digest, architecture facts and pooling (``model_identity``),
  its preprocessing (size, resize, crop, mean, std) and the images' native size;
- the samples: the SHA-256 of each image's bytes, in order (and the sample ids for
  random corruptions, whose strokes are seeded by id);
- the pipeline: corruption name, operation, the preset value of that severity,
  severity, stage (``any`` when resizing is a no-op, so pre = post); the run seed for
  random corruptions only;
- the software: versions of robustpath, torch, pillow and the model libraries, plus a
  digest of the source of the code between the pixels and the embedding (so an edited
  editable install does not serve stale entries), the device type, the precision
  (fp32, or the CUDA autocast dtype) and whether torch.compile was used;
- the forward passes: the batch size, where the entry's first image sat in its forward
  pass and the size of the sweep's last, shorter pass when the entry reaches into it.
  Matrix products round the last bits of a row differently for other pass sizes and
  other places in a pass (measured on CPU for passes under 8 images), so an entry is
  reused only where the current run would have computed the very same bits.

Every stored entry is verified before use: the SHA-256 of its payload bytes is stored
in the file and recomputed on every read, and an entry with a non-finite value is
refused (and never written).  An entry that fails either check, or whose key does not
match, is a miss: it is computed again and replaced, and the run says so in a note.
The digest finds damaged entries, not forged ones: share a cache only with people
whose files you would trust.

Files are written atomically (a temporary file, then a rename), so concurrent runs
and killed runs never leave half-written entries; safetensors never unpickles.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from robustpath.errors import OutputError

CACHE_ENV = "ROBUSTPATH_CACHE_DIR"
FORMAT_VERSION = 2  # 2: a payload digest in every entry, the forward-pass layout in the key
ENTRIES_DIR = f"embeddings-v{FORMAT_VERSION}"
ENTRIES_GLOB = "embeddings-v*"  # every format's folder, for `robustpath cache` (older ones are never read)
ENTRY_SUFFIX = ".safetensors"
TENSOR_NAME = "embeddings"
KEY_METADATA = "robustpath_key"
DIGEST_METADATA = "robustpath_sha256"
KEY_PACKAGES = ("robustpath", "torch", "pillow", "numpy", "open_clip_torch", "transformers", "timm")
_VOLATILE_MODEL_FACTS = ("path", "spec", "preprocessing_notes", "pooling_source")


def default_cache_dir() -> Path:
    """$ROBUSTPATH_CACHE_DIR, else $XDG_CACHE_HOME/robustpath, else ~/.cache/robustpath."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "robustpath"


def entry_path(root: Path, digest: str) -> Path:
    """Where a store rooted at ``root`` keeps the entry whose key has ``digest`` (key_digest)."""
    return Path(root) / ENTRIES_DIR / digest[:2] / f"{digest}{ENTRY_SUFFIX}"


def resolve_cache_dir(path: str | Path | None = None) -> Path:
    return Path(path).expanduser() if path is not None else default_cache_dir()


def canonical_json(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def key_digest(key: dict) -> str:
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()


class EmbeddingStore:
    """A folder of entries: ``get(key)`` → (n, D) float32 or None; ``put(key, array)``.

    ``strict`` stores raise OutputError when an entry cannot be written (the run-local
    store: resuming depends on it); other stores (the shared cache) turn themselves off
    after the first failure and report it in ``problem``.
    """

    def __init__(self, root: Path, *, strict: bool = False) -> None:
        self.root = Path(root)
        self.strict = strict
        self.problem: str | None = None
        self.rejected: list[tuple[Path, str]] = []  # entries that failed verification: (path, why)
        self.hits = 0
        self.writes = 0

    @property
    def entries_dir(self) -> Path:
        return self.root / ENTRIES_DIR

    def path_for(self, key: dict) -> Path:
        return entry_path(self.root, key_digest(key))

    def get(self, key: dict, rows: int | None = None) -> np.ndarray | None:
        """The entry's array when present, made for exactly this key (and row count) and verified.

        An entry that exists but fails verification is a miss, listed in ``rejected``.
        """
        if self.problem is not None:
            return None
        path = self.path_for(key)
        array, reason = read_entry(path, canonical_json(key))
        if array is not None and rows is not None and array.shape[0] != rows:
            array, reason = None, f"{array.shape[0]} rows instead of {rows}"
        if array is None:
            if reason is not None:
                self.rejected.append((path, reason))
            return None
        self.hits += 1
        return array

    def put(self, key: dict, array: np.ndarray, *, link_from: Path | None = None) -> Path | None:
        """Write (or hard-link from ``link_from``, an entry of the same key) atomically.

        Arrays with a non-finite value are never stored (None is returned).
        """
        if self.problem is not None or not np.isfinite(array).all():
            return None
        path = self.path_for(key)
        try:
            if link_from is None or not _link_atomic(link_from, path):
                from robustpath.util.atomic import write_bytes_atomic

                write_bytes_atomic(path, entry_bytes(key, array))
        except (OSError, OutputError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            if self.strict:
                raise (exc if isinstance(exc, OutputError) else OutputError(f"cannot write '{path}': {reason}")) from None
            self.problem = f"embedding cache disabled: cannot write to '{self.root}': {reason}"
            return None
        self.writes += 1
        return path


class StoreChain:
    """Stores read in order (run-local first, then the cache) and written together."""

    def __init__(self, stores: Iterable[EmbeddingStore]) -> None:
        self.stores = [s for s in stores if s is not None]

    def get(self, key: dict, rows: int | None = None) -> tuple[np.ndarray | None, EmbeddingStore | None]:
        for index, store in enumerate(self.stores):
            array = store.get(key, rows)
            if array is not None:
                for other in self.stores[:index]:  # e.g. copy a cache hit into the run-local store
                    other.put(key, array, link_from=store.path_for(key))
                return array, store
        return None, None

    def put(self, key: dict, array: np.ndarray) -> None:
        written: Path | None = None
        for store in self.stores:
            path = store.put(key, array, link_from=written)
            written = written or path

    def problems(self) -> list[str]:
        """Notices for the run: stores turned off, and stored entries that failed verification."""
        problems = [s.problem for s in self.stores if s.problem]
        rejected = [entry for store in self.stores for entry in store.rejected]
        if rejected:
            (first, why), more = rejected[0], len(rejected) - 1
            problems.append(
                f"{len(rejected)} stored embedding entr{'y' if len(rejected) == 1 else 'ies'} failed verification "
                f"and {'was' if len(rejected) == 1 else 'were'} computed again and replaced: '{first}' ({why})"
                + (f" and {more} more" if more else "")
            )
        return problems


def payload_digest(array: np.ndarray) -> str:
    """SHA-256 of a float32 array's bytes (C order, little-endian as stored)."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<f4").tobytes()).hexdigest()


def entry_bytes(key: dict, array: np.ndarray) -> bytes:
    from safetensors.numpy import save

    data = np.ascontiguousarray(array, dtype=np.float32)
    metadata = {KEY_METADATA: canonical_json(key), DIGEST_METADATA: payload_digest(data)}
    return save({TENSOR_NAME: data}, metadata=metadata)


def read_entry(path: Path, expected_key: str) -> tuple[np.ndarray | None, str | None]:
    """(array, None) for a verified entry; (None, None) when there is none; (None, why) when it fails a check.

    Checks: a readable safetensors file, made for ``expected_key``, a float32 (n, D)
    payload whose SHA-256 matches the digest stored with it, every value finite.
    """
    from safetensors import safe_open

    if not Path(path).is_file():
        return None, None
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            array = handle.get_tensor(TENSOR_NAME)
    except Exception:  # noqa: BLE001 - truncated, not safetensors, no such tensor: never a crash
        return None, "unreadable"
    if metadata.get(KEY_METADATA) != expected_key:
        return None, "made for another key"
    if array.dtype != np.float32 or array.ndim != 2:
        return None, f"a {array.dtype} array of {array.ndim} dimensions"
    if metadata.get(DIGEST_METADATA) != payload_digest(array):
        return None, "content digest mismatch" if DIGEST_METADATA in metadata else "no content digest"
    if not np.isfinite(array).all():
        return None, "non-finite values"
    return array, None


def _link_atomic(source: Path, path: Path) -> bool:
    """Hard-link ``source`` to ``path`` (same file system) via a temporary name; False if impossible."""
    import uuid

    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.link"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, tmp)
        os.replace(tmp, path)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False


@dataclass(frozen=True)
class CacheInfo:
    """Where the cache is, how many entries it holds and their size in bytes."""

    path: Path
    entries: int
    bytes: int

    def describe(self) -> str:
        return f"{self.entries} embedding entries, {self.bytes / 1e6:.1f} MB in {self.path}"


def _entry_files(root: Path) -> list[Path]:
    """Entries of every format version (older formats are never read, but count and are cleared)."""
    return sorted(Path(root).glob(f"{ENTRIES_GLOB}/*/*{ENTRY_SUFFIX}"))


def cache_info(cache_dir: str | Path | None = None) -> CacheInfo:
    """Size of the embedding cache (default: ``default_cache_dir()``)."""
    root = resolve_cache_dir(cache_dir)
    files = _entry_files(root)
    size = 0
    for path in files:
        try:
            size += path.stat().st_size
        except OSError:
            pass
    return CacheInfo(path=root, entries=len(files), bytes=size)


def clear_cache(cache_dir: str | Path | None = None) -> CacheInfo:
    """Delete every embedding entry of the cache; returns what was removed."""
    info = cache_info(cache_dir)
    for path in _entry_files(info.path):
        path.unlink(missing_ok=True)
    return info


# ---- what goes into a key -------------------------------------------------------------


def model_identity(description: dict) -> dict:
    """``Encoder.describe()`` without facts that do not change embeddings (paths, spec text).

    When no weights digest is known, the description is kept whole (paths included).
    """
    if not (description.get("weights_sha256") or isinstance(description.get("weights"), dict)):
        return dict(description)
    identity = {k: v for k, v in description.items() if k not in _VOLATILE_MODEL_FACTS}
    if isinstance(identity.get("weights"), str):
        del identity["weights"]
    return identity


def embedding_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["code"] = code_digest()
    return versions


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 over the source of the project modules that make embeddings (robustpath.embedding.code_digest)."""
    from robustpath.embedding.code_digest import compute_code_digest

    return compute_code_digest()


def sample_digests(dataset) -> list[bytes]:
    """SHA-256 (32 bytes) of each sample's image bytes, in dataset order (taken when the files were loaded)."""
    known = getattr(dataset, "file_digests", None)
    if known is not None:
        return list(known)
    return [hashlib.sha256(dataset.reader.digest_bytes(i)).digest() for i in range(len(dataset))]


def dataset_content_digest(dataset, digests: Sequence[bytes]) -> str:
    """Equals ``dataset.content_digest()``, computed from ``sample_digests`` (read once)."""
    digest = hashlib.sha256()
    for index, sample_id in enumerate(dataset.sample_ids):
        digest.update(f"{sample_id}\0{dataset.classes[dataset.labels[index]]}\0{dataset.splits[index]}\0".encode())
        if getattr(dataset, "groups", None) is not None:  # groups and pairs change the results, not the images
            digest.update(dataset.group_digest_text(index).encode())
        digest.update(digests[index])
    return digest.hexdigest()


@dataclass(frozen=True)
class EmbeddingKeys:
    """The facts of a run that every key shares; ``key()`` adds the pipeline and the samples."""

    model: dict
    preprocessing: dict
    native_size: tuple[int, int]
    digests: Sequence[bytes]
    sample_ids: Sequence[str]
    seed: int
    versions: dict
    device: str
    precision: str
    compiled: bool

    def key(self, pipeline: dict, indices: np.ndarray, *, random: bool, passes: dict) -> dict:
        """``pipeline``: corruption, operation, parameter, severity, stage (or just corruption 'none');
        ``passes``: the forward passes the samples go through (``forward_pass_layout``)."""
        samples = hashlib.sha256()
        for index in indices.tolist():
            samples.update(self.digests[index])
            if random:
                samples.update(self.sample_ids[index].encode("utf-8") + b"\0")
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "preprocessing": self.preprocessing,
            "native_size": list(self.native_size),
            "pipeline": pipeline,
            "seed": int(self.seed) if random else None,
            "samples": samples.hexdigest(),
            "count": int(len(indices)),
            "versions": self.versions,
            "device": self.device,
            "precision": self.precision,
            "compiled": bool(self.compiled),
            "passes": passes,
        }


def forward_pass_layout(start: int, count: int, batch_size: int, total: int) -> dict:
    """Where the items ``start``..``start + count - 1`` of a sweep of ``total`` items sit in its
    forward passes of ``batch_size`` (the last pass holds the rest): the batch size, the place
    of the first item in its pass and, when they reach into it, the size of a shorter last pass."""
    last_start = ((total - 1) // batch_size) * batch_size if total else 0
    last_size = total - last_start
    reaches_last = start + count > last_start and last_size < batch_size
    return {"batch_size": int(batch_size), "offset": int(start % batch_size),
            "last_pass": int(last_size) if reaches_last else None}
