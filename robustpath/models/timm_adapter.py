"""timm image models (image only): registered architectures, Hub repositories, local copies.

``timm:NAME@FILE`` builds NAME (``num_classes=0``) and loads FILE; ``timm:NAME``
fetches the pretrained weights timm names for it (``NAME.TAG`` picks a tag)
through the fail-fast Hub helper; ``timm:hf-hub:ORG/REPO`` and
``timm:local-dir:DIR`` use the repository's config.json (architecture,
model_args, pretrained_cfg; older configs such as UNI's keep img_size,
patch_size, init_values and dynamic_img_size at the top level: used too).  Weights are loaded here, strictly (safetensors or
weights-only torch.load); classifier weights are dropped, since the head is
removed.  ``model_kwargs`` (from an alias, e.g. UNI's init_values and
dynamic_img_size) go to ``timm.create_model``.

Preprocessing comes from ``timm.data.resolve_data_config``: the shorter side
is resized to ``floor(input / crop_pct)`` and the centre ``input`` square is
cropped, as timm's eval transform does.

Pooling: None keeps the model's own head (``global_pool``, the class token for
most ViTs); "cls", "mean" (patch tokens, prefix tokens excluded) and
"cls+mean" read the token sequence of ``forward_features`` (ViT-style models).

A model card's ``recipe`` (the foundation-model aliases) adds the card's keyword
arguments (layer classes such as SwiGLUPacked included), checks that the model built is
the recipe's architecture (name, width, class + register tokens), uses the card's
preprocessing (noting where the repository's timm config differs) and the card's
pooling unless one is chosen.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.errors import ModelError, UsageError
from robustpath.models import card, hub

if TYPE_CHECKING:  # pragma: no cover
    import torch

_WEIGHT_FILES = ["model.safetensors", "pytorch_model.bin"]
# constructor arguments that older Hub configs (e.g. MahmoodLab/UNI) keep at the top level, not in model_args
_TOP_LEVEL_MODEL_ARGS = ("img_size", "patch_size", "init_values", "dynamic_img_size")
_INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


def preprocessing_from_timm(data_cfg: dict, notes: list[str]):
    """Our Preprocessing from a timm data config (input_size, interpolation, crop_pct, crop_mode, mean, std)."""
    _, height, width = data_cfg["input_size"]
    interpolation = data_cfg.get("interpolation", "bicubic")
    if interpolation not in _INTERPOLATIONS:
        notes.append(f"interpolation '{interpolation}' approximated by bicubic")
        interpolation = "bicubic"
    crop_pct = float(data_cfg.get("crop_pct") or 0.875)
    mode = data_cfg.get("crop_mode") or "center"
    resize_size = math.floor(max(height, width) / crop_pct)
    crop = "center"
    if mode == "squash" and crop_pct == 1.0:
        crop, resize_size = "none", None
    elif mode != "center":
        notes.append(f"timm crop_mode '{mode}' approximated by shorter side {resize_size} + centre crop")
    if height != width and crop == "center":
        notes.append(f"non-square input {height}x{width}: timm resizes each side by crop_pct; approximated")
    return hub.make_preprocessing((height, width), data_cfg["mean"], data_cfg["std"], resize_mode=interpolation,
                                  crop=crop, resize_size=resize_size, notes=notes)


def _weights_for(parts, name: str) -> tuple[str, Path]:
    """(the name or local-dir: spec for timm.create_model, the weights file)."""
    import timm

    if parts.form in ("hf-hub", "local-dir"):
        if parts.form == "hf-hub":
            local_form = "timm:local-dir:DIR"
            config = hub.download_hub_file(parts.target, "config.json", spec=name, local_form=local_form)
            weights = hub.download_first_hub_file(parts.target, _WEIGHT_FILES, spec=name, local_form=local_form)
            return f"local-dir:{config.parent}", weights
        folder = Path(parts.target)
        found = [folder / f for f in _WEIGHT_FILES if (folder / f).is_file()]
        if not found:
            raise ModelError(f"model '{name}': folder '{folder}' has no {' or '.join(_WEIGHT_FILES)}")
        return f"local-dir:{folder}", found[0]
    arch = parts.target
    if not timm.is_model(arch):
        from robustpath.errors import unknown_name_message

        message = unknown_name_message("timm architecture", arch, timm.list_models(), listing="see timm.list_models()")
        raise ModelError(f"model '{name}': {message}")
    kind = parts.weights_kind
    if kind == "file":
        return arch, Path(parts.weights)
    if kind == "hub":
        repo, filename = parts.weights_hub_file()
        return arch, hub.download_hub_file(repo, filename, spec=name, local_form=f"timm:{arch}@DIR/{filename}")
    if kind == "tag":
        raise UsageError(f"model '{name}': timm pretrained tags go in the name (timm:{arch}.{parts.weights}); "
                         "after @ give a weights file")
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        raise ModelError(f"model '{name}': timm has no Hub weights for '{arch}'; pass timm:{arch}@FILE")
    files = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else _WEIGHT_FILES
    return arch, hub.download_first_hub_file(repo, files, spec=name, local_form=f"timm:{arch}@DIR/{files[0]}")


def _top_level_model_args(create_name: str) -> dict:
    """Constructor arguments a config.json without "model_args" keeps at its top level (UNI's layout)."""
    import json

    if not create_name.startswith("local-dir:"):
        return {}
    try:
        config = json.loads((Path(create_name[len("local-dir:"):]) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(config, dict) or "model_args" in config:
        return {}
    return {k: config[k] for k in _TOP_LEVEL_MODEL_ARGS if k in config}


def _drop_classifier(model, state: dict) -> dict:
    """Classifier weights of a checkpoint are not needed: the head is removed (num_classes=0)."""
    names = model.pretrained_cfg.get("classifier") or "head"
    names = (names,) if isinstance(names, str) else tuple(names)
    expected = model.state_dict()
    return {k: v for k, v in state.items() if k in expected or not any(k.startswith(n + ".") for n in names)}


def _plain(value):
    """A keyword value for run.json: classes (SwiGLUPacked, SiLU) by their dotted name."""
    return f"{value.__module__}.{value.__qualname__}" if isinstance(value, type) else value


class TimmEncoder:
    """Encoder adapter around a timm model with its head removed."""

    has_text = False

    def __init__(self, argument: str, name: str, *, pooling: str | None = None, model_kwargs=(), recipe=None) -> None:
        import timm

        from robustpath.models.registry import parse_source_argument

        self.name, self.spec, self.recipe = name, f"timm:{argument}", recipe
        self.pooling = pooling or (recipe.pooling if recipe is not None else None)
        self.pooling_chosen = pooling is not None
        parts = parse_source_argument("timm", argument, name)
        create_name, weights = _weights_for(parts, name)
        card_kwargs = recipe.create_kwargs() if recipe is not None else {}
        self.model_kwargs = {**_top_level_model_args(create_name), **card_kwargs, **dict(model_kwargs)}
        try:
            self.model = timm.create_model(create_name, pretrained=False, **{**self.model_kwargs, "num_classes": 0})
        except (RuntimeError, ValueError, KeyError, TypeError, AssertionError, OSError) as exc:
            raise ModelError(f"model '{name}': timm cannot build '{create_name}': {exc}") from None
        if recipe is not None:
            card.check_model_fits(recipe, name, architecture=self.model.pretrained_cfg.get("architecture"),
                                  width=int(self.model.num_features),
                                  prefix_tokens=int(getattr(self.model, "num_prefix_tokens", 0)))
        state = _drop_classifier(self.model, hub.load_state_dict_file(weights, spec=name))
        hub.load_strict(self.model, state, path=weights, spec=name)
        self.model.eval()
        self.weights = Path(weights)
        self.embed_dim = self._pooled_width()
        self.data_config = timm.data.resolve_data_config({}, model=self.model)
        self.notes: list[str] = []
        timm_preprocessing = preprocessing_from_timm(self.data_config, self.notes)
        self.preprocessing = timm_preprocessing if recipe is None else recipe.preprocessing
        if recipe is not None:
            self.notes = card.preprocessing_notes(recipe.preprocessing, timm_preprocessing,
                                                  "the repository's timm config") + list(recipe.notes)

    def _pooled_width(self) -> int:
        """The embedding width under ``self.pooling``; refuses a pooling the model cannot give."""
        if self.pooling is None:
            return int(getattr(self.model, "head_hidden_size", 0) or self.model.num_features)
        prefix = getattr(self.model, "num_prefix_tokens", None)
        if prefix is None:
            raise UsageError(f"model '{self.name}': pooling '{self.pooling}' needs a ViT-style model with token "
                             "outputs; leave pooling unset to use the model's own head")
        if self.pooling != "mean" and getattr(self.model, "cls_token", None) is None:
            raise UsageError(f"model '{self.name}' has no class token; use pooling 'mean'")
        self.prefix_tokens = int(prefix)
        return int(self.model.num_features) * (2 if self.pooling == "cls+mean" else 1)

    def to(self, device: "torch.device") -> "TimmEncoder":
        self.model.to(device)
        return self

    def encode_image(self, images: "torch.Tensor") -> "torch.Tensor":
        """images: (B, 3, H, W) normalised, on the model's device -> (B, embed_dim)."""
        import torch

        with torch.no_grad():
            return self.image_features(images)

    def image_features(self, images: "torch.Tensor") -> "torch.Tensor":
        """encode_image with gradients (fine-tuning)."""
        if self.pooling is None:
            return self.model(images)
        return card.pool_tokens(self.model.forward_features(images), self.pooling, self.prefix_tokens)

    def encode_text(self, texts: list[str]) -> "torch.Tensor":
        raise ModelError(f"model '{self.name}' has no text encoder")

    def describe(self) -> dict:
        import timm

        cfg = self.model.pretrained_cfg
        facts = {"source": "timm", "spec": self.spec, "architecture": cfg.get("architecture"),
                 "pretrained_tag": cfg.get("tag"), "timm_version": timm.__version__,
                 "weights": str(self.weights), "weights_sha256": hub.file_sha256(self.weights),
                 "model_kwargs": {k: _plain(v) for k, v in self.model_kwargs.items()},
                 **card.pooling_facts(self.pooling, self.pooling_chosen, self.recipe),
                 "patch_size": hub.patch_side(getattr(getattr(self.model, "patch_embed", None), "patch_size", None)),
                 "embed_dim": self.embed_dim, "preprocessing": self.preprocessing.as_dict(),
                 "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in self.data_config.items()}}
        if self.recipe is not None:
            facts["recipe"] = self.recipe.describe()
        return hub.add_provenance(facts, self.weights, self.notes)
