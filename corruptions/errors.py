"""The one error type this package raises, and its "did you mean" helper."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class CorruptionError(ValueError):
    """A corruption, operation, preset or severity is unknown or malformed.

    Messages are one line and say what was expected, so a command-line tool can
    print them as they are.
    """


def unknown_name_message(kind: str, name: str, valid: Iterable[str]) -> str:
    """One-line message for an unknown ``name``: a close match (case ignored), then every valid name.

    >>> unknown_name_message("corruption", "Blur", ["gaussian_blur", "hue"])
    "unknown corruption 'Blur'. Did you mean 'gaussian_blur'? Valid corruptions: gaussian_blur, hue"

    The wording and the matching are robustpath's (robustpath.errors.unknown_name_message,
    tested to agree); this package is stand-alone, so it has its own copy.
    """
    valid = sorted(dict.fromkeys(valid))
    folded = {v.casefold(): v for v in valid}
    key = str(name).casefold()
    close = [folded[key]] if key in folded else [folded[c] for c in difflib.get_close_matches(key, list(folded), n=1, cutoff=0.6)]
    if not close:  # substring matches catch 'blur' -> 'gaussian_blur'
        containing = [v for f, v in folded.items() if key and (key in f or f in key)]
        close = containing if len(containing) == 1 else []
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind} '{name}'.{hint} Valid {kind}s: {', '.join(valid) or '(none)'}"
