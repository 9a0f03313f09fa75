"""Train a CustomViT from scratch on small patches (the small-patch study's setup).

Supervised classification with cross-entropy on the training split, random
flips and 90° rotations (tissue has no canonical orientation), AdamW with a
warm-up + cosine schedule.  The normalisation mean/std are measured on the
training images and saved in config.json.  ``samples_per_class`` subsamples
the training split (seeded) to study the data-scale axis.

The model folder (config.json + model.safetensors) is built beside ``out`` and swapped
in as a whole (robustpath.util.atomic.replace_dir), so a killed run leaves either the old
model or the new one, complete.  A model already in ``out`` is replaced only with
``overwrite``; a folder holding anything else is never replaced.

``init`` starts from a saved CustomViT (e.g. an MAE encoder from ``robustpath pretrain``):
its architecture and normalisation are kept (the size options are then ignored), its
weights loaded, and a new classification head is trained with it.  ``augment`` names a
corruption preset: each training image is corrupted with probability 0.5 by a random
corruption and severity of it (seeded; robustpath.models.corruption_augment), at the
model's input size, before the flips and turns.
"""
from __future__ import annotations

import glob
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from robustpath.errors import UsageError


@dataclass(frozen=True)
class TrainSpec:
    data: str = "demo-ihc"
    out: Path = Path("customvit")
    samples_per_class: int | None = None
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    image_size: int | None = None  # default: the dataset's native size
    patch_size: int = 4
    width: int = 128
    depth: int = 6
    heads: int = 4
    seed: int = 0
    device: str = "auto"
    test_fraction: float = 0.3
    overwrite: bool = False
    init: Path | None = None  # a CustomViT folder (e.g. from `robustpath pretrain`) to start from
    augment: str | None = None  # a corruption preset for hardening (robustpath.models.corruption_augment)


@dataclass
class TrainResult:
    path: Path
    train_samples: int
    test_accuracy: float | None
    history: list[dict] = field(default_factory=list)


def select_per_class(labels: np.ndarray, classes: tuple[str, ...], count: int | None, seed: int) -> np.ndarray:
    """Positions of ``count`` samples per class (seeded), or all when count is None."""
    if count is None:
        return np.arange(len(labels))
    if count < 1:
        raise UsageError(f"--samples-per-class must be at least 1, got {count}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label, name in enumerate(classes):
        members = np.flatnonzero(labels == label)
        if len(members) < count:
            raise UsageError(
                f"--samples-per-class {count}: class '{name}' has only {len(members)} training images"
            )
        chosen.append(np.sort(rng.choice(members, size=count, replace=False)))
    return np.concatenate(chosen)


def check_model_folder(out: Path, overwrite: bool) -> Path:
    """Refuse an ``out`` that holds a model (unless ``overwrite``) or anything but a model."""
    from robustpath.models.customvit import CONFIG_FILE, WEIGHTS_FILE

    out = Path(out)
    if os.path.lexists(out) and (out.is_symlink() or not out.is_dir()):
        raise UsageError(f"--out '{out}' exists and is not a folder (or is a link to one)")
    names = sorted(entry.name for entry in os.scandir(out)) if out.is_dir() else []
    others = [name for name in names if name not in (CONFIG_FILE, WEIGHTS_FILE)]
    if others:
        raise UsageError(
            f"--out '{out}' holds other files than a model ({', '.join(others[:4])}{', …' if len(others) > 4 else ''}); "
            "train replaces the whole folder, so choose a new or empty one"
        )
    if names and not overwrite:
        raise UsageError(f"--out '{out}' already holds a model; pass --overwrite to replace it or choose another --out")
    return out


def save_model_folder(model, out: Path, overwrite: bool) -> None:
    """Save ``model`` into a new folder beside ``out``, then swap it in (killed: old or new model, complete)."""
    from robustpath.util.atomic import check_can_create, ensure_writable_dir, replace_dir
    from robustpath.util.fault_points import fault_point
    from robustpath.models.customvit import save_customvit

    out = check_can_create(Path(out))
    ensure_writable_dir(out.parent)
    _remove_abandoned_folders(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent))
    try:
        save_customvit(model, staging)
        fault_point("train-swap")
        check_model_folder(out, overwrite)  # again: another process may have written it meanwhile
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove_abandoned_folders(out: Path) -> None:
    """Delete the hidden model folders that killed trainings left beside ``out`` (their process is gone)."""
    for path in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        pid = path.name[len(out.name) + 2:].split(".", 1)[0]
        if path.is_dir() and not path.is_symlink() and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _load_split(dataset, indices: np.ndarray, size: int):
    import torch
    import torch.nn.functional as F

    images = torch.from_numpy(np.stack([dataset.read_image(int(i)) for i in indices]))
    images = images.permute(0, 3, 1, 2).float().div_(255.0)
    if tuple(images.shape[-2:]) != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bicubic", antialias=True).clamp_(0, 1)
    return images, torch.from_numpy(dataset.labels[indices].astype(np.int64))


def _augment(images, generator):
    """Random horizontal flip and 90° rotation per sample (batched)."""
    import torch

    flips = torch.rand(images.shape[0], generator=generator) < 0.5
    images = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    turns = torch.randint(0, 4, (images.shape[0],), generator=generator)
    out = images.clone()
    for k in range(1, 4):
        selected = turns == k
        if selected.any():
            out[selected] = torch.rot90(images[selected], k, dims=(-2, -1))
    return out


