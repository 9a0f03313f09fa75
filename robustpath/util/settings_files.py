"""Read a TOML or JSON settings file (prompts, run configs) with one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

from robustpath.errors import UsageError


def read_settings_file(path: Path, option: str) -> object:
    """Parse ``path`` as JSON (``.json``) or TOML (anything else); errors name ``option`` and the file."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{option}: '{path}' not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{option}: cannot read '{path}': {exc}") from None
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        return json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except ValueError as exc:  # json and tomllib decode errors are ValueErrors
        raise UsageError(f"{option}: '{path}' is not valid {kind}: {exc}") from None
