"""The model sources: each declares, in one entry, everything the rest of robustpath knows of it.

A source is the prefix of a model spec (``SOURCE:ARGUMENT``).  Its entry says which lazy
``module:attr`` target loads it (so importing this module imports no model library), the
keyword options that target takes, the argument grammar (robustpath.models.registry parses
it), the file a model folder of this source holds, whether its models have a text encoder,
how a bare folder is recognised as one of its models, and which parts of its argument
enter the cache index (robustpath.embedding.cache_index).  Adding a source is one
``register_source`` entry here plus its adapter module.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from robustpath.errors import UsageError, unknown_name_message

GRAMMARS = ("dir", "repo-or-dir", "arch")  # see robustpath.models.registry.parse_source_argument


def local_argument_parts(argument: str) -> list[str]:
    """The pieces of a spec argument that may be local paths (a folder, a file, name@file)."""
    text = argument.split(":", 1)[1] if argument.startswith(("local-dir:", "hf-hub:")) else argument
    return [text, *text.split("@")[1:]] if "@" in text else [text]


@dataclass(frozen=True)
class ModelSource:
    """One model source.

    ``target``: "module:attr", called as target(argument, name, **options); ``accepts``: the
    argument forms, for messages; ``options``: keyword options the target takes;
    ``grammar``: "dir" (a folder), "repo-or-dir" (a Hub repository ORG/REPO or a folder) or
    "arch" (ARCH[@WEIGHTS], hf-hub:ORG/REPO, local-dir:DIR); ``folder_file``: the file its
    model folders hold; ``weights_required``: an ARCH needs @WEIGHTS; ``has_text``: its models
    have a text encoder (None: it depends on the model, see ``text_in_folder``);
    ``recognise(folder, config)``: a bare folder (its config.json read as ``config``) holds
    one of its models; ``definitive``: such a folder is this source's whatever else it holds;
    ``index_parts(argument)``: the parts of the argument whose local files identify the model
    in the cache index.
    """

    name: str
    target: str
    accepts: str
    grammar: str
    folder_file: str
    recognise: Callable[[Path, dict], bool]
    options: tuple[str, ...] = ()
    weights_required: bool = False
    has_text: bool | None = False
    text_in_folder: Callable[[dict], bool] | None = None
    definitive: bool = False
    folder_kind: str = ""  # how a recognised folder is named in messages
    index_parts: Callable[[str], list[str]] = local_argument_parts

    def folder_argument(self, folder: Path) -> str:
        """The spec argument of a recognised bare folder."""
        return f"local-dir:{folder}" if self.grammar == "arch" else str(folder)


_SOURCES: dict[str, ModelSource] = {}


def register_source(source: ModelSource) -> ModelSource:
    """Add ``source`` to the registry; a second source of the same name raises."""
    if source.name in _SOURCES:
        raise ValueError(f"model source '{source.name}' is already registered")
    if source.grammar not in GRAMMARS:
        raise ValueError(f"model source '{source.name}': grammar '{source.grammar}' is not one of {GRAMMARS}")
    _SOURCES[source.name] = source
    return source


def get_model_source(name: str) -> ModelSource:
    """The registered source ``name``; UsageError with "did you mean" and the valid names otherwise."""
    try:
        return _SOURCES[name]
    except KeyError:
        raise UsageError(unknown_name_message("model source", name, list(_SOURCES))) from None


def list_model_sources() -> list[ModelSource]:
    return list(_SOURCES.values())


def read_json_object(path: Path) -> dict:
    """A JSON file's object, or {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_timm_config(config: dict) -> bool:
    return "architecture" in config and ("pretrained_cfg" in config or "model_args" in config)


def _is_customvit(folder: Path, config: dict) -> bool:
    from robustpath.models.customvit import is_customvit_dir

    return is_customvit_dir(folder)


register_source(ModelSource(
    "customvit", "robustpath.models.customvit:CustomViTEncoder", "customvit:DIR", grammar="dir",
    folder_file="config.json", recognise=_is_customvit, definitive=True, folder_kind="CustomViT config.json",
))
register_source(ModelSource(
    "open_clip", "robustpath.models.openclip_adapter:OpenClipEncoder",
    "open_clip:ARCH@TAG, open_clip:ARCH@FILE, open_clip:hf-hub:ORG/REPO, open_clip:local-dir:DIR",
    grammar="arch", folder_file="open_clip_config.json", options=("quick_gelu",), weights_required=True,
    has_text=True, recognise=lambda folder, config: (folder / "open_clip_config.json").is_file(),
    folder_kind="open_clip_config.json",
))
register_source(ModelSource(
    "hf", "robustpath.models.hf_adapter:load_hf_encoder", "hf:ORG/REPO, hf:DIR", grammar="repo-or-dir",
    folder_file="config.json", options=("pooling", "trust_remote_code", "recipe"), has_text=None,
    text_in_folder=lambda config: "clip" in str(config.get("model_type", "")).lower(),
    recognise=lambda folder, config: "model_type" in config and not _is_timm_config(config),
    folder_kind="transformers config.json",
))
register_source(ModelSource(
    "timm", "robustpath.models.timm_adapter:TimmEncoder", "timm:NAME[@FILE], timm:hf-hub:ORG/REPO, timm:local-dir:DIR",
    grammar="arch", folder_file="config.json", options=("pooling", "model_kwargs", "recipe"),
    recognise=lambda folder, config: _is_timm_config(config), folder_kind="timm config.json",
))
register_source(ModelSource(
    "finetuned", "robustpath.models.finetuned:FineTunedEncoder", "finetuned:DIR", grammar="dir",
    folder_file="fine_tune.json", definitive=True, folder_kind="fine_tune.json",
    recognise=lambda folder, config: (
        read_json_object(folder / "fine_tune.json").get("format") == "robustpath-fine-tuned"
    ),
))
