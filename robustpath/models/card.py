"""Applying a model card's recipe in the adapters: token pooling, fit checks, preprocessing notes.

``pool_tokens`` is the one implementation of the poolings for token outputs (timm's
``forward_features``, transformers' ``last_hidden_state``).  ``check_model_fits`` refuses,
in one line, a repository whose model is not the architecture its recipe describes (a
different class, width or number of class + register tokens would make the card's
embedding silently wrong).  ``preprocessing_notes`` records where the repository's own
preprocessing config differs from the card's (the card's is used).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from robustpath.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from robustpath.models.base import Preprocessing
    from robustpath.models.recipes import Recipe


def pool_tokens(tokens: "torch.Tensor", pooling: str, prefix_tokens: int) -> "torch.Tensor":
    """(B, N, D) tokens, class token first, then ``prefix_tokens - 1`` registers, then patches.

    "cls" → (B, D) the class token; "mean" → (B, D) the mean of the patch tokens (class and
    register tokens excluded); "cls+mean" → (B, 2D) both concatenated, class token first.
    """
    import torch

    cls = tokens[:, 0]
    if pooling == "cls":
        return cls
    mean = tokens[:, prefix_tokens:].mean(dim=1)
    return mean if pooling == "mean" else torch.cat([cls, mean], dim=-1)


def pooling_facts(pooling: str | None, chosen: bool, recipe: "Recipe | None") -> dict:
    """run.json facts: the pooling used and where it comes from (the user, the model card, the model)."""
    source = "--pooling" if chosen else ("model card" if recipe is not None else "model default")
    return {"pooling": pooling or "model head", "pooling_source": source}


def check_model_fits(recipe: "Recipe", name: str, *, architecture: str | None, width: int,
                     prefix_tokens: int) -> None:
    """Refuse a model that is not the architecture ``recipe`` states (one line naming the difference)."""
    problems = []
    if architecture is not None and architecture != recipe.architecture:
        problems.append(f"architecture '{architecture}', the recipe expects '{recipe.architecture}'")
    if width != recipe.width:
        problems.append(f"token width {width}, the recipe expects {recipe.width}")
    if prefix_tokens != recipe.prefix_tokens:
        problems.append(f"{prefix_tokens} class + register tokens, the recipe expects {recipe.prefix_tokens}")
    if problems:
        raise ModelError(f"model '{name}': the model in '{recipe.repo}' does not match its card's recipe: "
                         + "; ".join(problems))


def preprocessing_notes(card: "Preprocessing", repository: "Preprocessing | None", where: str) -> list[str]:
    """One note per field in which ``repository``'s preprocessing differs from the card's."""
    if repository is None:
        return []
    ours, theirs = card.as_dict(), repository.as_dict()
    differing = [key for key in ours if _differs(ours[key], theirs[key])]
    return [f"{where} gives {key}={theirs[key]}; the model card's {key}={ours[key]} is used" for key in differing]


def _differs(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return any(abs(float(x) - float(y)) > 1e-6 for x, y in zip(a, b))
    return a != b
