"""The model cards' usage snippets, written out by hand as the reference for the recipe tests.

Nothing here reads robustpath's recipes: each card gives the repository, the library call
and its keyword arguments, the config.json the repository holds, the card's transform and
the card's embedding, and the model size the card or paper states.  ``build_replica``
makes a tiny randomly initialised copy of the exact architecture (same block types and
options; width 48, depth 2, 4 heads) and saves it in the layout the Hub uses for that
model; ``put_in_hub_cache`` places it where huggingface_hub looks for a downloaded copy
(``install_replica`` does both; the ``hub_cache`` fixture redirects the Hub to an empty
local cache; ``shrink_alias`` gives an alias's recipe the replica's width).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
OPTIMUS = ((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517))
HIBOU = ((0.7068, 0.5755, 0.722), (0.195, 0.2316, 0.1816))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
SMALL = {"embed_dim": 48, "depth": 2, "num_heads": 4}  # 48 keeps SwiGLU's packed hidden width even
SMALL_HF = {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96}


def swiglu() -> dict:
    import torch
    from timm.layers import SwiGLUPacked

    return {"mlp_layer": SwiGLUPacked, "act_layer": torch.nn.SiLU}


def cls_plus_mean(first_patch: int) -> Callable:
    """The Virchow / H0-mini / Midnight snippet: class token, then the mean of output[:, first_patch:]."""
    import torch

    return lambda tokens: torch.cat([tokens[:, 0], tokens[:, first_patch:].mean(1)], dim=-1)


def torchvision_transform(size: int, mean_std, *, resize: int | None = None, interpolation: str = "bilinear",
                          crop: bool = True, resize_to_square: bool = False):
    """Resize(resize or size[, interpolation]) [+ CenterCrop(size)] + ToTensor + Normalize, as the cards write it."""
    from torchvision import transforms as T

    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[interpolation]
    steps = [T.Resize((size, size) if resize_to_square else (resize or size), interpolation=mode)]
    if crop:
        steps.append(T.CenterCrop(size))
    return T.Compose(steps + [T.ToTensor(), T.Normalize(*mean_std)])


def tiles(mean_std):
    """H-optimus' transform: ToTensor + Normalize, no resize (224 px tiles)."""
    from torchvision import transforms as T

    return T.Compose([T.ToTensor(), T.Normalize(*mean_std)])


@dataclass
class TimmCard:
    repo: str
    architecture: str
    config_args: dict  # model_args of the repository's config.json (full size)
    card_kwargs: Callable[[], dict]  # the card's timm.create_model keyword arguments
    pretrained_cfg: dict  # the data settings of the repository's config.json
    transform: Callable | None  # None: timm's transform from the repository config, as the card does
    embedding: Callable  # (model, x) -> the card's embedding
    prefix_tokens: int  # class + register tokens, from the card
    width: int
    millions: float  # parameters stated on the card or in the paper
    weights: str = "model.safetensors"
    mean_std: tuple = IMAGENET
    library: str = "timm"
    tiles_only: bool = False  # the card's transform has no resize: it is checked on 224 px tiles only
    remote_code: bool = False


@dataclass
class HFCard:
    repo: str
    model_class: str
    config: dict  # the config.json architecture facts (full size)
    load_kwargs: dict
    processor: Callable | None  # () -> the repository's image processor, None when the card uses torchvision
    transform: Callable | None
    embedding: Callable  # (outputs) -> the card's embedding
    prefix_tokens: int
    width: int
    millions: float
    mean_std: tuple = IMAGENET
    remote_code: bool = False
    library: str = "hf"
    extra: dict = field(default_factory=dict)


def _model(model, x):
    """``model(x)``: the class token for models whose config pools with global_pool="token"."""
    return model(x)


