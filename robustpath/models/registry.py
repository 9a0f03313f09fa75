"""Model specs and aliases, parsed in one place.

Grammar (``SOURCE:ARGUMENT``; an ``@`` separates an architecture from its weights)::

    customvit:DIR                         a CustomViT folder (config.json + model.safetensors)
    finetuned:DIR                         a fine-tuned set written by `robustpath finetune` (fine_tune.json)
    open_clip:ARCH@TAG                    a pretrained tag of open_clip (ViT-B-16@openai)
    open_clip:ARCH@FILE                   local weights (.safetensors, or a weights-only .pt/.bin)
    open_clip:ARCH@hf-hub:ORG/REPO/FILE   one weights file from a Hub repository
    open_clip:hf-hub:ORG/REPO             an open_clip Hub repository (open_clip_config.json + weights)
    open_clip:local-dir:DIR               a local copy of such a repository
    hf:ORG/REPO | hf:DIR                  a transformers model (CLIPModel, DINOv2, other AutoModels)
    timm:NAME[@FILE]                      a timm architecture; without @FILE its pretrained weights
    timm:NAME@hf-hub:ORG/REPO/FILE        ... with one weights file from the Hub
    timm:hf-hub:ORG/REPO | timm:local-dir:DIR   a timm Hub repository (config.json + weights) or a copy

An alias from ``list_model_aliases()`` stands for a spec plus adapter options; the
pathology foundation models' aliases also carry their model card's recipe.
A bare existing folder is recognised by its files.  The sources and their facts (grammar,
folder recognition, text encoder, cache-index parts) are declared in
robustpath.models.sources; they map to lazy ``module:attr`` targets, so importing this
module imports no model library.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from robustpath.errors import ModelError, UsageError, closest_name, unknown_name_message
from robustpath.models.aliases import ALIASES, DEMO_MODEL, ModelAlias
from robustpath.models.sources import ModelSource, get_model_source, list_model_sources, read_json_object

__all__ = ["DEMO_MODEL", "ModelAlias", "ModelSource", "SpecParts", "POOLINGS", "check_pooling", "check_remote_code",
           "get_model_recipe", "get_model_source", "list_model_aliases", "list_model_sources", "load_encoder",
           "model_text_encoder", "parse_source_argument", "resolve_model_spec", "resolved_pooling"]

from robustpath.spec.run_spec import CARD_POOLING, POOLINGS  # noqa: E402  (the option's choices have one owner)
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


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


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith((".", "~")) or text.lower().endswith(_WEIGHT_SUFFIXES)


def _accepted_forms() -> str:
    forms = [s.accepts for s in list_model_sources()] + ["an existing model folder",
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
    """Take apart the argument of ``source`` by its grammar; raises UsageError / ModelError naming the spec."""
    declared = get_model_source(source)
    return _GRAMMARS[declared.grammar](declared, argument, spec or f"{source}:{argument}")


def _parse_dir(source: ModelSource, argument: str, spec: str) -> SpecParts:
    """A folder, checked by the source's loader."""
    return SpecParts("dir", argument)


def _parse_repo_or_dir(source: ModelSource, argument: str, spec: str) -> SpecParts:
    """An existing folder (with the source's ``folder_file``) or a Hub repository ORG/REPO."""
    if Path(argument).expanduser().exists():
        return SpecParts("dir", _existing_dir(argument, spec, source.folder_file))
    if _REPO.match(argument):
        return SpecParts("hf-hub", argument)
    raise ModelError(f"model '{spec}': '{argument}' is neither an existing folder nor a Hub name ORG/REPO")


def _parse_arch(source: ModelSource, argument: str, spec: str) -> SpecParts:
    """hf-hub:ORG/REPO, local-dir:DIR, or ARCH[@WEIGHTS] (a tag, a local file or hf-hub:ORG/REPO/FILE)."""
    if argument.startswith("hf-hub:"):
        return SpecParts("hf-hub", _hub_repo(argument[len("hf-hub:"):], spec, f"{source.name}:hf-hub:ORG/REPO"))
    if argument.startswith("local-dir:"):
        return SpecParts("local-dir", _existing_dir(argument[len("local-dir:"):], spec, source.folder_file))
    name, sep, weights = argument.partition("@")
    if not name or (sep and not weights):
        raise UsageError(f"model '{spec}': expected {source.accepts}")
    parts = SpecParts("arch", name, weights if sep else None)
    if source.weights_required and parts.weights is None:
        raise UsageError(f"model '{spec}' names no weights; expected {source.name}:{name}@TAG (e.g. @openai) "
                         f"or {source.name}:{name}@FILE")
    if parts.weights_kind == "hub" and weights.count("/") < 2:
        raise UsageError(f"model '{spec}': expected @hf-hub:ORG/REPO/FILE after the architecture")
    if parts.weights_kind == "file":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelError(f"model '{spec}': weights file '{weights}' not found")
        parts = SpecParts("arch", name, str(path))
    return parts


_GRAMMARS = {"dir": _parse_dir, "repo-or-dir": _parse_repo_or_dir, "arch": _parse_arch}


def _source_names() -> list[str]:
    return [source.name for source in list_model_sources()]


