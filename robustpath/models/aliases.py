"""Model aliases: short names for checkpoints the pathology robustness literature uses.

Each alias is a spec plus the adapter options its weights need (e.g. QuickGELU
for weights trained with OpenAI's activation).  The pathology foundation models carry
their model card's recipe (robustpath.models.recipes): architecture and keyword
arguments, preprocessing, the card's embedding, licence, gating and the card's address.
Licences are those stated on the model cards; "gated" means the Hub asks you to accept
terms and set HF_TOKEN.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustpath.models.recipes import UNSUPPORTED, Recipe, UnsupportedModel, list_recipes

DEMO_MODEL = "customvit-demo"
_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelAlias:
    """A named model: ``spec`` is loaded with ``options`` (adapter keyword arguments)."""

    name: str
    spec: str
    licence: str
    gated: bool
    description: str
    options: tuple[tuple[str, object], ...] = ()
    supported: bool = True
    install_hint: str = ""
    recipe: Recipe | None = None
    card: str = ""

    @property
    def source(self) -> str:
        """The source part of the spec (customvit, open_clip, hf, timm, …)."""
        return self.spec.partition(":")[0]


def _from_recipe(recipe: Recipe) -> ModelAlias:
    return ModelAlias(recipe.alias, recipe.spec, recipe.licence, recipe.gated, recipe.title, recipe=recipe,
                      card=recipe.card)


def _unsupported(model: UnsupportedModel) -> ModelAlias:
    source = model.alias.split("-")[0]
    return ModelAlias(model.alias, f"{source}:hf-hub:{model.repo}", model.licence, model.gated, model.title,
                      supported=False, install_hint=model.missing, card=model.card)


_DINOV2 = tuple(
    ModelAlias(
        f"dinov2-{size}", f"hf:facebook/dinov2-{size}", "Apache-2.0", False,
        f"DINOv2 ViT-{letter}/14 (Meta, self-supervised on LVD-142M); image only, CLS token by default",
    )
    for size, letter in (("small", "S"), ("base", "B"), ("large", "L"), ("giant", "g"))
)

ALIASES: tuple[ModelAlias, ...] = (
    ModelAlias(
        DEMO_MODEL, f"customvit:{_PACKAGE_DIR / 'checkpoints' / DEMO_MODEL}", "same as robustpath", False,
        "CustomViT (40 px, patch 4) trained from scratch on demo-ihc; ships with robustpath",
    ),
    ModelAlias(
        "pathclip", "open_clip:ViT-B-16@hf-hub:jamessyx/pathclip/pathclip-base.pt", "CC-BY-NC-4.0", False,
        "PathCLIP (Sun et al.): open_clip ViT-B-16 fine-tuned on pathology image-text pairs; QuickGELU",
        options=(("quick_gelu", True),),
    ),
    ModelAlias(
        "plip", "hf:vinid/plip", "see model card (research use)", False,
        "PLIP (Huang et al., Nature Medicine 2023): CLIP ViT-B/32 fine-tuned on OpenPath (Twitter)",
    ),
    ModelAlias(
        "openai-clip", "open_clip:ViT-B-16@openai", "MIT", False,
        "OpenAI CLIP ViT-B/16 (QuickGELU, as trained)", options=(("quick_gelu", True),),
    ),
    ModelAlias(
        "openai-clip-b32", "open_clip:ViT-B-32@openai", "MIT", False,
        "OpenAI CLIP ViT-B/32 (QuickGELU, as trained)", options=(("quick_gelu", True),),
    ),
    ModelAlias(
        "quiltnet", "open_clip:hf-hub:wisdomik/QuiltNet-B-32", "MIT", False,
        "QuiltNet-B-32 (Ikezogwo et al., NeurIPS 2023): CLIP ViT-B/32 trained on Quilt-1M",
    ),
    *_DINOV2,
    *(_from_recipe(recipe) for recipe in list_recipes()),
    *(_unsupported(model) for model in UNSUPPORTED),
)
