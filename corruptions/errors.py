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
    """One-line message for an unknown ``name``: a close match, then every valid name.

    >>> unknown_name_message("corruption", "blurr", ["gaussian_blur", "hue"])
    "unknown corruption 'blurr'; did you mean 'gaussian_blur'? valid: gaussian_blur, hue"
    """
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    if not close:  # substring matches catch 'blur' -> 'gaussian_blur'
        close = [v for v in valid if name and (name in v or v in name)][:1]
    hint = f"; did you mean '{close[0]}'?" if close else ";"
    return f"unknown {kind} '{name}'{hint} valid: {', '.join(valid) or '(none)'}"
