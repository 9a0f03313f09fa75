"""Errors the library raises for problems a user can fix.

The command line maps each class to an exit code and prints its message on one
line; the library itself never prints or exits.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class RobustPathError(Exception):
    """Base class: a problem with the user's input, data, model or environment."""

    exit_code = 1


class UsageError(RobustPathError):
    """An option, name or value on the command line or in a config is wrong."""

    exit_code = 2


class DataError(RobustPathError):
    """Images, folders or manifests cannot be read or do not make a dataset."""


class ModelError(RobustPathError):
    """A model spec or checkpoint cannot be resolved or loaded."""


class OutputError(RobustPathError):
    """An output folder or file cannot be written."""


def closest_name(name: str, valid: Iterable[str]) -> str | None:
    """The valid name ``name`` most likely means, or None.

    Case is ignored: first a name equal apart from case ('Hue' → 'hue'), then the
    closest by difflib (ratio ≥ 0.6), then the one valid name that contains ``name``
    or is contained in it ('Blur' → 'gaussian_blur').
    """
    valid = list(dict.fromkeys(valid))
    folded = {v.casefold(): v for v in valid}
    key = str(name).casefold()
    if key in folded:
        return folded[key]
    close = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.6)
    if close:
        return folded[close[0]]
    containing = [v for f, v in folded.items() if key and (key in f or f in key)]
    return containing[0] if len(containing) == 1 else None


def unknown_name_message(kind: str, name: str, valid: Iterable[str], *, plural: str | None = None,
                         listing: str | None = None, suggestion: str | None = None) -> str:
    """The one wording of an unknown name, for every option and registry.

    >>> unknown_name_message("corruption", "Blur", ["gaussian_blur", "hue"])
    "unknown corruption 'Blur'. Did you mean 'gaussian_blur'? Valid corruptions: gaussian_blur, hue"

    ``plural`` when it is not ``kind`` + "s"; ``listing`` replaces the list of valid
    names (for long lists, e.g. "see timm.list_models()"); ``suggestion`` replaces
    :func:`closest_name` (for names with a structure of their own, like model specs).
    """
    valid = list(dict.fromkeys(valid))
    suggestion = suggestion if suggestion is not None else closest_name(name, valid)
    hint = f" Did you mean '{suggestion}'?" if suggestion is not None else ""
    shown = listing if listing is not None else ", ".join(valid) or "(none)"
    return f"unknown {kind} '{name}'.{hint} Valid {plural or kind + 's'}: {shown}"
