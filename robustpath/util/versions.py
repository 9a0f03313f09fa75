"""Versions of the packages that change results, for run.json."""
from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = (
    "robustpath", "torch", "torchvision", "numpy", "scikit-learn", "scikit-image",
    "pandas", "open_clip_torch", "transformers", "safetensors", "pillow",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