def _timm(repo, architecture, config_args, card_kwargs, data, transform, embedding, prefix, width, millions, **kw):
    mean_std = kw.pop("mean_std", IMAGENET)
    pretrained_cfg = {"input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "center",
                      "mean": list(mean_std[0]), "std": list(mean_std[1]), "num_classes": 0, "first_conv": "patch_embed.proj",
                      "classifier": "head", **data}
    return TimmCard(repo, architecture, config_args, card_kwargs, pretrained_cfg, transform, embedding, prefix, width,
                    millions, mean_std=mean_std, **kw)


_VIRCHOW = {"img_size": 224, "init_values": 1e-5, "num_classes": 0, "mlp_ratio": 5.3375, "global_pool": "",
            "dynamic_img_size": True}
_UNI2 = {"img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5, "embed_dim": 1536,
         "mlp_ratio": 2.66667 * 2, "num_classes": 0, "no_embed_class": True, "reg_tokens": 8, "dynamic_img_size": True}
_OPTIMUS_CONFIG = {"num_classes": 0, "img_size": 224, "global_pool": "token", "init_values": 1e-5,
                   "dynamic_img_size": False}


def _kaiko_card(architecture: str, width: int, prefix: int, millions: float) -> TimmCard:
    return _timm(f"1aurent/{architecture}.kaiko_ai_towards_large_pathology_fms", architecture, {"num_classes": 0},
                 lambda: {"dynamic_img_size": True}, {}, torchvision_transform(224, HALF), _model, prefix, width,
                 millions, mean_std=HALF)


CARDS = {
    "uni": _timm("MahmoodLab/UNI", "vit_large_patch16_224",
                 {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": True},
                 lambda: {"init_values": 1e-5, "dynamic_img_size": True}, {}, torchvision_transform(224, IMAGENET),
                 _model, 1, 1024, 303, weights="pytorch_model.bin"),
    "uni2-h": _timm("MahmoodLab/UNI2-h", "vit_giant_patch14_224", dict(_UNI2),
                    lambda: dict(_UNI2, **swiglu()), {}, torchvision_transform(224, IMAGENET), _model, 9, 1536, 681,
                    weights="pytorch_model.bin"),
    "virchow": _timm("paige-ai/Virchow", "vit_huge_patch14_224", dict(_VIRCHOW), swiglu, {}, None,
                     lambda m, x: cls_plus_mean(1)(m(x)), 1, 1280, 632),
    "virchow2": _timm("paige-ai/Virchow2", "vit_huge_patch14_224", dict(_VIRCHOW, reg_tokens=4), swiglu, {}, None,
                      lambda m, x: cls_plus_mean(5)(m(x)), 5, 1280, 632),
    "h-optimus-0": _timm("bioptimus/H-optimus-0", "vit_giant_patch14_reg4_dinov2", dict(_OPTIMUS_CONFIG),
                         lambda: {"init_values": 1e-5, "dynamic_img_size": False}, {}, tiles(OPTIMUS), _model, 5,
                         1536, 1100, mean_std=OPTIMUS, tiles_only=True),
    "h-optimus-1": _timm("bioptimus/H-optimus-1", "vit_giant_patch14_reg4_dinov2", dict(_OPTIMUS_CONFIG),
                         lambda: {"init_values": 1e-5, "dynamic_img_size": False}, {}, tiles(OPTIMUS), _model, 5,
                         1536, 1100, mean_std=OPTIMUS, tiles_only=True),
    "h0-mini": _timm("bioptimus/H0-mini", "vit_base_patch14_reg4_dinov2",
                     {"num_classes": 0, "img_size": 224, "global_pool": "", "mlp_ratio": 2.66667 * 2}, swiglu, {},
                     None, lambda m, x: cls_plus_mean(m.num_prefix_tokens)(m(x)), 5, 768, 86, mean_std=OPTIMUS),
    "prov-gigapath": _timm("prov-gigapath/prov-gigapath", "vit_giant_patch14_dinov2",
                           {"img_size": 224, "in_chans": 3, "patch_size": 16, "embed_dim": 1536, "depth": 40,
                            "num_heads": 24, "init_values": 1e-5, "mlp_ratio": 5.33334, "num_classes": 0},
                           dict, {}, torchvision_transform(224, IMAGENET, resize=256, interpolation="bicubic"),
                           _model, 1, 1536, 1134, weights="pytorch_model.bin"),
    "kaiko-vits16": _kaiko_card("vit_small_patch16_224", 384, 1, 22),
    "kaiko-vits8": _kaiko_card("vit_small_patch8_224", 384, 1, 22),
    "kaiko-vitb16": _kaiko_card("vit_base_patch16_224", 768, 1, 86),
    "kaiko-vitb8": _kaiko_card("vit_base_patch8_224", 768, 1, 86),
    "kaiko-vitl14": _kaiko_card("vit_large_patch14_reg4_dinov2", 1024, 5, 304),
}


def _vit_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": 224, "width": 224}, resample=2, image_mean=list(IMAGENET[0]),
                             image_std=list(IMAGENET[1]))


