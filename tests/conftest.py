"""Shared fixtures: tiny models built in-process; no network."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_customvit_dir(tmp_path_factory):
    """A randomly initialised CustomViT (40 px, patch 8, width 32, depth 1) saved to disk."""
    import torch

    from robustpath.models.customvit import save_customvit
    from robustpath.models.customvit_net import CustomViT, CustomViTConfig

    torch.manual_seed(0)
    config = CustomViTConfig(
        image_size=40, patch_size=8, width=32, depth=1, heads=2,
        mean=(0.7, 0.6, 0.7), std=(0.15, 0.2, 0.15),
    )
    path = tmp_path_factory.mktemp("tiny-customvit")
    save_customvit(CustomViT(config).eval(), path)
    return path
