"""CSV manifests: columns path,label[,split]; paths relative to the CSV's folder."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from robustpath.data.dataset import Dataset, build_file_dataset, check_class_sizes
from robustpath.data.split import stratified_split
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
        reader = csv.DictReader(text.splitlines())
        fields = [f.strip() for f in (reader.fieldnames or [])]
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except csv.Error as exc:
        raise DataError(f"manifest '{manifest}' is not valid CSV: {exc}") from None
    return fields, rows


def load_manifest(manifest: Path, *, test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    manifest = Path(manifest)
    fields, rows = _read_rows(manifest)
    missing = [c for c in REQUIRED if c not in fields]
    if missing:
        raise DataError(f"manifest '{manifest}' lacks column(s) {missing}; found {fields}, expected path,label[,split]")
    if not rows:
        raise DataError(f"manifest '{manifest}' has a header but no rows")
    base = manifest.resolve().parent
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
    check_class_sizes(labels, f"manifest '{manifest}'")
    if len(set(labels)) < 2:
        raise DataError(f"manifest '{manifest}' has one class ('{labels[0]}'); at least 2 are needed")
    if "split" in fields and any(row["split"] for row in rows):
        splits = [row["split"].lower() for row in rows]
        bad = next((s for s in splits if s not in SPLITS), None)
        if bad is not None:
            raise DataError(f"manifest '{manifest}': split '{bad}' is not train or test")
        split_array = np.array(splits)
        for split in SPLITS:
            if split not in splits:
                raise DataError(f"manifest '{manifest}' has no '{split}' rows")
    else:
        classes = sorted(set(labels))
        split_array = stratified_split(np.array([classes.index(c) for c in labels]), test_fraction, seed)
    return build_file_dataset(manifest.stem, base, paths, labels, split_array)
