"""corruptions: batched, device-agnostic image corruptions in torch, with severity presets.

Images are float tensors (B, 3, H, W) in [0, 1] on any device; every corruption
returns the same shape, dtype, device and range. Severity 0 is the clean image,
severities 1..N read a parameter table from a preset TOML file (default
"pathology"). Random corruptions draw only from the generators they are given.
This package never imports robustpath.

Built-in presets (``list_presets()``): "pathology" (default), "small-patch" (spatial
values for 40 px patches), "imagenet-c" (ImageNet-C's own values for the five
operations computed the same way; "imagenet_c" also works), "imagecorruptions"
(all 19 ImageNet-C corruptions of the optional imagecorruptions package, via
:mod:`corruptions.imagenet_c_compat`) and "slide-artefacts" (stain, JPEG, focus and
physical slide artefacts: :mod:`corruptions.stain`, :mod:`corruptions.jpeg`,
:mod:`corruptions.defocus`, :mod:`corruptions.artefacts`). Spatial parameters are in
pixels of the image a corruption acts on; :func:`native_equivalent` restates them in
pixels of the native image for a corruption applied after a resize.

Seed random corruptions with ``corr.sample_generators(seed, sample_ids, severity)``:
one generator per sample, seeded by (seed, sample id, corruption, severity), or for
nested corruptions (``corr.nested``: severity s + 1 keeps severity s's artefacts)
without the severity.

Example::

    import torch
    from corruptions import get_corruption, list_corruptions

    images = torch.rand(4, 3, 40, 40)                  # (B, 3, H, W) in [0, 1]
    ids = ["a", "b", "c", "d"]                         # stable sample ids
    for name in list_corruptions():                    # default preset "pathology"
        corr = get_corruption(name)
        for severity in range(corr.max_severity + 1):  # 0 = clean
            generators = corr.sample_generators(0, ids, severity)  # None if not random
            out = corr(images, severity, generator=generators)
            print(name, severity, corr.parameter(severity), corr.unit, out.shape)
"""
from __future__ import annotations

# Built-in operations register themselves on import; imagenet_c_compat registers the
# imagecorruptions.* operations without importing the optional package.
from corruptions import blur, imagenet_c_compat, markup, photometric, resolution  # noqa: F401  (registration)
from corruptions import artefacts, defocus, jpeg, stain  # noqa: F401  (registration)
from corruptions.corruption import Corruption, get_corruption, list_corruptions
from corruptions.errors import CorruptionError
from corruptions.native import equivalent_native_sigma, native_equivalent
from corruptions.preset import Preset, PresetEntry, combine_presets, list_presets, load_preset
from corruptions.randomness import sample_generators
from corruptions.registry import (
    Operation,
    get_operation,
    list_operations,
    register_operation,
)

__all__ = [
    "Corruption",
    "CorruptionError",
    "Operation",
    "Preset",
    "combine_presets",
    "PresetEntry",
    "equivalent_native_sigma",
    "get_corruption",
    "get_operation",
    "list_corruptions",
    "list_operations",
    "list_presets",
    "load_preset",
    "native_equivalent",
    "register_operation",
    "sample_generators",
]
