"""CSV manifests: columns path,label[,split][,mpp][,group[,pair_id]]; paths relative to the CSV's folder.

``group`` names the centre, scanner or staining protocol of each image and
``pair_id`` the piece of tissue an image shows in several groups (rules in
robustpath.data.groups).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import numpy as np

from robustpath.data.dataset import Dataset, build_file_dataset
from robustpath.errors import DataError

REQUIRED = ("path", "label")
SPLITS = ("train", "test")


def _read_rows(manifest: Path) -> tuple[list[str], list[dict]]:
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"manifest '{manifest}' does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"manifest '{manifest}' is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from None
    except OSError as exc:
        raise DataError(f"cannot read manifest '{manifest}': {exc.strerror or exc}") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    except csv.Error as exc:
        raise DataError(f"manifest '{manifest}' is not valid CSV: {exc}") from None
    return fields, rows


def load_manifest(manifest: Path, *, test_fraction: float = 0.3, seed: int = 0, on_bad_image: str = "skip") -> Dataset:
    """The dataset a CSV manifest lists (see the module docstring); DataError naming the line on bad input."""
    manifest = Path(manifest)
    fields, rows = _read_rows(manifest)
    _check_header(manifest, fields, rows)
    base = manifest.resolve().parent
    paths, labels = _resolve_rows(manifest, base, rows)
    split_array = _read_splits(manifest, fields, rows)
    groups, pair_ids = _group_columns(manifest, fields, rows)
    dataset = build_file_dataset(
        manifest.stem, base, paths, labels, split_array,
        where=f"manifest '{manifest}'", test_fraction=test_fraction, seed=seed, on_bad_image=on_bad_image,
        groups=groups, pair_ids=pair_ids,
    )
    mpp = _read_mpp(manifest, fields, rows)
    return dataclasses.replace(dataset, mpp=mpp) if mpp is not None else dataset


def _check_header(manifest: Path, fields: list[str], rows: list[dict]) -> None:
    if not fields:
        raise DataError(f"manifest '{manifest}' is empty; expected a header path,label[,split] and one row per image")
    missing = [c for c in REQUIRED if c not in fields]
    if missing:
        raise DataError(f"manifest '{manifest}' lacks column(s) {missing}; found {fields}, expected path,label[,split]")
    if not rows:
        raise DataError(f"manifest '{manifest}' has a header but no rows")


def _resolve_rows(manifest: Path, base: Path, rows: list[dict]) -> tuple[list[str], list[str]]:
    """(absolute image paths, labels) of the rows; each path once, every file present."""
    paths, labels, seen, absent = [], [], {}, []
    for line, row in enumerate(rows, start=2):
        if not row["path"] or not row["label"]:
            raise DataError(f"manifest '{manifest}' line {line}: empty path or label")
        path = Path(row["path"]).expanduser()
        resolved = str((path if path.is_absolute() else base / path).resolve())
        if resolved in seen:
            raise DataError(f"manifest '{manifest}' line {line}: '{row['path']}' repeats line {seen[resolved]}")
        seen[resolved] = line
        if not Path(resolved).is_file():
            absent.append(row["path"])
        paths.append(resolved)
        labels.append(row["label"])
    if absent:
        shown = ", ".join(f"'{p}'" for p in absent[:3])
        raise DataError(f"manifest '{manifest}': {len(absent)} listed file(s) not found, e.g. {shown}")
    return paths, labels


def _read_splits(manifest: Path, fields: list[str], rows: list[dict]) -> np.ndarray | None:
    """The optional ``split`` column (train / test, both present), None when absent or empty."""
    if "split" not in fields or not any(row["split"] for row in rows):
        return None
    splits = [row["split"].lower() for row in rows]
    bad = next((s for s in splits if s not in SPLITS), None)
    if bad is not None:
        raise DataError(f"manifest '{manifest}': split '{bad}' is not train or test")
    for split in SPLITS:
        if split not in splits:
            raise DataError(f"manifest '{manifest}' has no '{split}' rows")
    return np.array(splits)


def _read_mpp(manifest: Path, fields: list[str], rows: list[dict]) -> tuple[float, float] | None:
    """The optional ``mpp`` column (microns per pixel, every row a positive number) as (smallest, largest)."""
    if "mpp" not in fields:
        return None
    values = []
    for line, row in enumerate(rows, start=2):
        try:
            value = float(row["mpp"])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise DataError(f"manifest '{manifest}' line {line}: mpp '{row['mpp']}' is not a positive number of "
                            "microns per pixel (e.g. 0.25 for a 40x scan)")
        values.append(value)
    return min(values), max(values)


def _group_columns(manifest: Path, fields: list[str], rows: list[dict]) -> tuple[list[str] | None, list[str] | None]:
    """The optional group and pair_id columns (None when absent); a pair_id column needs a group column."""
    if "pair_id" in fields and "group" not in fields:
        raise DataError(f"manifest '{manifest}' has a pair_id column but no group column; a pair links images of different groups")
    if "group" not in fields:
        return None, None
    for line, row in enumerate(rows, start=2):
        if not row["group"]:
            raise DataError(f"manifest '{manifest}' line {line}: empty group (every row needs one when the column is there)")
    groups = [row["group"] for row in rows]
    pair_ids = [row["pair_id"] for row in rows] if "pair_id" in fields else None
    return groups, pair_ids
