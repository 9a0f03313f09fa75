"""Pieces every training loop shares: image tensors, mixed precision, splits and a loss bar.

Used by the fine-tuning trainer (robustpath.models.finetune), the MAE pretrainer
(robustpath.models.mae_training) and ``robustpath train``.  Mixed precision runs on
CUDA only (bf16 where supported, else fp16 with a gradient scaler); CPU stays fp32.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import numpy as np

from robustpath.util.progress import ProgressReporter, SilentProgress, describe_progress

if TYPE_CHECKING:  # pragma: no cover
    import torch


def load_image_tensor(dataset, indices: np.ndarray) -> "torch.Tensor":
    """The images at ``indices`` as a CPU float tensor (N, 3, H, W) in [0, 1] at native size."""
    import torch

    if len(indices) == 0:
        height, width = dataset.native_size
        return torch.zeros((0, 3, height, width))
    images = torch.from_numpy(np.stack([dataset.read_image(int(i)) for i in indices]))
    return images.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (kept, held out): ``fraction`` of each class held out (at least one image of a
    class with two or more, none of a class with one), seeded; both sorted."""
    rng = np.random.default_rng([int(seed), 7])
    held = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = 0 if len(members) < 2 else min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        held.append(members[:count])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


class MixedPrecision:
    """autocast + gradient scaler for one device: a no-op on CPU or with ``enabled`` False."""

    def __init__(self, device: "torch.device", enabled: bool = True) -> None:
        import torch

        from robustpath.util.device import autocast_dtype

        self.device = device
        self.dtype = autocast_dtype(device) if enabled else None
        use_scaler = self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

    def autocast(self):
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def step(self, loss: "torch.Tensor", optimiser) -> None:
        """Backward pass and optimiser step (scaled under fp16)."""
        optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimiser)
        self.scaler.update()

    @property
    def name(self) -> str:
        return "fp32" if self.dtype is None else str(self.dtype).replace("torch.", "")


class LossBar:
    """A progress bar over training steps whose text shows the epoch and the running loss.

    Rich draws the elapsed time and the ETA beside it (robustpath.cli_support.RichProgress).
    """

    def __init__(self, progress: ProgressReporter | None, key: str, title: str, total_steps: int) -> None:
        self.progress = progress or SilentProgress()
        self.key, self.title = key, title
        self.progress.start(key, title, total_steps)
        self.epoch, self.loss_sum, self.count = 0, 0.0, 0

    def new_epoch(self, epoch: int) -> None:
        self.epoch, self.loss_sum, self.count = epoch, 0.0, 0

    def step(self, loss: float, batch_size: int) -> None:
        self.loss_sum += float(loss) * batch_size
        self.count += batch_size
        describe_progress(self.progress, self.key, f"{self.title} · epoch {self.epoch} · loss {self.mean_loss:.4f}")
        self.progress.advance(self.key)

    def show(self, text: str) -> None:
        describe_progress(self.progress, self.key, f"{self.title} · {text}")

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(1, self.count)

    def finish(self) -> None:
        self.progress.finish(self.key)


def cosine_schedule(optimiser, total_steps: int, warmup_steps: int):
    """Linear warm-up over ``warmup_steps`` then cosine decay to 0 at ``total_steps``."""
    import math

    import torch

    warmup = max(1, warmup_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
