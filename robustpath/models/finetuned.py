"""Fine-tuned model sets: ``finetuned:DIR`` (fine_tune.json + one safetensors file per setting).

A set holds the fine-tuned copies of one base model, one per data-scale setting (all
training images; N per class, repeat r), each with its linear head.  Layout::

    DIR/fine_tune.json                          base model spec, pooling, classes, one entry per setting
    DIR/fine_tune.safetensors                   "encoder.<key>" (the base model's state dict) + "head.weight/bias"
    DIR/fine_tune-16-per-class-0.safetensors    ... one file per setting

Loading rebuilds the base model from its spec (never with remote code), loads each
setting's weights strictly (mismatched keys are named) and serves the embeddings of
all settings side by side: ``encode_image`` returns (B, settings × D), setting i in
columns [i·D, (i+1)·D).  ``classifier_heads`` gives each setting's head and column
slice; the ``fine_tune`` task (robustpath.tasks.fine_tune) applies them.  A set with
one setting is an ordinary image encoder for every task.  The text tower is not used:
fine-tuned image embeddings no longer match it (``has_text`` is False).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustpath.errors import ModelError, UsageError
from robustpath.models.folder_json import read_folder_json

MANIFEST_FILE = "fine_tune.json"
FORMAT = "robustpath-fine-tuned"


@dataclass(frozen=True)
class ClassifierHead:
    """One setting's head: logits = embeddings[:, start:stop] @ weight.T + bias (float64)."""

    start: int
    stop: int
    weight: np.ndarray  # (K, D)
    bias: np.ndarray  # (K,)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, total D) embeddings → (N, K) float64 logits."""
        return np.asarray(embeddings, dtype=np.float64)[:, self.start:self.stop] @ self.weight.T + self.bias


def weights_file_name(key: str) -> str:
    """'fine_tune@16-per-class#0' → 'fine_tune-16-per-class-0.safetensors'."""
    return key.replace("@", "-").replace("#", "-") + ".safetensors"


def save_fine_tuned_set(settings: list[tuple[str, dict, object]], out: Path, *, base_model: str,
                        pooling: str | None, class_names: tuple[str, ...], request: dict) -> Path:
    """Write the set into a new hidden folder beside ``out``, then swap it in whole.

    settings: (task key, {"samples_per_class", "repeat"}, robustpath.models.finetune.FineTuned).
    """
    from safetensors.torch import save

    from robustpath.util.atomic import ensure_writable_dir, replace_dir, write_bytes_atomic, write_json_atomic

    out = Path(out)
    ensure_writable_dir(out.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent))
    try:
        entries = []
        for key, scale, tuned in settings:
            import torch

            state = {f"encoder.{k}": v.detach().cpu().contiguous() for k, v in tuned.encoder.model.state_dict().items()}
            state["head.weight"] = torch.from_numpy(tuned.head_weight.copy())
            state["head.bias"] = torch.from_numpy(tuned.head_bias.copy())
            write_bytes_atomic(staging / weights_file_name(key), save(state))
            entries.append({"key": key, **scale, "weights": weights_file_name(key), "facts": tuned.facts,
                            "history": tuned.history})
        write_json_atomic(staging / MANIFEST_FILE, {
            "format": FORMAT, "format_version": 1, "base_model": base_model, "pooling": pooling,
            "class_names": list(class_names), "settings": entries, "request": request})
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def load_manifest(folder: Path) -> dict:
    """Read and check DIR/fine_tune.json; ModelError names the problem."""
    path = Path(folder) / MANIFEST_FILE
    manifest = read_folder_json(path, f"a fine-tuned model folder needs {MANIFEST_FILE}")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"'{path}': expected \"format\": \"{FORMAT}\"")
    settings = manifest.get("settings")
    if not isinstance(manifest.get("base_model"), str) or not isinstance(settings, list) or not settings:
        raise ModelError(f"'{path}': needs \"base_model\" (a model spec) and a non-empty \"settings\" list")
    for entry in settings:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not isinstance(entry.get("weights"), str):
            raise ModelError(f"'{path}': every setting needs \"key\" and \"weights\"")
        if Path(entry["weights"]).name != entry["weights"]:
            raise ModelError(f"'{path}': weights '{entry['weights']}' must be a file name inside the folder")
    return manifest


