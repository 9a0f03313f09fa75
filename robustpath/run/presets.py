"""The corruption preset of a run, loaded with the run's own error messages (light: no model code)."""
from __future__ import annotations

import corruptions

from robustpath.errors import UsageError


def load_preset_or_fail(name_or_path: "str | tuple[str, ...]"):
    """The preset of a run: one name or file, or several combined into one sweep (``corruptions.combine_presets``)."""
    names = (name_or_path,) if isinstance(name_or_path, str) else tuple(name_or_path)
    try:
        return corruptions.combine_presets([corruptions.load_preset(name) for name in names])
    except corruptions.CorruptionError as exc:  # an unknown name says so itself; a bad file gets the option's name
        raise UsageError(str(exc) if str(exc).startswith("unknown preset") else f"--preset: {exc}") from None
