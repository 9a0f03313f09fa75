"""Model specs and aliases, parsed in one place.

Grammar (``SOURCE:ARGUMENT``; an ``@`` separates an architecture from its weights)::

    customvit:DIR                         a CustomViT folder (config.json + model.safetensors)
    open_clip:ARCH@TAG                    a pretrained tag of open_clip (ViT-B-16@openai)
    open_clip:ARCH@FILE                   local weights (.safetensors, or a weights-only .pt/.bin)
    open_clip:ARCH@hf-hub:ORG/REPO/FILE   one weights file from a Hub repository
    open_clip:hf-hub:ORG/REPO             an open_clip Hub repository (open_clip_config.json + weights)
    open_clip:local-dir:DIR               a local copy of such a repository
    hf:ORG/REPO | hf:DIR                  a transformers model (CLIPModel, DINOv2, other AutoModels)
    timm:NAME[@FILE]                      a timm architecture; without @FILE its pretrained weights
    timm:NAME@hf-hub:ORG/REPO/FILE        ... with one weights file from the Hub
    timm:hf-hub:ORG/REPO | timm:local-dir:DIR   a timm Hub repository (config.json + weights) or a copy

An alias from ``list_model_aliases()`` stands for a spec plus adapter options.
A bare existing folder is recognised by its files.  Sources map to lazy
``module:attr`` targets, so importing this module imports no model library.
"""
from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from robustpath.errors import ModelError, UsageError, closest_name, unknown_name_message
from robustpath.models.aliases import ALIASES, DEMO_MODEL, ModelAlias

__all__ = ["DEMO_MODEL", "ModelAlias", "ModelSource", "SpecParts", "POOLINGS", "list_model_aliases",
           "list_model_sources", "load_encoder", "parse_source_argument", "resolve_model_spec"]

from robustpath.spec.run_spec import POOLINGS  # noqa: E402  (the option's choices have one owner)
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


@dataclass(frozen=True)
class ModelSource:
    name: str
    target: str  # "module:attr", called as target(argument, name, **options)
    accepts: str  # the argument forms, for messages
    options: tuple[str, ...] = ()  # keyword options the target takes


_SOURCES = {
    "customvit": ModelSource("customvit", "robustpath.models.customvit:CustomViTEncoder", "customvit:DIR"),
    "open_clip": ModelSource(
        "open_clip", "robustpath.models.openclip_adapter:OpenClipEncoder",
        "open_clip:ARCH@TAG, open_clip:ARCH@FILE, open_clip:hf-hub:ORG/REPO, open_clip:local-dir:DIR",
        ("quick_gelu",),
    ),
    "hf": ModelSource("hf", "robustpath.models.hf_adapter:load_hf_encoder", "hf:ORG/REPO, hf:DIR",
                      ("pooling", "trust_remote_code")),
    "timm": ModelSource(
        "timm", "robustpath.models.timm_adapter:TimmEncoder",
        "timm:NAME[@FILE], timm:hf-hub:ORG/REPO, timm:local-dir:DIR", ("pooling", "model_kwargs"),
    ),
}
_ALIASES = {alias.name: alias for alias in ALIASES}


@dataclass(frozen=True)
class SpecParts:
    """A source argument taken apart.

    ``form`` is "arch" (an architecture name, ``weights`` after the @), "hf-hub"
    (``target`` is ORG/REPO), "local-dir" or "dir" (``target`` is a folder).
    """

    form: str
    target: str
    weights: str | None = None

    @property
    def weights_kind(self) -> str | None:
        """"hub" (hf-hub:ORG/REPO/FILE), "file" (a local path), "tag" (a name) or None."""
        if self.weights is None:
            return None
        if self.weights.startswith("hf-hub:"):
            return "hub"
        return "file" if _looks_like_path(self.weights) else "tag"

    def weights_hub_file(self) -> tuple[str, str]:
        """(ORG/REPO, FILE) of an ``@hf-hub:ORG/REPO/FILE`` weights reference."""
        org, repo, filename = self.weights[len("hf-hub:"):].split("/", 2)
        return f"{org}/{repo}", filename


