"""Fine-tune an encoder with a linear head on clean training images (seeded, early stopping).

``fine_tune(encoder, images, labels, …)`` trains the encoder's image tower (all of it, or
its last N transformer blocks) together with a new linear head by cross-entropy:

* images: float (N, 3, H, W) in [0, 1] at native size; each batch is augmented (random
  flips and 90° turns; with ``augment`` also random corruptions of a preset, see
  robustpath.models.corruption_augment), resized to the encoder's input exactly as an
  evaluation does (robustpath.models.preprocess.resize_to_input) and normalised;
* a stratified ``validation_fraction`` of the images (seeded) is held out; after each
  epoch the validation loss is measured, the best epoch's weights are kept, and training
  stops after ``patience`` epochs without improvement;
* AdamW (encoder ``learning_rate``, head ``head_learning_rate``), warm-up + cosine;
  mixed precision on CUDA (robustpath.models.training_loop.MixedPrecision), fp32 on CPU.

"The last N blocks": the encoder's transformer blocks are its longest list of modules
of one class (``blocks`` of CustomViT and timm, ``encoder.layer`` of DINOv2,
``transformer.resblocks`` of open_clip); the parameters trained are those of the last N
blocks and every image-tower parameter registered after them (final norm, pooler,
projection); the rest stays frozen.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from robustpath.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class FineTuneSpec:
    """How to fine-tune; ``blocks`` 0 trains the whole image tower."""

    blocks: int = 0
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.05
    validation_fraction: float = 0.2
    patience: int = 3
    augment: str | None = None
    seed: int = 0
    amp: bool = True

    def check(self) -> None:
        if self.blocks < 0 or self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise UsageError("fine-tuning: --blocks must be >= 0 and --epochs, --batch-size, --patience >= 1")
        if not 0 <= self.validation_fraction < 1:
            raise UsageError(f"--validation-fraction must be in [0, 1), got {self.validation_fraction}")
        if self.learning_rate <= 0 or self.head_learning_rate <= 0:
            raise UsageError("fine-tuning learning rates must be positive")


@dataclass
class FineTuned:
    """A fine-tuned encoder (CPU, eval mode) and its head: weight (K, D), bias (K,) float32."""

    encoder: object
    head_weight: np.ndarray
    head_bias: np.ndarray
    history: list[dict] = field(default_factory=list)
    facts: dict = field(default_factory=dict)


_IMAGE_PREFIXES = {"OpenClipEncoder": ("visual.",)}
_TEXT_PREFIXES = ("text_model.", "text_projection", "logit_scale", "logit_bias")


def image_parameters(encoder) -> list[tuple[str, "torch.nn.Parameter"]]:
    """The image tower's parameters of ``encoder.model``, in registration order."""
    keep = _IMAGE_PREFIXES.get(type(encoder).__name__)
    named = list(encoder.model.named_parameters())
    if keep is not None:
        return [(name, p) for name, p in named if name.startswith(keep)]
    return [(name, p) for name, p in named if not name.startswith(_TEXT_PREFIXES)]


def transformer_blocks(encoder) -> list[str]:
    """Module names of the image tower's blocks: its longest list of same-class modules with
    parameters (ties: the one with more parameters)."""
    from torch import nn

    image_names = {name for name, _ in image_parameters(encoder)}
    best: tuple = (0, 0, [])
    for name, module in encoder.model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) < 1:
            continue
        children = list(module.named_children())
        if len({type(child) for _, child in children}) != 1 or not any(p.startswith(f"{name}.") for p in image_names):
            continue
        size = sum(p.numel() for p in module.parameters())
        if size and (len(children), size) > best[:2]:
            best = (len(children), size, [f"{name}.{child}" for child, _ in children])
    return best[2]


def trainable_parameters(encoder, blocks: int) -> list[tuple[str, "torch.nn.Parameter"]]:
    """The parameters fine-tuning trains: all image parameters, or the last ``blocks`` blocks and after."""
    named = image_parameters(encoder)
    if blocks == 0:
        return named
    block_names = transformer_blocks(encoder)
    if not block_names:
        raise UsageError(f"--blocks {blocks}: model '{encoder.name}' has no transformer blocks robustpath can find; use --blocks 0")
    if blocks > len(block_names):
        raise UsageError(f"--blocks {blocks}: model '{encoder.name}' has only {len(block_names)} blocks")
    first = block_names[-blocks] + "."
    start = next(i for i, (name, _) in enumerate(named) if name.startswith(first))
    return named[start:]


class _Batches:
    """Augment → resize → normalise one batch on the device (what an evaluation's clean pipeline does)."""

    def __init__(self, encoder, device, augmenter, seed: int) -> None:
        import torch

        from robustpath.models.preprocess import resize_to_input

        self.resize, self.prep, self.device = resize_to_input, encoder.preprocessing, device
        self.mean = torch.tensor(self.prep.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.prep.std, device=device).view(1, 3, 1, 1)
        self.augmenter = augmenter
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, images, epoch: int = 0, step: int = 0, train: bool = True):
        from robustpath.models.corruption_augment import random_flips_and_turns

        x = images.to(self.device)
        if train:
            if self.augmenter is not None:
                x = self.augmenter(x, epoch, step)
            if x.shape[-1] == x.shape[-2]:
                x = random_flips_and_turns(x, self.generator)
        return (self.resize(x.contiguous(), self.prep) - self.mean) / self.std


