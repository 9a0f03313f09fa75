"""Hardening: random corruptions from a preset, drawn during training (``--augment PRESET``).

Each training image is corrupted with probability ``probability`` (default 0.5); a
corrupted image gets a corruption drawn uniformly from the preset and a severity drawn
uniformly from 1..N of that corruption.  The draws come from one CPU generator seeded
by (seed, epoch, step), and random corruptions (markup, artefacts) get the per-sample
generators of ``Corruption.sample_generators`` seeded by (seed, "epoch:step:position"),
so an augmented batch depends only on the seed, the epoch, the step and the batch's
images: a training run is reproducible for a seed, and two runs with different seeds
see different corruptions.

The corruptions are the project's batched tensor ops (``corruptions.Corruption``),
applied at the images' native resolution before the model's resize (the "pre" stage
of an evaluation), to float images (B, 3, H, W) in [0, 1] on any device.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from robustpath.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_PROBABILITY = 0.5


def _step_seed(seed: int, epoch: int, step: int) -> int:
    material = f"robustpath-augment-v1\x1f{int(seed)}\x1f{int(epoch)}\x1f{int(step)}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class AugmentationDraw:
    """What one batch got: per image the corruption name ("none" when clean) and severity (0 when clean)."""

    corruptions: tuple[str, ...]
    severities: tuple[int, ...]


class CorruptionAugmenter:
    """Random corruptions of a preset for training batches (see the module docstring)."""

    def __init__(self, preset: str, seed: int, probability: float = DEFAULT_PROBABILITY) -> None:
        import corruptions

        if not 0 < probability <= 1:
            raise UsageError(f"augmentation probability must be in (0, 1], got {probability}")
        try:
            self.preset = corruptions.load_preset(preset)
        except corruptions.CorruptionError as exc:  # an unknown name says so itself; a bad file gets the option
            raise UsageError(str(exc) if str(exc).startswith("unknown preset") else f"--augment: {exc}") from None
        self.seed = int(seed)
        self.probability = float(probability)
        self.bound = [corruptions.get_corruption(name, self.preset) for name in self.preset.corruptions]
        if not self.bound:
            raise UsageError(f"--augment: preset '{self.preset.name}' has no corruptions")

    def draw(self, batch_size: int, epoch: int, step: int) -> AugmentationDraw:
        """The corruption and severity of each image of one batch (no image work)."""
        import torch

        generator = torch.Generator().manual_seed(_step_seed(self.seed, epoch, step))
        corrupt = torch.rand(batch_size, generator=generator, dtype=torch.float64) < self.probability
        choice = torch.randint(0, len(self.bound), (batch_size,), generator=generator)
        level = torch.rand(batch_size, generator=generator, dtype=torch.float64)
        names, severities = [], []
        for i in range(batch_size):
            bound = self.bound[int(choice[i])]
            if bool(corrupt[i]):
                names.append(bound.name)
                severities.append(1 + min(bound.max_severity - 1, int(float(level[i]) * bound.max_severity)))
            else:
                names.append("none")
                severities.append(0)
        return AugmentationDraw(tuple(names), tuple(severities))

    def __call__(self, images: "torch.Tensor", epoch: int, step: int) -> "torch.Tensor":
        """images: (B, 3, H, W) float in [0, 1], any device → a corrupted copy (same shape, dtype, device)."""
        import torch

        drawn = self.draw(images.shape[0], epoch, step)
        out = images.clone()
        groups: dict[tuple[str, int], list[int]] = {}
        for position, (name, severity) in enumerate(zip(drawn.corruptions, drawn.severities)):
            if severity:
                groups.setdefault((name, severity), []).append(position)
        by_name = {bound.name: bound for bound in self.bound}
        for (name, severity), positions in groups.items():
            bound = by_name[name]
            generators = None
            if bound.random:
                ids = [f"{epoch}:{step}:{position}" for position in positions]
                generators = bound.sample_generators(self.seed, ids, severity)
            index = torch.tensor(positions, device=images.device)
            out[index] = bound(images[index], severity, generator=generators)
        return out

    def describe(self) -> dict:
        return {"preset": self.preset.name, "probability": self.probability, "seed": self.seed,
                "corruptions": [bound.name for bound in self.bound], "stage": "pre (native resolution)"}


def create_augmenter(preset: str | None, seed: int) -> CorruptionAugmenter | None:
    """The augmenter for ``--augment PRESET``, or None without one."""
    return None if preset is None else CorruptionAugmenter(preset, seed)


def random_flips_and_turns(images: "torch.Tensor", generator: "torch.Generator") -> "torch.Tensor":
    """Random horizontal flip and 90° rotation per sample (batched; square images)."""
    import torch

    flips = torch.rand(images.shape[0], generator=generator) < 0.5
    images = torch.where(flips.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)
    turns = torch.randint(0, 4, (images.shape[0],), generator=generator).to(images.device)
    out = images.clone()
    for k in range(1, 4):
        selected = turns == k
        if selected.any():
            out[selected] = torch.rot90(images[selected], k, dims=(-2, -1))
    return out