def _load_state(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise ModelError(f"'{path}' not found") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"'{path}' is not a readable safetensors file: {exc}") from None


class FineTunedEncoder:
    """Encoder over a fine-tuned set (see the module docstring)."""

    has_text = False

    def __init__(self, argument: str, name: str) -> None:
        import copy

        from robustpath.models.hub import state_dict_problems
        from robustpath.models.registry import load_encoder

        self.path = Path(argument).expanduser()
        if not self.path.is_dir():
            raise ModelError(f"model '{name}': folder '{argument}' not found")
        self.manifest = load_manifest(self.path)
        if self.manifest["base_model"].startswith("finetuned:"):
            raise ModelError(f"'{self.path / MANIFEST_FILE}': a fine-tuned set cannot be based on another one")
        base = load_encoder(self.manifest["base_model"], pooling=self.manifest.get("pooling"))
        # "finetuned:<base model>@<folder>" (the folder that holds the set, or its parent for OUT/fine-tuned)
        where = self.path.resolve().parent.name if self.path.resolve().name == "fine-tuned" else self.path.resolve().name
        self.name, self.preprocessing, self.base_name = f"finetuned:{base.name}@{where}", base.preprocessing, base.name
        self.base_facts = base.describe()
        self.members, self.classifier_heads = [], {}
        width = base.embed_dim
        for index, entry in enumerate(self.manifest["settings"]):
            weights = self.path / entry["weights"]
            state = _load_state(weights)
            member = base if index == len(self.manifest["settings"]) - 1 else copy.deepcopy(base)
            encoder_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
            problems = state_dict_problems(member.model.state_dict(), encoder_state)
            head = (state.get("head.weight"), state.get("head.bias"))
            if problems or head[0] is None or head[1] is None or tuple(head[0].shape)[1:] != (width,):
                raise ModelError(f"'{weights}' does not fit base model '{self.manifest['base_model']}': "
                                 + ("; ".join(problems) or "head.weight / head.bias missing or of the wrong width"))
            member.model.load_state_dict({k: v.float() for k, v in encoder_state.items()}, strict=True)
            member.model.eval()
            self.members.append(member)
            self.classifier_heads[entry["key"]] = ClassifierHead(
                index * width, (index + 1) * width, head[0].double().numpy(), head[1].double().numpy())
        self.embed_dim = width * len(self.members)

    def to(self, device) -> "FineTunedEncoder":
        for member in self.members:
            member.to(device)
        return self

    def encode_image(self, images):
        import torch

        with torch.no_grad():
            return torch.cat([member.image_features(images) for member in self.members], dim=-1)

    def encode_text(self, texts: list[str]):
        raise ModelError(f"model '{self.name}' has no text encoder (its image tower was fine-tuned)")

    def describe(self) -> dict:
        import hashlib

        from robustpath.models.hub import file_sha256

        files = {entry["key"]: file_sha256(self.path / entry["weights"]) for entry in self.manifest["settings"]}
        combined = hashlib.sha256(json.dumps([self.manifest["base_model"], files], sort_keys=True).encode()).hexdigest()
        return {"source": "finetuned", "path": str(self.path), "base_model": self.manifest["base_model"],
                "base": {k: v for k, v in self.base_facts.items() if k != "path"},
                "settings": files, "weights_sha256": combined, "patch_size": self.base_facts.get("patch_size"),
                "embed_dim": self.embed_dim, "preprocessing": self.preprocessing.as_dict()}


def check_fine_tuned_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or a fine-tuned set already there unless ``overwrite``."""
    out = Path(out)
    if os.path.lexists(out) and (out.is_symlink() or not out.is_dir()):
        raise UsageError(f"'{out}' exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"'{out}' already holds files; pass --overwrite to replace them or choose another --out")
