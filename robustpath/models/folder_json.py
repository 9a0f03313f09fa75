"""Reading the JSON file that describes a model folder (config.json, fine_tune.json)."""
from __future__ import annotations

import json
from pathlib import Path

from robustpath.errors import ModelError


def read_folder_json(path: Path, needs: str) -> object:
    """The parsed JSON of a model folder's file ``path``.

    A missing file raises ModelError "'path' not found: {needs}"; an unreadable file or
    one that is not JSON raises ModelError naming the file and the parser's complaint.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"'{path}' not found: {needs}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"'{path}' is not valid JSON: {exc}") from None
