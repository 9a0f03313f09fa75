"""Workloads of benchmarks/sweep_speed.py (helpers; not a benchmark on their own).

W1: demo-ihc (400 patches of 40 px) with the shipped customvit-demo (40 px input).
W2: an image folder of demo-ihc patches (40 px PNGs) that a tiny-ViT-sized open_clip
    model (random weights: width 192, 6 layers, patch 16, 224 px input) sees resized
    to 224; the architecture is registered with open_clip.add_model_config from a
    temporary folder and its weights are saved as safetensors, then loaded through
    robustpath's spec ``open_clip:ARCH@FILE``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

W2_ARCH = "robustpath-bench-vit-192"
W2_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 224, "layers": 6, "width": 192, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    model: str
    data: str
    setup: dict  # what a subprocess needs to recreate the model registration


def register_w2_arch(folder: Path) -> None:
    import open_clip

    if W2_ARCH not in open_clip.list_models():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{W2_ARCH}.json").write_text(json.dumps(W2_CONFIG))
        open_clip.add_model_config(folder)


def build_w2_model(folder: Path) -> Path:
    """Random-weight open_clip model saved as safetensors; returns the weights file."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    register_w2_arch(folder / "configs")
    weights = folder / f"{W2_ARCH}.safetensors"
    if not weights.exists():
        torch.manual_seed(0)
        model = open_clip.create_model(W2_ARCH, pretrained=None, load_weights=False, pretrained_text=False).eval()
        save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}, str(weights))
    return weights


def write_patch_folder(root: Path, count: int, *, repeat: int = 1) -> Path:
    """``count`` demo-ihc patches per copy as ROOT/<class>/<id>.png, ``repeat`` copies.

    Copies after the first are shifted by one grey level (clipped), so every file differs.
    """
    import numpy as np
    from PIL import Image

    from robustpath.data import load_dataset

    dataset = load_dataset("demo-ihc")
    order = np.argsort(np.arange(len(dataset)) % 7, kind="stable")[:count]  # spread over the slide
    marker = root / ".complete"
    if marker.exists():
        return root
    for copy in range(repeat):
        for index in order.tolist():
            image = dataset.read_image(index).astype(np.int16) + copy
            folder = root / dataset.classes[dataset.labels[index]]
            folder.mkdir(parents=True, exist_ok=True)
            name = dataset.sample_ids[index].split("/")[-1]
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{name}_c{copy}.png")
    marker.write_text("ok\n")
    return root


def workloads(folder: Path, w2_images: int = 128) -> dict[str, Workload]:
    folder.mkdir(parents=True, exist_ok=True)
    weights = build_w2_model(folder)
    w2_data = write_patch_folder(folder / f"w2-patches-{w2_images}", w2_images)
    return {
        "W1": Workload("W1", "demo-ihc (400 × 40 px) · customvit-demo (40 px input)", "customvit-demo", "demo-ihc", {}),
        "W2": Workload(
            "W2", f"{w2_images} demo patches (40 px) resized to 224 · open_clip ViT width 192, 6 layers, patch 16",
            f"open_clip:{W2_ARCH}@{weights}", str(w2_data), {"open_clip_config_dir": str(folder / "configs")},
        ),
    }


def apply_setup(setup: dict) -> None:
    """Recreate a workload's registrations in a fresh process."""
    if "open_clip_config_dir" in setup:
        register_w2_arch(Path(setup["open_clip_config_dir"]))
