"""Tiny random checkpoints for every model source, built in-process once per session.

Import the fixtures into a test module (``from model_fixtures import tiny_open_clip``);
each checkpoint is built at most once per session whichever module asks first.
No network: the CLIP tokenizer is rebuilt from the BPE vocabulary that ships
inside open_clip.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
OPEN_CLIP_ARCH = "robustpath-tiny-clip"
OPEN_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
TIMM_ARCH = "robustpath_tiny_vit"
_BUILT: dict[str, object] = {}


@dataclass(frozen=True)
class Checkpoint:
    """A tiny checkpoint on disk: ``spec`` loads it; ``model`` is the library's own object."""

    spec: str
    path: Path
    model: object
    extra: dict


def _once(key: str, factory, tmp_path_factory):
    if key not in _BUILT:
        _BUILT[key] = factory(tmp_path_factory.mktemp(key))
    return _BUILT[key]


def _save_safetensors(model, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}, str(path))
    return path


def register_open_clip_arch(folder: Path) -> None:
    import open_clip

    if OPEN_CLIP_ARCH not in open_clip.list_models():
        (folder / f"{OPEN_CLIP_ARCH}.json").write_text(json.dumps(OPEN_CLIP_CONFIG))
        open_clip.add_model_config(folder)


def build_open_clip(folder: Path) -> Checkpoint:
    """open_clip tiny CLIP: weights as safetensors (ARCH@FILE) and as a local-dir copy."""
    import open_clip
    import torch

    register_open_clip_arch(folder)
    torch.manual_seed(0)
    model = open_clip.create_model(OPEN_CLIP_ARCH, pretrained=None, load_weights=False,
                                   pretrained_text=False).eval()
    weights = _save_safetensors(model, folder / "tiny-clip.safetensors")
    local = folder / "local-dir"
    local.mkdir()
    preprocess = {"mean": [0.5, 0.4, 0.45], "std": [0.2, 0.25, 0.3], "interpolation": "bicubic",
                  "resize_mode": "shortest"}
    (local / "open_clip_config.json").write_text(json.dumps({"model_cfg": OPEN_CLIP_CONFIG,
                                                             "preprocess_cfg": preprocess}))
    _save_safetensors(model, local / "open_clip_model.safetensors")
    return Checkpoint(f"open_clip:{OPEN_CLIP_ARCH}@{weights}", weights, model,
                      {"local_dir": local, "local_preprocess": preprocess})


def write_clip_tokenizer(folder: Path):
    """A CLIPTokenizer saved to ``folder``, built from open_clip's shipped BPE vocabulary."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    simple = SimpleTokenizer()
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}  # open_clip's own names
    vocab = {rename.get(token, token): index for token, index in simple.encoder.items()}
    merges = [tuple(pair) for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda item: item[1])]
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def build_hf_clip(folder: Path) -> Checkpoint:
    """transformers CLIPModel (tiny) + CLIPImageProcessor + offline CLIPTokenizer, save_pretrained."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                         pad_token_id=49407),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=24,
    )
    model = CLIPModel(config).eval()
    model.save_pretrained(str(folder))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(str(folder))
    tokenizer = write_clip_tokenizer(folder)
    return Checkpoint(f"hf:{folder}", folder, model, {"processor": processor, "tokenizer": tokenizer})


def build_hf_dinov2(folder: Path, resize: int = 32) -> Checkpoint:
    """transformers Dinov2Model (tiny) + BitImageProcessor (shorter side ``resize``, crop 32)."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          image_size=32, patch_size=8)
    model = Dinov2Model(config).eval()
    model.save_pretrained(str(folder))
    processor = BitImageProcessor(size={"shortest_edge": resize}, crop_size={"height": 32, "width": 32},
                                  resample=3, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
                                  do_convert_rgb=True)
    processor.save_pretrained(str(folder))
    return Checkpoint(f"hf:{folder}", folder, model, {"processor": processor})


def register_timm_arch() -> None:
    """A tiny registered timm ViT (32 px, patch 8, width 32, depth 1), crop_pct 1, bicubic."""
    import timm
    from timm.models import build_model_with_cfg, register_model
    from timm.models._registry import generate_default_cfgs
    from timm.models.vision_transformer import VisionTransformer

    if timm.is_model(TIMM_ARCH):
        return
    cfg = dict(url="", num_classes=0, input_size=(3, 32, 32), pool_size=None, crop_pct=1.0,
               interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD, first_conv="patch_embed.proj",
               classifier="head")
    globals()["default_cfgs"] = generate_default_cfgs({f"{TIMM_ARCH}.untrained": cfg})

    def robustpath_tiny_vit(pretrained=False, **kwargs):
        args = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
        return build_model_with_cfg(VisionTransformer, TIMM_ARCH, pretrained, **dict(args, **kwargs))

    robustpath_tiny_vit.__module__ = __name__
    register_model(robustpath_tiny_vit)  # reads default_cfgs from this module


def build_timm(folder: Path) -> Checkpoint:
    """timm tiny ViT: weights as safetensors (NAME@FILE) and a Hub-layout local-dir copy."""
    import timm
    import torch
    from timm.models._hub import save_for_hf

    register_timm_arch()
    torch.manual_seed(0)
    model = timm.create_model(TIMM_ARCH, pretrained=False, num_classes=0).eval()
    weights = _save_safetensors(model, folder / "tiny-vit.safetensors")
    local = folder / "local-dir"
    save_for_hf(model, str(local), safe_serialization="both", model_args=dict(img_size=32, patch_size=8, embed_dim=32, depth=1,
                                                              num_heads=2))
    return Checkpoint(f"timm:{TIMM_ARCH}@{weights}", weights, model, {"local_dir": local})


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory) -> Checkpoint:
    return _once("open_clip", build_open_clip, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_hf_clip(tmp_path_factory) -> Checkpoint:
    return _once("hf_clip", build_hf_clip, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_hf_dinov2(tmp_path_factory) -> Checkpoint:
    return _once("hf_dinov2", build_hf_dinov2, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_hf_dinov2_resized(tmp_path_factory) -> Checkpoint:
    """As DINOv2's own processor does (256 -> 224): shorter side 36, then a 32 px centre crop."""
    return _once("hf_dinov2_resized", lambda folder: build_hf_dinov2(folder, resize=36), tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_timm(tmp_path_factory) -> Checkpoint:
    return _once("timm", build_timm, tmp_path_factory)


def build_fine_tuned(folder: Path, base_dir: Path) -> Checkpoint:
    """A fine-tuned set (one setting, one epoch on 8 random images) of the tiny CustomViT at ``base_dir``."""
    import numpy as np
    import torch

    from robustpath.models import load_encoder
    from robustpath.models.finetune import FineTuneSpec, fine_tune
    from robustpath.models.finetuned import save_fine_tuned_set

    images = torch.rand(8, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    tuned = fine_tune(load_encoder(f"customvit:{base_dir}"), images, np.repeat([0, 1], 4), 2,
                      FineTuneSpec(epochs=1, batch_size=4), device=torch.device("cpu"))
    target = save_fine_tuned_set([("fine_tune", {"samples_per_class": 0, "repeat": 0}, tuned)], folder / "set",
                                 base_model=f"customvit:{base_dir}", pooling=None, class_names=("a", "b"), request={})
    return Checkpoint(f"finetuned:{target}", target, tuned, {})


@pytest.fixture(scope="session")
def tiny_fine_tuned(tmp_path_factory, tiny_customvit_dir) -> Checkpoint:
    return _once("fine_tuned", lambda folder: build_fine_tuned(folder, tiny_customvit_dir), tmp_path_factory)