def list_model_aliases() -> list[ModelAlias]:
    return list(_ALIASES.values())


def list_model_sources() -> list[ModelSource]:
    return list(_SOURCES.values())


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith((".", "~")) or text.lower().endswith(_WEIGHT_SUFFIXES)


def _accepted_forms() -> str:
    forms = [s.accepts for s in _SOURCES.values()] + ["an existing model folder",
                                                      "an alias (" + ", ".join(_ALIASES) + ")"]
    return "; ".join(forms)


def _existing_dir(text: str, spec: str, needs: str) -> str:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ModelError(f"model '{spec}': folder '{text}' not found")
    if not (path / needs).is_file():
        raise ModelError(f"model '{spec}': folder '{text}' has no {needs}")
    return str(path)


def _hub_repo(text: str, spec: str, example: str) -> str:
    if not _REPO.match(text):
        raise UsageError(f"model '{spec}': '{text}' is not a Hub repository name; expected {example}")
    return text


def parse_source_argument(source: str, argument: str, spec: str | None = None) -> SpecParts:
    """Take apart the argument of ``source``; raises UsageError / ModelError naming the spec."""
    spec = spec or f"{source}:{argument}"
    if source == "customvit":
        return SpecParts("dir", argument)
    if source == "hf":
        if Path(argument).expanduser().exists():
            return SpecParts("dir", _existing_dir(argument, spec, "config.json"))
        if _REPO.match(argument):
            return SpecParts("hf-hub", argument)
        raise ModelError(f"model '{spec}': '{argument}' is neither an existing folder nor a Hub name ORG/REPO")
    for schema in ("hf-hub:", "local-dir:"):
        if argument.startswith(schema):
            rest = argument[len(schema):]
            if schema == "hf-hub:":
                return SpecParts("hf-hub", _hub_repo(rest, spec, f"{source}:hf-hub:ORG/REPO"))
            return SpecParts("local-dir", _existing_dir(
                rest, spec, "open_clip_config.json" if source == "open_clip" else "config.json"))
    name, sep, weights = argument.partition("@")
    if not name or (sep and not weights):
        raise UsageError(f"model '{spec}': expected {_SOURCES[source].accepts}")
    parts = SpecParts("arch", name, weights if sep else None)
    if source == "open_clip" and parts.weights is None:
        raise UsageError(f"model '{spec}' names no weights; expected open_clip:{name}@TAG (e.g. @openai) "
                         f"or open_clip:{name}@FILE")
    if parts.weights_kind == "hub" and weights.count("/") < 2:
        raise UsageError(f"model '{spec}': expected @hf-hub:ORG/REPO/FILE after the architecture")
    if parts.weights_kind == "file":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelError(f"model '{spec}': weights file '{weights}' not found")
        parts = SpecParts("arch", name, str(path))
    return parts


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recognise_folder(path: Path, spec: str) -> tuple[str, str]:
    """(source, argument) for a bare model folder, or ModelError listing the accepted forms."""
    from robustpath.models.customvit import is_customvit_dir

    if is_customvit_dir(path):
        return "customvit", str(path)
    config = _json(path / "config.json")
    found = []
    if (path / "open_clip_config.json").is_file():
        found.append(("open_clip", f"local-dir:{path}"))
    if "architecture" in config and ("pretrained_cfg" in config or "model_args" in config):
        found.append(("timm", f"local-dir:{path}"))
    elif "model_type" in config:
        found.append(("hf", str(path)))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        choices = " or ".join(f"{source}:{argument}" for source, argument in found)
        raise UsageError(f"folder '{spec}' holds more than one model format; pass {choices}")
    raise ModelError(f"'{spec}' is not a model folder this version recognises (no CustomViT config.json, "
                     f"open_clip_config.json, timm or transformers config.json); accepted forms: {_accepted_forms()}")


