"""``robustpath pretrain``: MAE pretraining of a CustomViT on unlabelled images.

Images: the training split of a dataset robustpath reads (``demo-ihc``, a class folder,
a manifest: labels are ignored), or, with ``images``, every image file below a folder
(any layout, resized to the first image's size).  A seeded ``holdout_fraction`` of them
is kept out of training; the reconstruction PSNR is measured on those held-out images
with masks drawn from a fixed seed (the same masks every epoch): PSNR over each image's
hidden pixels in [0, 1] (robustpath.models.mae.masked_psnr), averaged over the images.

Defaults follow the small-object MAE finding (Gillis et al., arXiv 2504.17935): small
patches (4 px: a 40 px cell patch is a 10 × 10 grid) and a small mask ratio (0.25).
The saved model is the encoder alone, as an ordinary CustomViT folder (config.json +
model.safetensors, no head): every robustpath command loads it like any CustomViT, and
``robustpath train --init DIR`` fine-tunes it.  The folder is swapped in whole at the end
(robustpath.models.training.save_model_folder): Ctrl-C leaves nothing half-written.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from robustpath.errors import DataError, UsageError

DEFAULT_PATCH_SIZE = 4
DEFAULT_MASK_RATIO = 0.25


@dataclass(frozen=True)
class PretrainSpec:
    data: str = "demo-ihc"
    images: Path | None = None  # a folder of unlabelled images (instead of data's training split)
    out: Path = Path("customvit-mae")
    patch_size: int = DEFAULT_PATCH_SIZE
    mask_ratio: float = DEFAULT_MASK_RATIO
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    image_size: int | None = None
    width: int = 128
    depth: int = 6
    heads: int = 4
    decoder_width: int = 64
    decoder_depth: int = 2
    holdout_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    overwrite: bool = False

    def check(self) -> None:
        if not 0 < self.mask_ratio < 1:
            raise UsageError(f"--mask-ratio must be between 0 and 1 (exclusive), got {self.mask_ratio}")
        if not 0 < self.holdout_fraction < 1:
            raise UsageError(f"--holdout-fraction must be between 0 and 1 (exclusive), got {self.holdout_fraction}")
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")


@dataclass
class PretrainResult:
    path: Path
    train_images: int
    holdout_images: int
    holdout_psnr: float
    history: list[dict] = field(default_factory=list)


def load_unlabelled_images(spec: PretrainSpec):
    """(N, 3, S, S) float in [0, 1] on the CPU, and a description of where they came from."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from robustpath.models.training_loop import load_image_tensor

    if spec.images is not None:
        from robustpath.data.images import IMAGE_EXTENSIONS, read_image_file

        root = Path(spec.images).expanduser()
        if not root.is_dir():
            raise UsageError(f"--images '{spec.images}' is not a folder")
        paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        if len(paths) < 2:
            raise DataError(f"--images '{root}' holds {len(paths)} image file(s); at least 2 are needed")
        first = read_image_file(paths[0])
        arrays = [first] + [read_image_file(p, first.shape[:2]) for p in paths[1:]]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        source = {"images": str(root), "files": len(paths)}
    else:
        from robustpath.data import load_dataset

        dataset = load_dataset(spec.data, seed=spec.seed)
        images = load_image_tensor(dataset, dataset.indices("train"))
        source = {"data": dataset.name, "split": "train (labels not used)"}
    size = spec.image_size or int(min(images.shape[-2:]))
    if tuple(images.shape[-2:]) != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bicubic", antialias=True).clamp_(0, 1)
    return images, source


def _build(spec: PretrainSpec, images):
    from robustpath.models.customvit_net import CustomViT, CustomViTConfig
    from robustpath.models.mae import MaskedAutoencoder

    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3)).clamp_min(1e-3)
    try:
        config = CustomViTConfig(image_size=int(images.shape[-1]), patch_size=spec.patch_size, width=spec.width,
                                 depth=spec.depth, heads=spec.heads, mean=tuple(mean.tolist()), std=tuple(std.tolist()))
        encoder = CustomViT(config)
        return MaskedAutoencoder(encoder, spec.decoder_width, spec.decoder_depth)
    except ValueError as exc:
        raise UsageError(f"MAE settings: {exc}") from None


