"""corruptions: batched, device-agnostic image corruptions in torch, with severity presets.

Images are float tensors (B, 3, H, W) in [0, 1] on any device; every corruption
returns the same shape, dtype, device and range. Severity 0 is the clean image,
severities 1..N read a parameter table from a preset TOML file (default
"pathology"). Random corruptions draw only from the generators they are given.
This package never imports robustpath.

Example::

    import torch
    from corruptions import get_corruption, list_corruptions, sample_generators

    images = torch.rand(4, 3, 40, 40)                  # (B, 3, H, W) in [0, 1]
    ids = ["a", "b", "c", "d"]                         # stable sample ids
    for name in list_corruptions():                    # default preset "pathology"
        corr = get_corruption(name)
        for severity in range(corr.max_severity + 1):  # 0 = clean
            generators = sample_generators(0, ids, name, severity)
            out = corr(images, severity, generator=generators)
            print(name, severity, corr.parameter(severity), corr.unit, out.shape)
"""
from __future__ import annotations

from corruptions.errors import CorruptionError
from corruptions.registry import Operation, get_operation, list_operations, register_operation
from corruptions.randomness import sample_generators
from corruptions.preset import Preset, PresetEntry, list_presets, load_preset
from corruptions.corruption import Corruption, get_corruption, list_corruptions

# Built-in operations register themselves on import.
from corruptions import blur, markup, photometric, resolution  # noqa: E402,F401  (registration)

__all__ = [
    "Corruption",
    "CorruptionError",
    "Operation",
    "Preset",
    "PresetEntry",
    "get_corruption",
    "get_operation",
    "list_corruptions",
    "list_operations",
    "list_presets",
    "load_preset",
    "register_operation",
    "sample_generators",
]
