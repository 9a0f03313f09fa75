"""Atomic file writes: a temporary file in the same folder, then a rename.

A reader (or a resumed run) never sees a half-written file.  Folders are replaced the
same way (``replace_dir``): built aside, then swapped in by one rename where the system
allows it.  ``output_path`` turns an --out value into a path, refusing an empty one.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

from robustpath.errors import OutputError, UsageError

_CHUNK = 1 << 20


def output_path(value: str | os.PathLike, option: str = "--out") -> Path:
    """``value`` as a Path; an empty or blank value is a UsageError (it would mean the current folder)."""
    if not str(value).strip():
        raise UsageError(f"{option} is empty: give a folder name (an unset shell variable?)")
    return Path(value)


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


@contextlib.contextmanager
def open_atomic(path: Path):
    """A binary file handle whose content appears at ``path`` only when the block ends without error.

    The content goes to a temporary file beside ``path``, is flushed to disk and renamed
    over ``path`` (mode as for open()). An OSError (a full disk, a quota, a vanished
    folder) becomes an OutputError naming ``path``; the old file, if any, is left as it was.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    # the name is chosen before the file exists, so that an interruption at any point
    # (Ctrl-C inside the call that creates it included) leaves no temporary file behind
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write '{path}': {exc.strerror or exc}") from None
        raise


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (``open_atomic``'s temporary file, rename and errors)."""
    with open_atomic(path) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: object) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make the renames inside ``path`` durable (best effort: not every system can fsync a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_cwd, rename_exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(second))


def replace_dir(staging: Path, target: Path) -> None:
    """Put the folder ``staging`` at ``target``; an existing ``target`` is swapped out in one
    atomic step where the system allows it, then deleted.

    Elsewhere ``target`` is first renamed to ``.<name>.<pid>.old`` beside it, so a process
    killed between the two renames leaves both folders complete.
    """
    staging, target = Path(staging), Path(target)
    if not os.path.lexists(target):
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging)  # now holds the old folder
    else:
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old)
    fsync_dir(target.parent)
