"""Model-card recipes of the pathology foundation models, one module per family.

``list_recipes()`` gives every recipe, ``get_recipe(alias)`` one of them (None for an
alias without a recipe); ``UNSUPPORTED`` lists the models whose code robustpath cannot
load yet, each with a one-line message naming what is missing.  Importing this package
imports no model library.
"""
from __future__ import annotations

from robustpath.models.recipes import bioptimus, gigapath, hibou, kaiko, mahmood, owkin, paige
from robustpath.models.recipes.base import Layer, Recipe
from robustpath.models.recipes.unsupported import UNSUPPORTED, UnsupportedModel

__all__ = ["Layer", "Recipe", "UNSUPPORTED", "UnsupportedModel", "get_recipe", "list_recipes"]

_FAMILIES = (mahmood, paige, bioptimus, gigapath, owkin, kaiko, hibou)
_RECIPES: dict[str, Recipe] = {}
for _family in _FAMILIES:
    for _recipe in _family.RECIPES:
        if _recipe.alias in _RECIPES:
            raise ValueError(f"recipe alias '{_recipe.alias}' is defined twice")
        _RECIPES[_recipe.alias] = _recipe


def list_recipes() -> list[Recipe]:
    return list(_RECIPES.values())


def get_recipe(alias: str) -> Recipe | None:
    return _RECIPES.get(alias)