def holdout_psnr(model, images, mean, std, mask_ratio: float, seed: int, batch_size: int, device) -> float:
    """Mean PSNR (dB) over the held-out ``images`` with masks from a generator seeded by ``seed``."""
    import torch

    from robustpath.models.mae import draw_masks, masked_psnr, reconstruct

    generator = torch.Generator().manual_seed(int(seed))
    tokens = (images.shape[-1] // model.patch_size) ** 2
    values = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start: start + batch_size].to(device)
            mask = draw_masks(len(x), tokens, mask_ratio, generator)
            values.append(masked_psnr(x, reconstruct(model, x, mask, mean, std), mask, model.patch_size).cpu())
    return float(torch.cat(values).mean())


def pretrain_mae(spec: PretrainSpec, progress=None) -> PretrainResult:
    """Pretrain and save (see the module docstring)."""
    import numpy as np
    import torch

    from robustpath.util.device import resolve_device
    from robustpath.models.corruption_augment import random_flips_and_turns
    from robustpath.models.customvit_net import CustomViTConfig
    from robustpath.models.mae import draw_masks
    from robustpath.models.training_loop import LossBar, MixedPrecision, cosine_schedule
    from robustpath.models.training import check_model_folder, save_model_folder

    spec.check()
    check_model_folder(spec.out, spec.overwrite)
    device = resolve_device(spec.device)
    images, source = load_unlabelled_images(spec)
    order = np.random.default_rng([spec.seed, 11]).permutation(len(images))
    held = max(1, int(round(spec.holdout_fraction * len(images))))
    holdout, train = images[np.sort(order[:held])], images[np.sort(order[held:])]
    torch.manual_seed(spec.seed)
    model = _build(spec, train).to(device)
    config = model.encoder.config
    mean = torch.tensor(config.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, device=device).view(1, 3, 1, 1)
    tokens = (config.image_size // config.patch_size) ** 2
    optimiser = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay,
                                  betas=(0.9, 0.95))
    steps = int(np.ceil(len(train) / spec.batch_size))
    schedule = cosine_schedule(optimiser, spec.epochs * steps, steps)
    precision = MixedPrecision(device, spec.amp)
    generator = torch.Generator().manual_seed(spec.seed)
    bar = LossBar(progress, "pretrain", f"MAE pretraining (mask {spec.mask_ratio:g}, patch {config.patch_size})",
                  spec.epochs * steps)
    history = []
    for epoch in range(1, spec.epochs + 1):
        bar.new_epoch(epoch)
        model.train()
        permutation = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), spec.batch_size):
            x = random_flips_and_turns(train[permutation[start: start + spec.batch_size]], generator).to(device)
            mask = draw_masks(len(x), tokens, spec.mask_ratio, generator)
            with precision.autocast():
                loss = model.loss((x - mean) / std, mask)
            precision.step(loss.float(), optimiser)
            schedule.step()
            bar.step(loss.item(), len(x))
        log = {"epoch": epoch, "loss": bar.mean_loss}
        if epoch == spec.epochs or epoch % 5 == 0:
            log["holdout_psnr"] = holdout_psnr(model, holdout, mean, std, spec.mask_ratio, spec.seed + 1,
                                               256, device)
        history.append(log)
    bar.finish()
    psnr = history[-1]["holdout_psnr"]
    training = {"protocol": "mae", **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(spec).items()
                                      if k not in ("overwrite", "out")},
                **source, "train_images": len(train), "holdout_images": len(holdout), "holdout_psnr_db": psnr,
                "precision": precision.name}
    encoder = model.encoder.cpu()
    encoder.config = CustomViTConfig(**{**asdict(config), "training": training})
    save_model_folder(encoder, spec.out, spec.overwrite)
    return PretrainResult(Path(spec.out), len(train), len(holdout), psnr, history)
