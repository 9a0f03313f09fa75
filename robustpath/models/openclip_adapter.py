"""open_clip models (image + text): built-in architectures, Hub repositories, local copies.

The architecture comes from open_clip's config (built in, or open_clip_config.json);
the weights are loaded here, not by open_clip: safetensors or weights-only
torch.load (a pickle that names code is refused), strictly, with missing /
unexpected / mis-shaped keys reported by name.

QuickGELU (open_clip issue #771): OpenAI's CLIP weights, and checkpoints
fine-tuned from them (PathCLIP), were trained with QuickGELU, while open_clip's
plain configs (ViT-B-16) use nn.GELU; loading them under GELU runs without error
and gives wrong embeddings.  QuickGELU is therefore forced when the pretrained
tag says so (``@openai``), when the alias says so (``quick_gelu`` option:
pathclip, openai-clip*), or when the config has it (``ARCH-quickgelu``,
``"quick_gelu": true``).  For a fine-tuned OpenAI checkpoint of your own, use
``open_clip:ARCH-quickgelu@FILE``.  describe() records the choice.
"""
from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.errors import ModelError
from robustpath.models import hub

if TYPE_CHECKING:  # pragma: no cover
    import torch

_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
                 "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth")
_INTERPOLATIONS = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest"}


@contextlib.contextmanager
def _quiet_logging():
    """open_clip logs warnings ("initialized randomly") to the root logger; we load weights ourselves."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _local_weights(folder: Path, spec: str) -> Path:
    for name in _WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    if len(found) == 1:
        return folder / found[0]
    raise ModelError(f"model '{spec}': folder '{folder}' has {'no weights file' if not found else 'several: ' + str(found)}"
                     f"; expected {_WEIGHT_FILES[0]}")


def _local_arch(arch: str, quick_gelu: bool) -> str:
    """The architecture to name in a local-copy hint: ARCH-quickgelu when QuickGELU is forced."""
    import open_clip

    if quick_gelu and not arch.endswith("-quickgelu") and open_clip.get_model_config(f"{arch}-quickgelu"):
        return f"{arch}-quickgelu"
    return arch


def _tag_weights(arch: str, tag: str, tag_cfg: dict, spec: str, local_arch: str) -> Path:
    """Download the weights of an open_clip pretrained tag through the fail-fast Hub helper."""
    location = tag_cfg.get("hf_hub", "")
    if not location:
        raise ModelError(f"model '{spec}': open_clip tag '{tag}' is only downloadable from {tag_cfg.get('url')}; "
                         f"download it and pass open_clip:{arch}@FILE")
    if location.endswith("/"):  # "org/repo/" means the repository's default weights file
        repo, filename = location.rstrip("/"), ""
    else:
        repo, filename = location.rsplit("/", 1)
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    return hub.download_first_hub_file(repo, names, spec=spec, local_form=f"open_clip:{local_arch}@DIR/{names[0]}")


def _adapt_state(model, state: dict) -> dict:
    """open_clip's own checkpoint fix-ups (old text layout, scalar logit_scale), without resizing."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict

    state = convert_state_dict(model, state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    for key in ("logit_scale", "logit_bias"):
        target = getattr(model, key, None)
        if key in state and target is not None and target.ndim != state[key].ndim:
            state[key] = state[key].reshape(target.shape)
    state.pop("text.transformer.embeddings.position_ids", None)
    return state


def preprocessing_from_open_clip(cfg: dict, notes: list[str]):
    """Our Preprocessing from an open_clip preprocess_cfg (size, mean, std, interpolation, resize_mode)."""
    size = cfg["size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    interpolation = _INTERPOLATIONS.get(cfg.get("interpolation", "bicubic"))
    if interpolation is None:
        notes.append(f"interpolation '{cfg['interpolation']}' approximated by bicubic")
        interpolation = "bicubic"
    mode = cfg.get("resize_mode", "shortest")
    crop = "none" if mode == "squash" else "center"
    if mode == "longest":
        notes.append("open_clip resize_mode 'longest' (fit and pad) approximated by shorter side + centre crop")
    if mode == "shortest" and size[0] != size[1]:
        notes.append(f"non-square input {size}: open_clip fits the shorter side per dimension; approximated")
    return hub.make_preprocessing(size, cfg["mean"], cfg["std"], resize_mode=interpolation, crop=crop,
                                  resize_size=None, notes=notes)


def _resolve(parts, name: str, quick_gelu: bool | None) -> dict:
    """Where the architecture and the weights come from, and whether QuickGELU is forced."""
    import open_clip

    if parts.form != "arch":
        if parts.form == "hf-hub":
            local_form = "open_clip:local-dir:DIR"
            config_file = hub.download_hub_file(parts.target, "open_clip_config.json", spec=name,
                                                local_form=local_form)
            weights = hub.download_first_hub_file(parts.target, list(_WEIGHT_FILES[:3]), spec=name,
                                                  local_form=local_form)
            folder = config_file.parent
        else:
            folder = Path(parts.target)
            weights = _local_weights(folder, name)
        try:
            model_cfg = json.loads((folder / "open_clip_config.json").read_text(encoding="utf-8"))["model_cfg"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"model '{name}': '{folder / 'open_clip_config.json'}' has no valid "
                             f"\"model_cfg\" ({exc})") from None
        return dict(create_name=f"local-dir:{folder}", model_cfg=model_cfg, weights=weights, tag_cfg={},
                    quick_gelu=bool(quick_gelu))
    arch, model_cfg = parts.target, open_clip.get_model_config(parts.target)
    if model_cfg is None:
        from robustpath.errors import unknown_name_message

        message = unknown_name_message("open_clip architecture", arch, open_clip.list_models(),
                                       listing="see open_clip.list_models()")
        raise ModelError(f"model '{name}': {message}")
    tag_cfg = open_clip.get_pretrained_cfg(arch, parts.weights) if parts.weights_kind == "tag" else {}
    if parts.weights_kind == "tag" and not tag_cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise ModelError(f"model '{name}': '{parts.weights}' is neither a file nor a pretrained tag of {arch} "
                         f"(tags: {tags})")
    force = bool(tag_cfg.get("quick_gelu")) if quick_gelu is None else bool(quick_gelu)
    if parts.weights_kind == "tag":
        weights = _tag_weights(arch, parts.weights, tag_cfg, name, _local_arch(arch, force))
    elif parts.weights_kind == "hub":
        repo, filename = parts.weights_hub_file()
        weights = hub.download_hub_file(repo, filename, spec=name,
                                        local_form=f"open_clip:{_local_arch(arch, force)}@DIR/{filename}")
    else:
        weights = Path(parts.weights)
    return dict(create_name=arch, model_cfg=model_cfg, weights=weights, tag_cfg=tag_cfg, quick_gelu=force)


def _text_tower_folder(repo: str, download: bool, name: str) -> Path | None:
    """The local folder of a Hugging Face text tower (a path, or the Hub cache; fetched when ``download``)."""
    if Path(repo).expanduser().is_dir():
        return Path(repo).expanduser()
    if download:
        return hub.download_hub_snapshot(repo, ["*.json", "*.txt", "*.model"], spec=name,
                                         local_form="open_clip:local-dir:DIR")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None


def _check_text_tower(model_cfg: dict, download: bool, name: str) -> None:
    """Refuse a Hugging Face text tower whose config names repository code (``auto_map``).

    open_clip loads such towers without a trust_remote_code switch, so their code
    would run (after a prompt on stdin); robustpath never runs it for open_clip models.
    """
    text_cfg = model_cfg.get("text_cfg", {}) if isinstance(model_cfg.get("text_cfg"), dict) else {}
    for key in ("hf_model_name", "hf_tokenizer_name"):  # HF text towers: fetch through the fail-fast path
        repo = text_cfg.get(key)
        folder = _text_tower_folder(str(repo), download, name) if repo else None
        found = hub.code_in_config(folder) if folder is not None else None
        if found:
            raise ModelError(f"model '{name}': its text tower '{repo}' ships its own code ({found} has auto_map), "
                             "which robustpath does not run for open_clip models")


def _patch_size(visual) -> int | None:
    """The patch of open_clip's ViT tower, or of a timm trunk; None for convolutional towers."""
    patch = getattr(visual, "patch_size", None)
    if patch is None:
        patch = getattr(getattr(getattr(visual, "trunk", None), "patch_embed", None), "patch_size", None)
    return hub.patch_side(patch)


class OpenClipEncoder:
    """Encoder adapter around an open_clip CLIP model (image and text towers)."""

    has_text = True

    def __init__(self, argument: str, name: str, *, quick_gelu: bool | None = None) -> None:
        import open_clip

        from robustpath.models.registry import parse_source_argument

        self.name, self.spec = name, f"open_clip:{argument}"
        parts = parse_source_argument("open_clip", argument, name)
        plan = _resolve(parts, name, quick_gelu)
        create_name, model_cfg, self.weights = plan["create_name"], plan["model_cfg"], Path(plan["weights"])
        _check_text_tower(model_cfg, parts.form != "local-dir", name)
        try:
            with _quiet_logging(), hub.no_code_prompts():
                self.model = open_clip.create_model(create_name, pretrained=None, load_weights=False,
                                                    force_quick_gelu=plan["quick_gelu"], pretrained_image=False,
                                                    pretrained_text=False, device="cpu")
                self.tokenizer = open_clip.get_tokenizer(create_name)
        except (RuntimeError, ValueError, KeyError, TypeError, OSError) as exc:
            reason = hub.first_line(exc)
            if "trust_remote_code" in str(exc):  # refused by no_code_prompts: a text tower not checked above
                reason = "its Hugging Face text tower ships its own code, which robustpath does not run for open_clip models"
            raise ModelError(f"model '{name}': open_clip cannot build '{create_name}': {reason}") from None
        state = _adapt_state(self.model, hub.load_state_dict_file(self.weights, spec=name))
        hub.load_strict(self.model, state, path=self.weights, spec=name)
        self.model.eval()
        self.embed_dim = int(model_cfg["embed_dim"])
        pp_cfg = open_clip.get_model_preprocess_cfg(self.model)
        if plan["tag_cfg"]:
            from open_clip.transform import merge_preprocess_dict

            pp_cfg = {**merge_preprocess_dict(pp_cfg, plan["tag_cfg"]), "size": pp_cfg["size"]}
        self.notes: list[str] = []
        self.preprocessing = preprocessing_from_open_clip(pp_cfg, self.notes)
        self.facts = {"source": "open_clip", "spec": self.spec, "open_clip_version": open_clip.__version__,
                      "architecture": parts.target, "pretrained_tag": parts.weights if plan["tag_cfg"] else None,
                      "quick_gelu": bool(plan["quick_gelu"] or model_cfg.get("quick_gelu", False))}

    def to(self, device: "torch.device") -> "OpenClipEncoder":
        self.model.to(device)
        return self

    def encode_image(self, images: "torch.Tensor") -> "torch.Tensor":
        """images: (B, 3, H, W) normalised, on the model's device -> (B, embed_dim), not L2-normalised."""
        import torch

        with torch.no_grad():
            return self.image_features(images)

    def image_features(self, images: "torch.Tensor") -> "torch.Tensor":
        """encode_image with gradients (fine-tuning)."""
        return self.model.encode_image(images)

    def encode_text(self, texts: list[str]) -> "torch.Tensor":
        """texts -> (T, embed_dim) on the model's device, not L2-normalised."""
        import torch

        tokens = self.tokenizer(list(texts)).to(hub.model_device(self.model))
        with torch.no_grad():
            return self.model.encode_text(tokens)

    def describe(self) -> dict:
        facts = dict(self.facts, weights=str(self.weights), weights_sha256=hub.file_sha256(self.weights),
                     embed_dim=self.embed_dim, preprocessing=self.preprocessing.as_dict(),
                     patch_size=_patch_size(self.model.visual))
        return hub.add_provenance(facts, self.weights, self.notes)
