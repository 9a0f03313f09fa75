"""Datasets: the built-in demo, image folders and CSV manifests."""
from __future__ import annotations

from pathlib import Path

from robustpath.data.dataset import Dataset
from robustpath.data.split import stratified_split
from robustpath.errors import DataError, UsageError, closest_name

BUILTIN_DATASETS = ("demo-ihc",)


def list_builtin_datasets() -> list[str]:
    return list(BUILTIN_DATASETS)


def load_dataset(spec: str, *, test_fraction: float = 0.3, seed: int = 0, on_bad_image: str = "skip") -> Dataset:
    """'demo-ihc' (its split is fixed), an image folder, or a .csv manifest → Dataset.

    Every file is decoded once up front; ``on_bad_image`` "skip" leaves
    undecodable files out (listed in ``Dataset.skipped``), "fail" stops at the first.
    """
    if not 0.0 < test_fraction < 1.0:
        raise UsageError(f"test fraction must be between 0 and 1, got {test_fraction}")
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    if spec == "demo-ihc":
        from robustpath.data.demo import load_demo_dataset

        return load_demo_dataset()
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".csv":
        from robustpath.data.manifest import load_manifest

        return load_manifest(path, test_fraction=test_fraction, seed=seed, on_bad_image=on_bad_image)
    if path.is_dir():
        from robustpath.data.folder import load_image_folder

        return load_image_folder(path, test_fraction=test_fraction, seed=seed, on_bad_image=on_bad_image)
    if path.exists():
        raise DataError(f"--data '{spec}' is a file but not a .csv manifest")
    close = closest_name(spec, BUILTIN_DATASETS)
    hint = f" Did you mean '{close}'?" if close else ""
    raise DataError(
        f"--data '{spec}' not found.{hint} Expected 'demo-ihc', an image folder ROOT/<class>/… or a CSV manifest"
    )


__all__ = ["Dataset", "list_builtin_datasets", "load_dataset", "stratified_split"]
