"""A reference sweep written the way existing robustness benchmarks do it.

Per image, on the CPU, in the DataLoader's __getitem__: PIL image → NumPy float64
corruption in the style of ``imagecorruptions`` (skimage HSV conversions,
skimage.filters.gaussian, PIL resizes, a PIL-drawn pen stroke) → torchvision
transforms (Resize, ToTensor, Normalize) → default collate; one DataLoader pass per
variant.  Nothing here is imported from robustpath's corruptions package: only the
preset's parameter values are read.  Two modes:

- ``per-variant-dataset`` (how a corrupted copy of a dataset is usually evaluated,
  e.g. one CLIP_benchmark-style linear-probe / retrieval run per corrupted copy):
  each variant's pass covers the whole dataset — the clean training images that the
  probe and gallery need, and the corrupted test images;
- ``test-only`` (a stronger baseline): the clean images are embedded once and each
  variant's pass covers only the test images.

The embeddings are then scored by robustpath's own tasks, so both pipelines end in
the same kind of results table and differ only in how the embeddings are made.
"""
from __future__ import annotations

import numpy as np


# ---- imagecorruptions-style corruptions: uint8 HWC in, uint8 HWC out ----------------------


def _float(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255.0


def _uint8(x: np.ndarray) -> np.ndarray:
    return np.uint8(np.clip(x, 0, 1) * 255 + 0.5)


def brightness(image, c):
    from skimage import color

    x = color.rgb2hsv(_float(image))
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return _uint8(color.hsv2rgb(x))


def contrast(image, c):
    x = _float(image)
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return _uint8((x - means) * c + means)


def gaussian_blur(image, c):
    from skimage.filters import gaussian

    return _uint8(gaussian(_float(image), sigma=c, channel_axis=-1, mode="nearest", truncate=4.0))


def resolution(image, c):
    from PIL import Image

    pil = Image.fromarray(np.asarray(image))
    width, height = pil.size
    small = pil.resize((max(1, round(width / c)), max(1, round(height / c))), Image.BOX)
    return np.asarray(small.resize((width, height), Image.BILINEAR))


def saturation(image, c):
    from skimage import color

    x = color.rgb2hsv(_float(image))
    x[:, :, 1] = np.clip(x[:, :, 1] * c, 0, 1)
    return _uint8(color.hsv2rgb(x))


def hue(image, c):
    from skimage import color

    x = color.rgb2hsv(_float(image))
    x[:, :, 0] = np.mod(x[:, :, 0] + c, 1.0)
    return _uint8(color.hsv2rgb(x))


INKS = [(26, 140, 64), (31, 64, 191), (26, 26, 31), (204, 31, 38)]


def markup(image, c, seed=0):
    """Random pen strokes (PIL polylines) blended at opacity alpha."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    pil = Image.fromarray(np.asarray(image)).convert("RGBA")
    width, height = pil.size
    layer = Image.new("RGBA", pil.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    ink = INKS[rng.integers(len(INKS))]
    for _ in range(int(c["strokes"])):
        points = [(float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(6)]
        stroke = max(1, int(round(c["width"] * min(width, height) * rng.uniform(0.8, 1.2))))
        draw.line(points, fill=(*ink, int(255 * c["alpha"])), width=stroke, joint="curve")
    return np.asarray(Image.alpha_composite(pil, layer).convert("RGB"))


CORRUPTIONS = {
    "brightness": brightness, "contrast": contrast, "gaussian_blur": gaussian_blur, "resolution": resolution,
    "saturation": saturation, "hue": hue, "markup": markup,
}


# ---- the per-variant DataLoader pipeline ----------------------------------------------------


class CorruptedImages:
    """torch Dataset: (image tensor after the model's transforms, dataset index)."""

    def __init__(self, dataset, indices, prep, corruption=None, parameter=None, stage="pre", corrupt=None) -> None:
        from torchvision import transforms

        self.dataset, self.indices = dataset, np.asarray(indices)
        self.corruption, self.parameter, self.stage = corruption, parameter, stage
        self.corrupt = set(np.asarray(corrupt).tolist()) if corrupt is not None else None
        mode = {"bicubic": transforms.InterpolationMode.BICUBIC, "bilinear": transforms.InterpolationMode.BILINEAR}
        size = prep.input_size
        self.resize = None
        if tuple(dataset.native_size) != tuple(size):
            steps = [transforms.Resize(prep.resize_size or max(size), interpolation=mode.get(prep.resize_mode))]
            if prep.crop == "center":
                steps.append(transforms.CenterCrop(size))
            self.resize = transforms.Compose(steps)
        self.finish = transforms.Compose([transforms.ToTensor(), transforms.Normalize(prep.mean, prep.std)])

    def __len__(self) -> int:
        return len(self.indices)

    def _apply(self, image, index: int):
        from PIL import Image

        function = CORRUPTIONS[self.corruption]
        if self.corruption == "markup":
            return Image.fromarray(function(image, self.parameter, seed=index))
        return Image.fromarray(function(image, self.parameter))

    def __getitem__(self, position: int):
        from PIL import Image

        index = int(self.indices[position])
        image = Image.fromarray(self.dataset.read_image(index))
        apply = self.corruption is not None and (self.corrupt is None or index in self.corrupt)
        if apply and self.stage == "pre":
            image = self._apply(image, index)
        if self.resize is not None:
            image = self.resize(image)
        if apply and self.stage == "post":
            image = self._apply(image, index)
        return self.finish(image), index


def embed(encoder, dataset_view, batch_size: int, device, out: np.ndarray, rows: dict[int, int]) -> None:
    import torch
    from torch.utils.data import DataLoader

    with torch.no_grad():
        for images, indices in DataLoader(dataset_view, batch_size=batch_size, shuffle=False, num_workers=0):
            features = encoder.encode_image(images.to(device)).float().cpu().numpy()
            out[[rows[i] for i in indices.tolist()]] = features


def run_reference(spec, mode: str = "per-variant-dataset") -> dict:
    """The reference sweep + robustpath's tasks; returns counts (the caller times it)."""
    import torch

    from robustpath.data import load_dataset
    from robustpath.run.runner import load_preset_or_fail
    from robustpath.models import load_encoder
    from robustpath.tasks import TaskContext, create_task
    from robustpath.variants import plan_variants

    device = torch.device("cpu" if spec.device in ("auto", "cpu") and not torch.cuda.is_available() else "cuda")
    dataset = load_dataset(spec.data, test_fraction=spec.test_fraction, seed=spec.seed)
    encoder = load_encoder(spec.model).to(device)
    preset = load_preset_or_fail(spec.preset)
    variants = plan_variants(preset, spec.corruptions, spec.severities, spec.stage)
    prep = encoder.preprocessing
    test, train = dataset.indices("test"), dataset.indices("train")
    everything = np.arange(len(dataset))
    dim = encoder.embed_dim
    clean = np.zeros((len(dataset), dim), dtype=np.float32)
    embed(encoder, CorruptedImages(dataset, everything, prep), spec.batch_size, device, clean,
          {int(i): int(i) for i in everything})
    forwards = len(dataset)
    corrupted = {}
    for variant in variants:
        parameter = preset.corruptions[variant.corruption].values[variant.severity - 1]
        view_indices = everything if mode == "per-variant-dataset" else test
        view = CorruptedImages(dataset, view_indices, prep, variant.corruption, parameter, variant.stage, corrupt=test)
        features = np.zeros((len(dataset), dim), dtype=np.float32)
        embed(encoder, view, spec.batch_size, device, features, {int(i): int(i) for i in view_indices})
        forwards += len(view_indices)
        corrupted[variant.key] = features[test]
    context = TaskContext(
        train_embeddings=clean[train], train_labels=dataset.labels[train], test_labels=dataset.labels[test],
        class_names=dataset.classes, seed=spec.seed, clean_test_embeddings=clean[test],
    )
    for name in ("linear_probe", "retrieval"):
        if name not in spec.tasks:
            continue
        task = create_task(name)
        task.fit(context)
        task.evaluate(context.clean_test_embeddings)
        for embeddings in corrupted.values():
            task.evaluate(embeddings)
    return {"forward_images": forwards, "variants": len(variants)}