def _accuracy(model, images, labels, mean, std, device, batch_size: int) -> float:
    import torch

    correct = 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = ((images[start : start + batch_size] - mean) / std).to(device)
            correct += (model(x).argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    return correct / max(1, len(images))


def _initial_model(spec: TrainSpec, size: int, dataset, mean, std):
    """A new CustomViT for ``dataset``, or one started from ``spec.init`` (its architecture, normalisation and weights)."""
    from dataclasses import replace

    from robustpath.models.customvit import load_customvit
    from robustpath.models.customvit_net import CustomViT, CustomViTConfig

    classes = dict(num_classes=len(dataset.classes), class_names=tuple(dataset.classes))
    if spec.init is None:
        config = CustomViTConfig(
            image_size=size, patch_size=spec.patch_size, width=spec.width, depth=spec.depth, heads=spec.heads,
            mean=tuple(mean.flatten().tolist()), std=tuple(std.flatten().tolist()), **classes,
        )
        return CustomViT(config)
    start = load_customvit(spec.init)
    if start.config.image_size != size:
        raise UsageError(f"--init '{spec.init}' takes {start.config.image_size} px images; the training images are "
                         f"{size} px (pass --image-size {start.config.image_size})")
    model = CustomViT(replace(start.config, training={}, **classes))
    weights = {k: v for k, v in start.state_dict().items() if not k.startswith("head.")}
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys or any(not key.startswith("head.") for key in result.missing_keys):
        raise UsageError(f"--init '{spec.init}': its weights do not fit its own config.json")
    return model


def _warmup_cosine(optimiser, total_steps: int, warmup: int):
    """Linear warm-up over ``warmup`` steps, then a cosine decay to 0 at ``total_steps``."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup))),
    )


def _training_record(spec: TrainSpec, train_samples: int, dataset: str, test_accuracy, augmenter) -> dict:
    """How the model was trained, for its config.json (the spec without ``overwrite``, paths as text)."""
    training = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(spec).items() if k != "overwrite"}
    training.update(train_samples=train_samples, dataset=dataset, final_test_accuracy=test_accuracy)
    if augmenter is not None:
        training["augmentation"] = augmenter.describe()
    return training


def train_customvit(spec: TrainSpec, on_epoch: Callable[[dict], None] | None = None, progress=None) -> TrainResult:
    """Train and save a CustomViT to ``spec.out``; ``on_epoch`` gets each epoch's log, ``progress`` a
    bar over the steps showing the running loss."""
    import torch

    from robustpath.data import load_dataset
    from robustpath.util.device import resolve_device
    from robustpath.models.corruption_augment import create_augmenter
    from robustpath.models.customvit_net import CustomViTConfig
    from robustpath.models.training_loop import LossBar

    if spec.epochs < 1 or spec.batch_size < 1:
        raise UsageError("--epochs and --batch-size must be at least 1")
    check_model_folder(spec.out, spec.overwrite)
    device = resolve_device(spec.device)
    dataset = load_dataset(spec.data, test_fraction=spec.test_fraction, seed=spec.seed)
    size = spec.image_size or dataset.native_size[0]
    train_all = dataset.indices("train")
    train_indices = train_all[select_per_class(dataset.labels[train_all], dataset.classes, spec.samples_per_class, spec.seed)]
    train_x, train_y = _load_split(dataset, train_indices, size)
    test_x, test_y = _load_split(dataset, dataset.indices("test"), size)
    mean = train_x.mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, 3, 1, 1)

    torch.manual_seed(spec.seed)
    generator = torch.Generator().manual_seed(spec.seed)
    try:
        model = _initial_model(spec, size, dataset, mean, std).to(device)
    except ValueError as exc:
        raise UsageError(f"CustomViT settings: {exc}") from None
    config = model.config
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    augmenter = create_augmenter(spec.augment, spec.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    steps_per_epoch = math.ceil(len(train_x) / spec.batch_size)
    total_steps, warmup = spec.epochs * steps_per_epoch, steps_per_epoch
    schedule = _warmup_cosine(optimiser, total_steps, warmup)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    history = []
    bar = LossBar(progress, "train", "Training CustomViT", total_steps)
    for epoch in range(1, spec.epochs + 1):
        model.train()
        bar.new_epoch(epoch)
        order = torch.randperm(len(train_x), generator=generator)
        for step, start in enumerate(range(0, len(order), spec.batch_size)):
            batch = order[start : start + spec.batch_size]
            images = train_x[batch] if augmenter is None else augmenter(train_x[batch], epoch, step)
            x = ((_augment(images, generator) - mean) / std).to(device)
            loss = loss_fn(model(x), train_y[batch].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            bar.step(loss.item(), len(batch))
        log = {"epoch": epoch, "loss": bar.mean_loss}
        if epoch == spec.epochs or epoch % 5 == 0:
            log["test_accuracy"] = _accuracy(model, test_x, test_y, mean, std, device, 256)
        history.append(log)
        if on_epoch is not None:
            on_epoch(log)
    bar.finish()
    test_accuracy = history[-1].get("test_accuracy")
    training = _training_record(spec, len(train_x), dataset.name, test_accuracy, augmenter)
    model.config = CustomViTConfig(**{**asdict(config), "training": training})
    save_model_folder(model.cpu(), spec.out, spec.overwrite)
    return TrainResult(Path(spec.out), len(train_x), test_accuracy, history)