def _bit_processor(mean_std):
    def build():
        from transformers import BitImageProcessor

        return BitImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3,
                                 image_mean=list(mean_std[0]), image_std=list(mean_std[1]), do_convert_rgb=True)
    return build


CARDS.update({
    "phikon": HFCard("owkin/phikon", "ViTModel",
                     {"model_type": "vit", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                      "intermediate_size": 3072, "patch_size": 16, "image_size": 224},
                     {"add_pooling_layer": False}, _vit_processor, None, lambda out: out.last_hidden_state[:, 0, :],
                     1, 768, 86),
    "phikon-v2": HFCard("owkin/phikon-v2", "Dinov2Model",
                        {"model_type": "dinov2", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                         "patch_size": 16, "image_size": 224},
                        {}, _bit_processor(IMAGENET), None, lambda out: out.last_hidden_state[:, 0, :], 1, 1024, 300),
    "midnight-12k": HFCard("kaiko-ai/midnight", "Dinov2Model",
                           {"model_type": "dinov2", "hidden_size": 1536, "num_hidden_layers": 40,
                            "num_attention_heads": 24, "patch_size": 14, "image_size": 224, "use_swiglu_ffn": True},
                           {}, None, torchvision_transform(224, HALF),
                           lambda out: cls_plus_mean(1)(out.last_hidden_state), 1, 1536, 1100, mean_std=HALF),
    "hibou-b": HFCard("histai/hibou-b", "AutoModel",
                      {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 14,
                       "image_size": 224, "num_register_tokens": 4},
                      {}, _bit_processor(HIBOU), None, lambda out: out.pooler_output, 5, 768, 86, mean_std=HIBOU,
                      remote_code=True),
    "hibou-l": HFCard("histai/hibou-L", "AutoModel",
                      {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14,
                       "image_size": 224, "num_register_tokens": 4},
                      {}, _bit_processor(HIBOU), None, lambda out: out.pooler_output, 5, 1024, 304, mean_std=HIBOU,
                      remote_code=True),
})

# Stand-in repository code for the Hibou replicas: transformers' DINOv2-with-registers under the
# repository's own class names, loaded through auto_map exactly as Hibou's code is.
HIBOU_CONFIGURATION = '''from transformers import Dinov2WithRegistersConfig


class HibouConfig(Dinov2WithRegistersConfig):
    pass
'''
HIBOU_MODELING = '''from transformers import Dinov2WithRegistersModel

from .configuration_hibou import HibouConfig


class HibouModel(Dinov2WithRegistersModel):
    config_class = HibouConfig
'''


def _small_timm_args(card: TimmCard) -> tuple[dict, dict]:
    """(config.json model_args, card keyword arguments) with the size arguments made tiny."""
    config = dict(card.config_args, **SMALL)
    kwargs = {k: SMALL.get(k, v) for k, v in card.card_kwargs().items()}
    return config, kwargs


