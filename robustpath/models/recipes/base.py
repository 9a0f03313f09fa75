"""What a model card prescribes, as data: the Recipe every foundation-model alias carries.

A recipe states how the card loads the model (the library, the architecture and the
keyword arguments of its usage snippet), what the Hub repository's config.json is
expected to hold, how an image becomes an input (size, resize / crop, mean / std) and
which embedding the card uses (the pooling), with the licence, the gating and the card's
address.  The adapters apply it; tests rebuild each card's snippet by hand on a tiny
replica of the architecture.

Layer classes (timm's ``SwiGLUPacked`` MLP, ``torch.nn.SiLU``) are named by a ``Layer``
and resolved from a fixed list when the model is built: a recipe is plain data, and
nothing in it can name arbitrary code.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from robustpath.models.base import Preprocessing

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
CARD_POOLINGS = ("cls", "cls+mean")  # what a recipe may prescribe; "mean" stays a user choice
LIBRARIES = ("timm", "hf")


@dataclass(frozen=True)
class Layer:
    """A layer class named in a card's keyword arguments (resolved by ``resolve_layer``)."""

    name: str  # e.g. "timm.layers.SwiGLUPacked"

    def __str__(self) -> str:
        return self.name


def _layers() -> dict:
    import torch
    from timm.layers import SwiGLUPacked

    return {"timm.layers.SwiGLUPacked": SwiGLUPacked, "torch.nn.SiLU": torch.nn.SiLU}


def resolve_layer(value):
    """The class a ``Layer`` names (from a fixed list); any other value unchanged."""
    if not isinstance(value, Layer):
        return value
    layers = _layers()
    if value.name not in layers:
        raise ValueError(f"unknown layer '{value.name}'; known: {', '.join(layers)}")
    return layers[value.name]


def plain(value):
    """A JSON-friendly form of a keyword value (layers by name, tuples as lists)."""
    if isinstance(value, Layer):
        return value.name
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Recipe:
    """A model card's loading recipe (see the module doc).

    ``library`` "timm": ``architecture`` is a timm model name; ``model_kwargs`` are the
    keyword arguments of the card's ``timm.create_model`` call, applied on top of the
    repository's config.json; ``config_args`` are the architecture arguments that
    config.json holds (documentation, and the full-size check).  ``library`` "hf":
    ``architecture`` is a transformers class (``ViTModel``, ``Dinov2Model``), or
    "AutoModel" for repository code; ``model_kwargs`` go to ``from_pretrained``;
    ``config_args`` are the config.json facts.  ``prefix_tokens`` counts the class and
    """

    alias: str
    title: str
    library: str
    repo: str
    architecture: str
    preprocessing: Preprocessing
    pooling: str
    width: int  # the token width; the card's embedding is 2x this for "cls+mean"
    prefix_tokens: int
    licence: str
    gated: bool
    card: str
    usage: str  # the card's embedding, in words
    model_kwargs: tuple[tuple[str, object], ...] = ()
    config_args: tuple[tuple[str, object], ...] = ()
    trust_remote_code: bool = False
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.library not in LIBRARIES:
            raise ValueError(f"recipe '{self.alias}': library must be one of {LIBRARIES}")
        if self.pooling not in CARD_POOLINGS:
            raise ValueError(f"recipe '{self.alias}': pooling must be one of {CARD_POOLINGS}")

    @property
    def spec(self) -> str:
        """The model spec the alias stands for."""
        return f"timm:hf-hub:{self.repo}" if self.library == "timm" else f"hf:{self.repo}"

    @property
    def embed_dim(self) -> int:
        """Width of the card's embedding."""
        return self.width * (2 if self.pooling == "cls+mean" else 1)

    def create_kwargs(self) -> dict:
        """``model_kwargs`` with layer names resolved to classes (imports timm and torch)."""
        return {key: resolve_layer(value) for key, value in self.model_kwargs}

    def describe(self) -> dict:
        """The recipe as recorded in run.json (and part of the embedding cache's model identity)."""
        return {
            "alias": self.alias, "library": self.library, "repo": self.repo, "architecture": self.architecture,
            "model_kwargs": {k: plain(v) for k, v in self.model_kwargs},
            "config_args": {k: plain(v) for k, v in self.config_args},
            "preprocessing": self.preprocessing.as_dict(), "pooling": self.pooling, "embed_dim": self.embed_dim,
            "prefix_tokens": self.prefix_tokens, "trust_remote_code": self.trust_remote_code,
            "licence": self.licence, "gated": self.gated, "card": self.card, "usage": self.usage,
        }

    def digest(self) -> str:
        """A short digest of everything the recipe states (changes when the recipe does)."""
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode("utf-8")).hexdigest()[:16]


def square(size: int, mean, std, *, resize_mode: str = "bicubic", crop: str = "center",
           resize_size: int | None = None) -> Preprocessing:
    """A square input of ``size`` px (shorter side to ``resize_size`` or ``size``, then a centre crop)."""
    return Preprocessing(input_size=(size, size), mean=tuple(mean), std=tuple(std), resize_mode=resize_mode,
                         crop=crop, resize_size=resize_size)


SWIGLU = (("mlp_layer", Layer("timm.layers.SwiGLUPacked")), ("act_layer", Layer("torch.nn.SiLU")))