def _trainable_copy(encoder, blocks: int, num_classes: int, device):
    """A copy of ``encoder`` on ``device`` with only the fine-tuned parameters trainable, and a new head."""
    import torch

    model = copy.deepcopy(encoder).to(device)
    trained = trainable_parameters(model, blocks)
    trained_ids = {id(p) for _, p in trained}
    for parameter in model.model.parameters():
        parameter.requires_grad_(id(parameter) in trained_ids)
    return model, trained, torch.nn.Linear(model.embed_dim, num_classes).to(device)


def _train_epoch(model, head, batches, images, labels, spec: FineTuneSpec, epoch: int, run) -> None:
    """One pass over ``images`` (CPU float) / ``labels`` (CPU int64 tensor) in a seeded order."""
    import torch

    model.model.train()
    order = torch.randperm(len(images), generator=run["order"])
    for step, start in enumerate(range(0, len(images), spec.batch_size)):
        batch = order[start: start + spec.batch_size]
        x = batches(images[batch], epoch, step)
        with run["precision"].autocast():
            logits = head(model.image_features(x).float())
            loss = torch.nn.functional.cross_entropy(logits.float(), labels[batch].to(x.device))
        run["precision"].step(loss, run["optimiser"])
        run["schedule"].step()
        run["bar"].step(loss.item(), len(batch))


def fine_tune(encoder, images, labels: np.ndarray, num_classes: int, spec: FineTuneSpec, *, device,
              progress=None, title: str = "Fine-tuning") -> FineTuned:
    """Fine-tune a copy of ``encoder`` (see the module docstring); ``encoder`` itself is not changed.

    images: float (N, 3, H, W) in [0, 1] on the CPU; labels: (N,) int64 in 0..num_classes-1.
    """
    import torch

    from robustpath.models.corruption_augment import create_augmenter
    from robustpath.models.training_loop import LossBar, MixedPrecision, cosine_schedule, stratified_holdout

    spec.check()
    labels = np.asarray(labels, dtype=np.int64)
    kept, held_out = stratified_holdout(labels, spec.validation_fraction, spec.seed)
    torch.manual_seed(spec.seed)
    model, trained, head = _trainable_copy(encoder, spec.blocks, num_classes, device)
    optimiser = torch.optim.AdamW(
        [{"params": [p for _, p in trained], "lr": spec.learning_rate},
         {"params": list(head.parameters()), "lr": spec.head_learning_rate}], weight_decay=spec.weight_decay)
    steps = int(np.ceil(len(kept) / spec.batch_size))
    run = {"optimiser": optimiser, "schedule": cosine_schedule(optimiser, spec.epochs * steps, steps),
           "precision": MixedPrecision(device, spec.amp), "order": torch.Generator().manual_seed(int(spec.seed) + 1),
           "bar": LossBar(progress, f"fine-tune:{title}", title, spec.epochs * steps)}
    batches = _Batches(model, device, create_augmenter(spec.augment, spec.seed), spec.seed)
    best, history = (float("inf"), 0, None), []
    for epoch in range(1, spec.epochs + 1):
        run["bar"].new_epoch(epoch)
        _train_epoch(model, head, batches, images[kept], torch.from_numpy(labels[kept]), spec, epoch, run)
        log = {"epoch": epoch, "train_loss": run["bar"].mean_loss,
               **_validate(model, head, batches, images[held_out], labels[held_out], spec.batch_size, run["precision"])}
        history.append(log)
        score = log.get("validation_loss", -epoch)  # without a validation split: the last epoch
        if score < best[0]:
            best = (score, epoch, _snapshot(trained, head))
        run["bar"].show(f"epoch {epoch} · loss {log['train_loss']:.4f}" + (
            f" · validation {log['validation_loss']:.4f}" if "validation_loss" in log else ""))
        if epoch - best[1] >= spec.patience:
            break
    run["bar"].finish()
    _restore(best[2], trained, head)
    for parameter in model.model.parameters():
        parameter.requires_grad_(False)
    model.model.eval()
    model.to(torch.device("cpu"))
    facts = {"spec": asdict(spec), "best_epoch": best[1], "epochs_run": len(history), "precision": run["precision"].name,
             "trained_parameters": int(sum(p.numel() for _, p in trained)),
             "blocks": spec.blocks or "all", "train_images": int(len(kept)), "validation_images": int(len(held_out)),
             "augmentation": batches.augmenter.describe() if batches.augmenter is not None else None}
    return FineTuned(model, head.weight.detach().cpu().numpy().astype(np.float32),
                     head.bias.detach().cpu().numpy().astype(np.float32), history, facts)


def _validate(model, head, batches, images, labels: np.ndarray, batch_size: int, precision) -> dict:
    """Mean cross-entropy and accuracy on the held-out images ({} without any)."""
    import torch

    if len(labels) == 0:
        return {}
    model.model.eval()
    logits = []
    with torch.inference_mode(), precision.autocast():
        for start in range(0, len(labels), batch_size):
            x = batches(images[start: start + batch_size], train=False)
            logits.append(head(model.image_features(x).float()).float().cpu())
    joined = torch.cat(logits).double()
    target = torch.from_numpy(labels)
    loss = torch.nn.functional.cross_entropy(joined, target).item()
    return {"validation_loss": float(loss), "validation_accuracy": float((joined.argmax(1) == target).double().mean())}


def _snapshot(trained, head) -> dict:
    state = {name: p.detach().cpu().clone() for name, p in trained}
    state.update({f"head.{k}": v.detach().cpu().clone() for k, v in head.state_dict().items()})
    return state


def _restore(state: dict | None, trained, head) -> None:
    import torch

    if state is None:
        return
    with torch.no_grad():
        for name, parameter in trained:
            parameter.copy_(state[name].to(parameter.device))
        head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
