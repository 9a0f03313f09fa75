"""CustomViT checkpoints: ``config.json`` + ``model.safetensors`` in one folder.

Loading is safe by construction: the config is JSON, the weights are
safetensors (no pickle), and the state dict must match the architecture
exactly; mismatches are reported by key name.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.errors import ModelError
from robustpath.models.base import Preprocessing
from robustpath.models.folder_json import read_folder_json

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from robustpath.models.customvit_net import CustomViT

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_META_KEYS = {"architecture", "format_version"}


def is_customvit_dir(path: Path) -> bool:
    """True when ``path`` holds a CustomViT config and safetensors weights."""
    config = Path(path) / CONFIG_FILE
    if not (config.is_file() and (Path(path) / WEIGHTS_FILE).is_file()):
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("architecture") == "customvit"
    except (OSError, ValueError, AttributeError):
        return False


def load_customvit_config(path: Path):
    """Read and validate ``config.json``; raises ModelError naming the bad key."""
    from dataclasses import fields

    from robustpath.models.customvit_net import CustomViTConfig

    config_path = Path(path) / CONFIG_FILE
    raw = read_folder_json(config_path, f"a CustomViT folder needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    if not isinstance(raw, dict) or raw.get("architecture") != "customvit":
        raise ModelError(f"'{config_path}': expected \"architecture\": \"customvit\"")
    known = {f.name for f in fields(CustomViTConfig)}
    unknown = sorted(set(raw) - known - _META_KEYS)
    if unknown:
        raise ModelError(f"'{config_path}': unknown key(s) {unknown}; expected some of {sorted(known)}")
    values = {k: v for k, v in raw.items() if k in known}
    for key in ("class_names", "mean", "std"):
        if key in values:
            values[key] = tuple(values[key])
    try:
        config = CustomViTConfig(**values)
        config.validate()
    except (TypeError, ValueError) as exc:
        raise ModelError(f"'{config_path}': {exc}") from None
    return config


def load_customvit(path: Path) -> "CustomViT":
    """Build the network from ``path`` and load its weights strictly (eval mode, CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from robustpath.models.customvit_net import CustomViT
    from robustpath.models.hub import state_dict_problems

    path = Path(path)
    config = load_customvit_config(path)
    weights = path / WEIGHTS_FILE
    try:
        state = load_file(str(weights))
    except FileNotFoundError:
        raise ModelError(f"'{weights}' not found") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"'{weights}' is not a readable safetensors file: {exc}") from None
    model = CustomViT(config)
    problems = state_dict_problems(model.state_dict(), state)
    if problems:
        raise ModelError(f"'{weights}' does not fit its config.json: " + "; ".join(problems))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()


def save_customvit(model: "CustomViT", path: Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` atomically into ``path``."""
    from safetensors.torch import save

    from robustpath.util.atomic import write_bytes_atomic, write_json_atomic

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes_atomic(path / WEIGHTS_FILE, save(state))
    write_json_atomic(path / CONFIG_FILE, model.config.to_json_dict())
    return path


def customvit_preprocessing(config) -> Preprocessing:
    """A CustomViT takes the whole image scaled to its square input (bicubic), no crop."""
    return Preprocessing(input_size=(config.image_size, config.image_size), mean=tuple(config.mean),
                         std=tuple(config.std), resize_mode="bicubic", crop="none")


class CustomViTEncoder:
    """Encoder adapter around a CustomViT checkpoint folder."""

    has_text = False

    def __init__(self, path: Path, spec: str) -> None:
        self.path = Path(path)
        self.spec = spec
        self.model = load_customvit(self.path)
        config = self.model.config
        self.name = spec
        self.embed_dim = config.width
        self.preprocessing = customvit_preprocessing(config)

    def to(self, device: "torch.device") -> "CustomViTEncoder":
        self.model.to(device)
        return self

    def encode_image(self, images: "torch.Tensor") -> "torch.Tensor":
        return self.model.forward_features(images)

    def image_features(self, images: "torch.Tensor") -> "torch.Tensor":
        """encode_image with gradients (fine-tuning)."""
        return self.model.forward_features(images)

    def encode_text(self, texts: list[str]) -> "torch.Tensor":
        raise ModelError(f"model '{self.name}' has no text encoder")

    def describe(self) -> dict:
        from robustpath.models.hub import file_sha256

        config = self.model.config
        return {
            "source": "customvit",
            "path": str(self.path),
            "weights_sha256": file_sha256(self.path / WEIGHTS_FILE),
            "architecture": {k: getattr(config, k) for k in ("image_size", "patch_size", "width", "depth", "heads")},
            "patch_size": int(config.patch_size),
            "preprocessing": self.preprocessing.as_dict(),
        }