def _recognise_folder(path: Path, spec: str) -> tuple[str, str]:
    """(source, argument) for a bare model folder, or ModelError listing the accepted forms."""
    config = read_json_object(path / "config.json")
    found = []
    for source in list_model_sources():
        if source.recognise(path, config):
            if source.definitive:
                return source.name, source.folder_argument(path)
            found.append((source.name, source.folder_argument(path)))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        choices = " or ".join(f"{source}:{argument}" for source, argument in found)
        raise UsageError(f"folder '{spec}' holds more than one model format; pass {choices}")
    kinds = [source.folder_kind for source in list_model_sources()]
    raise ModelError(f"'{spec}' is not a model folder this version recognises (no {', '.join(kinds[:-1])} or "
                     f"{kinds[-1]}); accepted forms: {_accepted_forms()}")


def model_text_encoder(spec: str) -> str:
    """"yes", "no" or "unknown until loaded": whether ``spec``'s model has a text encoder, without loading it."""
    source, argument = resolve_model_spec(spec)
    if source.has_text is not None:
        return "yes" if source.has_text else "no"
    config = Path(argument).expanduser() / "config.json"
    if source.text_in_folder is None or not config.is_file():
        return "unknown until loaded"
    return "yes" if source.text_in_folder(read_json_object(config)) else "no"


def _unknown(spec: str, text: str) -> UsageError:
    prefix, sep, rest = text.partition(":")
    near = closest_name(prefix.replace("-", "_"), [source.name for source in list_model_sources()]) if sep else None  # 'open-clip:x' → 'open_clip:x'
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
    if sep and prefix in _source_names():
        source = get_model_source(prefix)
        if not argument:
            raise UsageError(f"model spec '{spec}' has nothing after '{prefix}:'; expected {source.accepts}")
        parse_source_argument(prefix, argument, spec)
        return source, argument, alias
    path = Path(text).expanduser()
    if path.is_dir():
        source, argument = _recognise_folder(path, spec)
        return get_model_source(source), argument, None
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
    if source.grammar != "arch":
        return f"{source.name}:{short(argument)}"
    name, sep, weights = argument.partition("@")
    return f"{source.name}:{name}{sep}{short(weights) if weights else ''}"


def get_model_recipe(spec: str):
    """The model-card recipe of an alias (robustpath.models.recipes), None for any other spec."""
    alias = _ALIASES.get(spec.strip()) if isinstance(spec, str) else None
    return alias.recipe if alias is not None else None


def check_pooling(spec: str, pooling: str | None) -> None:
    """Refuse an unknown pooling, or one the model's source cannot apply, before anything loads."""
    if pooling is None:
        return
    if pooling not in POOLINGS:
        raise UsageError(unknown_name_message("pooling", pooling, POOLINGS, plural="poolings"))
    source, _argument, _alias = _resolve(spec)
    if pooling != CARD_POOLING and "pooling" not in source.options:
        raise UsageError(f"model '{spec}': pooling applies to image-only hf: and timm: models, "
                         f"not to {source.name} models")


def resolved_pooling(spec: str, pooling: str | None) -> str | None:
    """The pooling a run of ``spec`` uses: the card's for an alias with a recipe unless one is chosen."""
    recipe = get_model_recipe(spec)
    if recipe is not None and pooling in (None, CARD_POOLING):
        return recipe.pooling
    return None if pooling == CARD_POOLING else pooling


def check_remote_code(spec: str, trust_remote_code: bool) -> None:
    """An alias whose card loads repository code needs --trust-remote-code: one line saying so."""
    recipe = get_model_recipe(spec)
    if recipe is not None and recipe.trust_remote_code and not trust_remote_code:
        raise ModelError(f"model '{recipe.alias}': its card loads code shipped in '{recipe.repo}' "
                         "(trust_remote_code); pass --trust-remote-code (trust_remote_code=True in Python) "
                         "if you trust that code")


def load_encoder(spec: str, *, pooling: str | None = None, trust_remote_code: bool = False):
    """Load the encoder named by ``spec`` (CPU, eval mode).

    ``pooling`` (image-only hf: and timm: models) picks the embedding: "cls" (the
    class token), "mean" (mean of the patch tokens, class and register tokens
    excluded) or "cls+mean" (both concatenated, 2x the width, as DINOv2's linear
    evaluation does); "card" or None keep the default: the model card's embedding
    for an alias with a recipe (robustpath.models.recipes), else the model's own
    pooled output (the class token for ViT/DINOv2).
    ``trust_remote_code`` lets hf: models run code shipped in their repository.
    """
    check_pooling(spec, pooling)
    source, argument, alias = _resolve(spec)
    check_remote_code(spec, trust_remote_code)
    options = dict(alias.options) if alias else {}
    if alias is not None and alias.recipe is not None:
        options["recipe"] = alias.recipe
    if pooling is not None and pooling != CARD_POOLING:
        options["pooling"] = pooling
    if trust_remote_code and "trust_remote_code" in source.options:
        options["trust_remote_code"] = True
    module_name, attr = source.target.split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    name = alias.name if alias else _display_name(source, argument)
    return factory(argument, name, **options)
