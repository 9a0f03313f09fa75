"""The rows of ``robustpath models``: one per alias, with the model card's recipe in words."""
from __future__ import annotations

from pathlib import Path

from robustpath.models.recipes.base import plain


def recipe_summary(recipe) -> str:
    """The recipe in one paragraph: library call, preprocessing, embedding, where it comes from."""
    kwargs = ", ".join(f"{key}={plain(value)}" for key, value in recipe.model_kwargs) or "none"
    prep = recipe.preprocessing
    resize = (f"shorter side to {prep.resize_size or max(prep.input_size)} ({prep.resize_mode}), centre crop"
              if prep.crop == "center" else f"resize ({prep.resize_mode})")
    call = ("timm.create_model" if recipe.library == "timm"
            else f"transformers {recipe.architecture}.from_pretrained")
    text = (f"{recipe.card} — {call} ({recipe.architecture if recipe.library == 'timm' else recipe.repo}), "
            f"kwargs: {kwargs}; input {prep.input_size[0]}×{prep.input_size[1]}: {resize}, "
            f"mean {list(prep.mean)}, std {list(prep.std)}; embedding: {recipe.usage} ({recipe.embed_dim}-d)")
    if recipe.trust_remote_code:
        text += "; runs repository code: needs --trust-remote-code"
    return text


def alias_row(alias, details: bool) -> tuple[str, ...]:
    """(alias, spec, licence, gated, pooling[, description, card and recipe]) for the listing."""
    if not alias.supported:
        spec = alias.install_hint
    elif alias.source == "customvit":
        spec = "customvit:<installed package>/checkpoints/" + Path(alias.spec).name
    else:
        spec = alias.spec
    gated = "yes (HF_TOKEN)" if alias.gated else "no"
    recipe = alias.recipe
    pooling = f"{recipe.pooling} ({recipe.embed_dim}-d, card)" if recipe is not None else "-"
    row = (alias.name, spec, alias.licence, gated, pooling)
    if not details:
        return row
    card = recipe_summary(recipe) if recipe is not None else (alias.card or "-")
    return row + (alias.description, card)