def build_timm_replica(card: TimmCard, folder: Path):
    """A tiny random model of the card's architecture, saved as config.json + weights (the Hub layout)."""
    import timm
    import torch
    from safetensors.torch import save_file

    config_args, kwargs = _small_timm_args(card)
    torch.manual_seed(0)
    model = timm.create_model(card.architecture, pretrained=False, **dict(config_args, **kwargs)).eval()
    folder.mkdir(parents=True)
    config = {"architecture": card.architecture, "num_classes": 0, "num_features": SMALL["embed_dim"],
              "global_pool": config_args.get("global_pool", "token"), "model_args": config_args,
              "pretrained_cfg": card.pretrained_cfg}
    (folder / "config.json").write_text(json.dumps(config))
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if card.weights.endswith(".safetensors"):
        save_file(state, str(folder / card.weights))
    else:
        torch.save(state, folder / card.weights)
    return model


def build_hf_replica(card: HFCard, folder: Path):
    """A tiny random transformers model of the card's class, save_pretrained (+ the image processor)."""
    import torch
    import transformers

    torch.manual_seed(0)
    facts = {k: v for k, v in card.config.items() if k != "model_type"}
    facts.update(SMALL_HF)
    if card.remote_code:
        config = transformers.Dinov2WithRegistersConfig(**facts)
        model = transformers.Dinov2WithRegistersModel(config).eval()
    else:
        config_class = {"ViTModel": transformers.ViTConfig, "Dinov2Model": transformers.Dinov2Config}[card.model_class]
        model = getattr(transformers, card.model_class)(config_class(**facts), **card.load_kwargs).eval()
    model.save_pretrained(str(folder))
    if card.processor is not None:
        card.processor().save_pretrained(str(folder))
    if card.remote_code:  # repository code loads its own key names: no legacy-name conversion on load
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"),
                  metadata={"format": "pt"})
        (folder / "configuration_hibou.py").write_text(HIBOU_CONFIGURATION)
        (folder / "modeling_hibou.py").write_text(HIBOU_MODELING)
        saved = json.loads((folder / "config.json").read_text())
        saved.update(architectures=["HibouModel"],
                     auto_map={"AutoConfig": "configuration_hibou.HibouConfig",
                               "AutoModel": "modeling_hibou.HibouModel"})
        (folder / "config.json").write_text(json.dumps(saved))
    return model


def put_in_hub_cache(cache: Path, repo: str, folder: Path) -> Path:
    """Copy ``folder`` into ``cache`` as huggingface_hub stores a downloaded snapshot of ``repo``."""
    root = cache / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode("utf-8")).hexdigest()
    snapshot = root / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


def install_replica(card, cache: Path, folder: Path) -> Path:
    """Build the card's tiny replica under ``folder`` and place it in the Hub cache ``cache``; its snapshot."""
    build = build_timm_replica if card.library == "timm" else build_hf_replica
    build(card, folder / "replica")
    return put_in_hub_cache(cache, card.repo, folder / "replica")


def shrink_alias(alias_name: str, monkeypatch):
    """Replace the alias's recipe by the same recipe at the replica's width (size arguments only)."""
    import dataclasses

    from robustpath.models import registry

    alias = registry._ALIASES[alias_name]
    small = {**SMALL, "hidden_size": SMALL["embed_dim"]}
    kwargs = tuple((key, small.get(key, value)) for key, value in alias.recipe.model_kwargs)
    shrunk = dataclasses.replace(alias.recipe, model_kwargs=kwargs, width=SMALL["embed_dim"])
    monkeypatch.setitem(registry._ALIASES, alias_name, dataclasses.replace(alias, recipe=shrunk))
    return shrunk


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache that huggingface_hub, timm and robustpath all read, HF_HUB_OFFLINE set.
    The copies of repository code that transformers makes (Hibou's stand-in) are removed afterwards."""
    from huggingface_hub import constants
    from transformers import dynamic_module_utils

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield cache
    modules = Path(dynamic_module_utils.HF_MODULES_CACHE) / "transformers_modules"
    for repo in (card.repo for card in CARDS.values() if card.remote_code):
        shutil.rmtree(modules / f"_{hashlib.sha1(repo.encode('utf-8')).hexdigest()}", ignore_errors=True)