def _unknown(spec: str, text: str) -> UsageError:
    prefix, sep, rest = text.partition(":")
    near = closest_name(prefix.replace("-", "_"), list(_SOURCES)) if sep else None  # 'open-clip:x' → 'open_clip:x'
    suggestion = f"{near}:{rest}" if near is not None and near != prefix else None
    repository = suggestion is None and _REPO.match(text)  # ORG/REPO: a Hub repository without its source
    message = unknown_name_message("model", spec, list(_ALIASES), listing=_accepted_forms(),
                                   suggestion=f"hf:{text}" if repository else suggestion)
    if repository:
        message += f" (an open_clip or timm repository: open_clip:hf-hub:{text} or timm:hf-hub:{text})"
    return UsageError(message)


def _resolve(spec: str) -> tuple[ModelSource, str, ModelAlias | None]:
    text = spec.strip()
    alias = _ALIASES.get(text)
    if alias is not None:
        if not alias.supported:
            raise ModelError(f"model '{alias.name}': {alias.install_hint}")
        text = alias.spec
    prefix, sep, argument = text.partition(":")
    if sep and prefix in _SOURCES:
        if not argument:
            raise UsageError(f"model spec '{spec}' has nothing after '{prefix}:'; expected {_SOURCES[prefix].accepts}")
        parse_source_argument(prefix, argument, spec)
        return _SOURCES[prefix], argument, alias
    path = Path(text).expanduser()
    if path.is_dir():
        source, argument = _recognise_folder(path, spec)
        return _SOURCES[source], argument, None
    if path.exists():
        raise ModelError(f"'{spec}' is a file; a weights file needs its architecture: open_clip:ARCH@FILE or "
                         f"timm:NAME@FILE. Accepted forms: {_accepted_forms()}")
    if text.startswith(("/", ".", "~")) or "\\" in text:
        raise ModelError(f"model folder '{spec}' not found. Accepted forms: {_accepted_forms()}")
    raise _unknown(spec, text)


def resolve_model_spec(spec: str) -> tuple[ModelSource, str]:
    """Return the source and its argument for ``spec`` or raise with the accepted forms."""
    source, argument, _alias = _resolve(spec)
    return source, argument


def _display_name(source: ModelSource, argument: str) -> str:
    """A short, stable name for result tables: local folders and files by their last component."""
    def short(text: str) -> str:
        return Path(text).name or text if Path(text).expanduser().exists() else text

    for schema in ("local-dir:", "hf-hub:"):
        if argument.startswith(schema):
            return f"{source.name}:{schema}{short(argument[len(schema):])}"
    if source.name in ("customvit", "hf"):
        return f"{source.name}:{short(argument)}"
    name, sep, weights = argument.partition("@")
    return f"{source.name}:{name}{sep}{short(weights) if weights else ''}"


def load_encoder(spec: str, *, pooling: str | None = None, trust_remote_code: bool = False):
    """Load the encoder named by ``spec`` (CPU, eval mode).

    ``pooling`` (image-only hf: and timm: models) picks the embedding: "cls" (the
    class token), "mean" (mean of the patch tokens) or "cls+mean" (both
    concatenated, 2x the width, as DINOv2's linear evaluation does); None keeps
    the model's own pooled output (the class token for ViT/DINOv2).
    ``trust_remote_code`` lets hf: models run code shipped in their repository.
    """
    source, argument, alias = _resolve(spec)
    options = dict(alias.options) if alias else {}
    if pooling is not None:
        if pooling not in POOLINGS:
            raise UsageError(unknown_name_message("pooling", pooling, POOLINGS, plural="poolings"))
        if "pooling" not in source.options:
            raise UsageError(f"model '{spec}': pooling applies to image-only hf: and timm: models, "
                             f"not to {source.name} models")
        options["pooling"] = pooling
    if trust_remote_code and "trust_remote_code" in source.options:
        options["trust_remote_code"] = True
    module_name, attr = source.target.split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    name = alias.name if alias else _display_name(source, argument)
    return factory(argument, name, **options)
