"""Variants: the (corruption, severity, stage) combinations a run evaluates."""
from __future__ import annotations

from dataclasses import dataclass

from robustpath.errors import UsageError, unknown_name_message

CLEAN = "none"
BLUR = "gaussian_blur"


@dataclass(frozen=True, order=True)
class Variant:
    """One corrupted copy of the test set; the clean set is Variant('none', 0, 'none')."""

    corruption: str
    severity: int
    stage: str

    @property
    def key(self) -> str:
        return f"{self.corruption}/{self.severity}/{self.stage}"

    @property
    def is_clean(self) -> bool:
        return self.corruption == CLEAN


CLEAN_VARIANT = Variant(CLEAN, 0, CLEAN)


def _stages_for(corruption: str, stage: str) -> tuple[str, ...]:
    if stage == "default":
        return ("pre", "post") if corruption == BLUR else ("pre",)
    if stage == "both":
        return ("pre", "post")
    return (stage,)


def plan_variants(preset, corruptions: tuple[str, ...], severities: tuple[int, ...], stage: str) -> list[Variant]:
    """Expand the user's selection against a corruptions.Preset.

    Empty ``corruptions`` / ``severities`` select everything in the preset.
    Raises UsageError for unknown names or out-of-range severities.
    """
    import corruptions as corruption_library

    from robustpath.spec.run_spec import STAGES

    if stage not in STAGES:
        raise UsageError(unknown_name_message("stage", stage, STAGES))
    names = list(corruptions) or list(preset.corruptions)
    variants: list[Variant] = []
    for name in dict.fromkeys(names):
        if name not in preset.corruptions:
            raise UsageError(unknown_name_message("corruption", name, preset.corruptions) + f" (preset '{preset.name}')")
        try:
            bound = corruption_library.get_corruption(name, preset)
        except corruption_library.CorruptionError as exc:
            raise UsageError(f"--corruption: {exc}") from None
        levels = list(severities) or list(range(1, bound.max_severity + 1))
        for severity in levels:
            if not 1 <= severity <= bound.max_severity:
                raise UsageError(
                    f"--severity {severity} is out of range for '{name}' in preset '{preset.name}': "
                    f"expected 1..{bound.max_severity}"
                )
        for stage_name in _stages_for(name, stage):
            variants.extend(Variant(name, severity, stage_name) for severity in sorted(set(levels)))
    return variants


ANY_STAGE = "any"  # the stage of a corruption when the model's resize is a no-op (pre and post coincide)


def distinct_pipelines(variants: list[Variant], resize_is_identity: bool) -> dict[tuple, list[Variant]]:
    """(corruption, severity, stage) → the variants computed by that one image pipeline.

    When the model takes the images at their native size (``resize_is_identity``), a
    corruption before and after the resize are the same images: pre and post share
    one pipeline (stage ANY_STAGE), embedded once.
    """
    pipelines: dict[tuple, list[Variant]] = {}
    for variant in variants:
        stage = ANY_STAGE if resize_is_identity else variant.stage
        pipelines.setdefault((variant.corruption, variant.severity, stage), []).append(variant)
    return pipelines


def variant_parameter(preset, variant: Variant) -> object:
    """The preset value of a corrupted variant, JSON-ready (table values as plain dicts)."""
    from collections.abc import Mapping

    value = preset.corruptions[variant.corruption].values[variant.severity - 1]
    return dict(value) if isinstance(value, Mapping) else value


def variant_generators(corruption, variant: Variant, seed: int, sample_ids, pool=None):
    """The per-sample generators of ``corruption.sample_generators`` (seeded by run seed, sample id,
    corruption and severity, without the severity for a nested corruption); None if not random.

    ``pool``: CPU generators to re-seed instead of creating new ones (at least one per sample).
    """
    if not corruption.random:
        return None
    if pool is None:
        return corruption.sample_generators(seed, list(sample_ids), variant.severity)
    from corruptions.randomness import seed_for_sample

    severity = None if corruption.nested else variant.severity
    for generator, sample_id in zip(pool, sample_ids):
        generator.manual_seed(seed_for_sample(seed, sample_id, variant.corruption, severity))
    return pool[: len(sample_ids)]


def apply_variant(images, variant: Variant, corruption, *, seed: int, sample_ids, resize=None, generator_pool=None):
    """The images of ``variant`` as the evaluation sees them: corruption at native size (stage "pre",
    or ANY_STAGE) → ``resize`` (the model's geometry; None: none) → corruption at model size ("post").

    images: (B, 3, H, W) float in [0, 1] on any device; ``corruption``: the variant's bound
    corruptions.Corruption (None for the clean variant); ``sample_ids``: the B samples' ids
    (their seeded generators, see ``variant_generators``).  Returns (B, 3, h, w) float in [0, 1].
    """
    x = images
    if corruption is not None and variant.stage in ("pre", ANY_STAGE):
        x = corruption(x, variant.severity,
                       generator=variant_generators(corruption, variant, seed, sample_ids, generator_pool))
    if resize is not None:
        x = resize(x)
    if corruption is not None and variant.stage == "post":
        x = corruption(x, variant.severity,
                       generator=variant_generators(corruption, variant, seed, sample_ids, generator_pool))
    return x
