"""Atomic file writes: a temporary file in the same folder, then a rename.

A reader (or a resumed run) never sees a half-written file.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from robustpath.errors import OutputError


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and check it can be written to."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder '{path}': {exc.strerror or exc}") from exc
    if not path.is_dir():
        raise OutputError(f"output path '{path}' exists and is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"output folder '{path}' is not writable")
    return path


def check_can_create(path: Path) -> Path:
    """Fail early, without creating anything, when ``path`` could not be written later."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output path '{path}' exists and is not a folder")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"output folder '{path}' cannot be created: '{ancestor}' is not writable")
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and a rename (mode as for open()).

    An OSError (a full disk, a quota, a vanished folder) becomes an OutputError naming
    ``path``; the old file, if any, is left as it was.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write '{path}': {exc.strerror or exc}") from None
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: object) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
