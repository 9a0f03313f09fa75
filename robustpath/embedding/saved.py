"""The embeddings of a run as open files (``--save-embeddings``), and their reader.

Layout of ``OUT/embeddings/``::

    manifest.json              dtype, dim, classes, variant key → file, rows per file
    samples.csv                sample_id, path, label, label_index, split (every sample, dataset order)
    clean.safetensors          embeddings (N, D) of every sample, rows in samples.csv order
    <corruption>_<severity>_<stage>.safetensors
                               embeddings (N_test, D) of the test samples under that variant
                               (every sample with --gallery corrupted), in samples.csv order
    text.safetensors           zero-shot class embeddings (K, D), rows in manifest "classes"
                               order (vision-language models only)

Each image file holds two tensors: ``embeddings`` (float32, or float16 with
``--embeddings-dtype float16``) and ``sample_index`` (int64 rows of samples.csv).
The folder is assembled under ``OUT/.embeddings.tmp`` (one atomic write per file)
and then moved into place, so ``OUT/embeddings`` is never half written.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robustpath.errors import DataError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch

    from robustpath.output.exports import RunExports

EMBEDDINGS_DIR = "embeddings"  # OUT/embeddings/, the folder this module writes and reads
MANIFEST_FILE = "manifest.json"
SAMPLES_FILE = "samples.csv"
TEXT_FILE = "text.safetensors"
CLEAN_KEY = "none/0/none"
FORMAT_VERSION = 1


def variant_file_name(variant) -> str:
    """'clean.safetensors', or e.g. 'gaussian_blur_2_pre.safetensors'."""
    if variant.is_clean:
        return "clean.safetensors"
    return f"{variant.corruption}_{variant.severity}_{variant.stage}.safetensors"


def _tensor_file(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """safetensors bytes; ``metadata`` has one key, so the header (and the file) is byte-for-byte reproducible."""
    from safetensors.numpy import save

    return save({name: np.ascontiguousarray(array) for name, array in arrays.items()}, metadata=metadata)


def write_embeddings(exports: "RunExports", folder: Path) -> Path:
    """Write the clean, per-variant and text embeddings of ``exports`` to ``folder`` (see module docstring)."""
    from robustpath.util.atomic import ensure_writable_dir, write_bytes_atomic, write_json_atomic, write_text_atomic

    folder = Path(folder)
    embeddings = exports.embeddings
    dtype = np.dtype(exports.embeddings_dtype)
    staging = folder.parent / f".{folder.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    ensure_writable_dir(staging)
    samples = exports.samples
    write_text_atomic(staging / SAMPLES_FILE, samples.frame().to_csv(index=False))
    files = {}
    for variant in exports.variants:
        rows, array = _variant_rows(exports, variant.key)
        name = variant_file_name(variant)
        write_bytes_atomic(staging / name, _tensor_file(
            {"embeddings": array.astype(dtype), "sample_index": rows.astype(np.int64)},
            {"variant": variant.key},
        ))
        files[variant.key] = {"file": name, "rows": int(len(rows)), "corruption": variant.corruption,
                              "severity": variant.severity, "stage": variant.stage}
    text = None
    if exports.text_embeddings is not None:
        write_bytes_atomic(staging / TEXT_FILE, _tensor_file(
            {"embeddings": np.asarray(exports.text_embeddings).astype(dtype)}, {"classes": ";".join(samples.classes)},
        ))
        text = {"file": TEXT_FILE, "rows": int(len(exports.text_embeddings)),
                "normalised": "rows L2-normalised (prompt ensembles)"}
    write_json_atomic(staging / MANIFEST_FILE, {
        "format_version": FORMAT_VERSION,
        "dtype": dtype.name,
        "dim": int(embeddings.clean.shape[1]),
        "samples": SAMPLES_FILE,
        "order": "rows of every image file follow its sample_index tensor (rows of samples.csv, ascending)",
        "classes": list(samples.classes),
        "variants": files,
        "text": text,
    })
    _move_into_place(staging, folder)
    return folder


def _variant_rows(exports: "RunExports", key: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows of samples.csv, (rows, D) float32 embeddings) of one variant, in dataset order."""
    embeddings = exports.embeddings
    if key == CLEAN_KEY:
        return np.arange(len(embeddings.clean)), embeddings.clean
    rows, array = np.asarray(exports.test_indices), embeddings.variants[key]
    if key in embeddings.train_variants:  # --gallery corrupted: the training split was corrupted too
        rows = np.concatenate([rows, np.asarray(exports.train_indices)])
        array = np.concatenate([array, embeddings.train_variants[key]])
    order = np.argsort(rows, kind="stable")
    return rows[order], array[order]


def _move_into_place(staging: Path, folder: Path) -> None:
    """Replace ``folder`` with ``staging`` by renames (the old folder is removed afterwards)."""
    old = folder.parent / f".{folder.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class RunEmbeddings:
    """The exported embeddings of one run folder (``robustpath.load_embeddings``).

    ``samples``: every sample (sample_id, path, label, label_index, split);
    ``run[key]`` → (embeddings tensor (n, D) in the stored dtype, the n samples'
    rows of ``samples`` in the same order); key is a variant key such as
    "gaussian_blur/2/pre" (as in results.csv: corruption/severity/stage) or
    "clean"; ``text``: (K, D) class embeddings for zero-shot, else None.
    """

    folder: Path
    manifest: dict
    samples: "pd.DataFrame"

    @property
    def variants(self) -> list[str]:
        return list(self.manifest["variants"])

    @property
    def dtype(self) -> str:
        return self.manifest["dtype"]

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    def __getitem__(self, key: str) -> tuple["torch.Tensor", "pd.DataFrame"]:
        key = CLEAN_KEY if key == "clean" else key
        if key not in self.manifest["variants"]:
            raise UsageError(f"no embeddings for variant '{key}' in '{self.folder}'; saved: {', '.join(self.variants)}")
        tensors = _read_tensors(self.folder / self.manifest["variants"][key]["file"])
        rows = tensors["sample_index"].numpy()
        return tensors["embeddings"], self.samples.iloc[rows].reset_index(drop=True)

    @property
    def text(self) -> "torch.Tensor | None":
        if not self.manifest.get("text"):
            return None
        return _read_tensors(self.folder / self.manifest["text"]["file"])["embeddings"]


def _read_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - OSError, or safetensors' own SafetensorError
        raise DataError(f"cannot read '{path}': {exc}") from None


def load_embeddings(run_dir: str | Path) -> RunEmbeddings:
    """Open ``RUN_DIR/embeddings`` (or that folder itself) written by ``robustpath eval --save-embeddings``."""
    import pandas as pd

    folder = Path(run_dir)
    if not (folder / MANIFEST_FILE).is_file():
        folder = folder / EMBEDDINGS_DIR
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise DataError(f"'{run_dir}' has no {EMBEDDINGS_DIR}/{MANIFEST_FILE}: run `robustpath eval --save-embeddings`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        samples = pd.read_csv(folder / manifest["samples"], dtype={"sample_id": str, "path": str, "label": str, "split": str},
                              keep_default_na=False)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read the embeddings in '{folder}': {exc}") from None
    return RunEmbeddings(folder=folder, manifest=manifest, samples=samples)
