"""The sweep: batches × variants → embeddings.

Each image is decoded once.  Test images are fanned out on the device to every
variant (corruption at native size → model resize → corruption at model size →
normalise → encode); training images are only needed clean (probe and gallery).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from robustpath.progress import ProgressReporter, SilentProgress
from robustpath.variants import Variant


@dataclass
class Embeddings:
    """Clean embeddings of every sample and corrupted embeddings of the test split.

    clean: (N, D) float32 in dataset order; variants: key → (N_test, D) float32 in
    the order of ``test_indices``.
    """

    clean: np.ndarray
    test_indices: np.ndarray
    variants: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class _ImageReader:
    """torch Dataset over a robustpath Dataset: (uint8 (H, W, 3) tensor, index)."""

    def __init__(self, dataset, indices: np.ndarray) -> None:
        self.dataset = dataset
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        import torch

        index = int(self.indices[position])
        return torch.from_numpy(np.ascontiguousarray(self.dataset.read_image(index))), index


class _VariantRunner:
    """Applies one run's corruptions, geometry and encoder to a batch on the device."""

    def __init__(self, encoder, preset, seed: int, device) -> None:
        from robustpath.device import autocast_dtype

        self.encoder = encoder
        self.preset = preset
        self.seed = seed
        self.device = device
        self.amp_dtype = autocast_dtype(device)
        self._bound: dict[str, object] = {}

    def corruption(self, name: str):
        import corruptions

        if name not in self._bound:
            self._bound[name] = corruptions.get_corruption(name, self.preset)
        return self._bound[name]

    def _corrupt(self, images, variant: Variant, sample_ids: list[str]):
        import corruptions

        bound = self.corruption(variant.corruption)
        generators = corruptions.sample_generators(self.seed, sample_ids, variant.corruption, variant.severity)
        return bound(images, variant.severity, generator=generators)

    def embed(self, images, variant: Variant, sample_ids: list[str]):
        """images: (B, 3, H, W) float in [0, 1] on the device → (B, D) float32 on the host."""
        import torch

        from robustpath.models.preprocess import normalise, resize_to_input

        prep = self.encoder.preprocessing
        x = images
        if variant.stage == "pre":
            x = self._corrupt(x, variant, sample_ids)
        x = resize_to_input(x, prep)
        if variant.stage == "post":
            x = self._corrupt(x, variant, sample_ids)
        x = normalise(x, prep)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast(device_type="cuda", dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            features = self.encoder.encode_image(x)
        return features.float().cpu().numpy()


def _loader(dataset, indices: np.ndarray, batch_size: int, num_workers: int, device):
    from torch.utils.data import DataLoader

    return DataLoader(
        _ImageReader(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )


def compute_embeddings(
    encoder,
    dataset,
    variants: list[Variant],
    *,
    preset,
    seed: int,
    device,
    batch_size: int,
    num_workers: int = 0,
    progress: ProgressReporter | None = None,
) -> Embeddings:
    """Run the sweep and return clean and per-variant embeddings (see Embeddings)."""
    import time

    import torch

    from robustpath.variants import CLEAN_VARIANT

    progress = progress or SilentProgress()
    encoder.to(device)
    runner = _VariantRunner(encoder, preset, seed, device)
    test_indices = dataset.indices("test")
    train_indices = dataset.indices("train")
    row_of_test = {int(index): row for row, index in enumerate(test_indices)}
    clean = np.zeros((len(dataset), encoder.embed_dim), dtype=np.float32)
    outputs = {v.key: np.zeros((len(test_indices), encoder.embed_dim), dtype=np.float32) for v in variants}
    seconds = {v.key: 0.0 for v in [CLEAN_VARIANT, *variants]}
    total = len(dataset) + len(test_indices) * len(variants)
    progress.start("embed", f"Embedding {len(variants) + 1} variants", total)
    for split_indices in (test_indices, train_indices):
        for batch, indices in _loader(dataset, split_indices, batch_size, num_workers, device):
            images = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
            sample_ids = [dataset.sample_ids[i] for i in indices.tolist()]
            started = time.perf_counter()
            clean[indices.numpy()] = runner.embed(images, CLEAN_VARIANT, sample_ids)
            seconds[CLEAN_VARIANT.key] += time.perf_counter() - started
            progress.advance("embed", len(indices))
            if split_indices is not test_indices:
                continue
            rows = np.array([row_of_test[i] for i in indices.tolist()])
            for variant in variants:
                started = time.perf_counter()
                outputs[variant.key][rows] = runner.embed(images, variant, sample_ids)
                seconds[variant.key] += time.perf_counter() - started
                progress.advance("embed", len(indices))
    progress.finish("embed")
    if device.type == "cuda":
        torch.cuda.synchronize()
    return Embeddings(clean=clean, test_indices=test_indices, variants=outputs, seconds=seconds)
