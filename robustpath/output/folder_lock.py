"""One writer per output folder: an exclusive ``flock`` on ``FOLDER/.lock`` (``msvcrt.locking`` on Windows).

The lock belongs to an open file, so the system releases it when its process ends,
however it ends (SIGKILL included): a killed run never leaves a folder locked.  The
file holds the holder's pid, host and start time, for the message a second writer
gets.  Forked children (plot workers, data-loader workers) close their copy at once,
so a child that outlives its parent does not keep the folder locked.
"""
from __future__ import annotations

import json
import os
import socket
import weakref
from datetime import datetime, timezone
from pathlib import Path

from robustpath.errors import OutputError

try:
    import fcntl
except ImportError:  # Windows: a lock on the file's first byte, also released when the process ends
    fcntl = None
    import msvcrt

from robustpath.output.layout import LOCK_FILE  # noqa: E402
_HELD: "weakref.WeakValueDictionary[int, FolderLock]" = weakref.WeakValueDictionary()  # fd → lock, this process


def _try_lock(fd: int) -> bool:
    """Lock the open file ``fd`` exclusively at once → True, or False when another process holds it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except PermissionError:  # held by another process
        return False
    return True


class FolderBusy(OutputError):
    """Another process holds the lock of the output folder."""


class FolderLock:
    """An exclusive lock on ``folder`` (which must exist), held until ``release``."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = Path(folder)
        self.fd: int | None = fd

    @classmethod
    def acquire(cls, folder: Path) -> "FolderLock":
        """Lock ``folder`` at once, or raise FolderBusy naming the holder."""
        path = Path(folder) / LOCK_FILE
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot lock output folder '{folder}': {exc.strerror or exc}") from None
            try:
                locked = _try_lock(fd)
            except OSError as exc:  # e.g. a file system without locks
                os.close(fd)
                raise OutputError(f"cannot lock output folder '{folder}': {exc.strerror or exc}") from None
            if not locked:
                holder = _describe_holder(fd)
                os.close(fd)
                raise FolderBusy(
                    f"'{folder}' is in use by another robustpath process{holder}; wait for it to finish or choose "
                    "another --out"
                ) from None
            if _still_linked(fd, path):  # else the holder before us removed it: lock the new file
                break
            os.close(fd)
        lock = cls(folder, fd)
        _HELD[fd] = lock
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(holder).encode())
        return lock

    def release(self) -> None:
        """Remove the lock file and unlock (removing first: a waiting process then locks a new file)."""
        if self.fd is None:
            return
        try:
            (self.folder / LOCK_FILE).unlink(missing_ok=True)
        except OSError:
            pass
        _HELD.pop(self.fd, None)
        os.close(self.fd)
        self.fd = None

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001  (at interpreter exit the system releases the lock anyway)
            pass


def _still_linked(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _describe_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 4096) or b"{}")
        return f" (pid {int(holder['pid'])} on {holder['host']}, since {holder['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _close_in_child() -> None:
    """After a fork: drop this process's copies of held locks without unlocking (the parent keeps them)."""
    for fd, lock in list(_HELD.items()):
        lock.fd = None
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)
