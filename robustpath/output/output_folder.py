"""An output folder robustpath writes (an eval run or a merged report): one writer at a time,
the outputs published all together, nothing deleted or replaced that robustpath did not write.

``OutputFolder.open`` creates the folder if needed and locks it (robustpath.output.folder_lock).
A publication then goes:

1. the outputs are written into ``OUT/.staging/``;
2. the file list of the new outputs is added (robustpath.output.owned_files) and every name they
   take in OUT is checked: a file there that robustpath did not write, or that was changed
   since, stops the publication before anything in OUT changes;
3. commit: ``.staging`` is renamed ``.publish``.  From this rename on, the new set is
   complete and will be published;
4. roll forward: the outputs are moved into OUT, the earlier outputs that the new set does
   not replace are deleted (listed and unchanged ones only; changed ones are kept, with a
   notice), a run's ``.partial`` store is removed, then its run.json and last the file
   list are moved in, and ``.publish`` is removed.

Ctrl-C is held back during steps 3 and 4 (a few renames), so an interrupted write leaves
either the earlier state or the complete new set.  A process killed during step 4 leaves
``.publish``: whoever opens the folder next finishes the roll forward first, and a
``.staging`` left by a killed process is discarded.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from robustpath.util.atomic import check_can_create, ensure_writable_dir, fsync_dir
from robustpath.errors import OutputError, UsageError
from robustpath.util.fault_points import fault_point
from robustpath.output.folder_lock import LOCK_FILE, FolderLock
from robustpath.output.owned_files import (
    FILE_LIST, FileList, describe_files, legacy_file_list, parents_inside, read_file_list, write_file_list,
)

from robustpath.output.layout import PARTIAL_DIR, RECORD_FILE  # noqa: E402
STAGING_DIR = ".staging"
PUBLISH_DIR = ".publish"
INTERNAL_NAMES = frozenset({LOCK_FILE, FILE_LIST, STAGING_DIR, PUBLISH_DIR, PARTIAL_DIR})
# Per kind of folder: files moved in after the other outputs, and stores removed before them.
_LAST_FILES = {"run": (RECORD_FILE,), "report": ()}
_DISCARDED = {"run": (PARTIAL_DIR,), "report": ()}


class OutputFolder:
    """A locked output folder of one ``kind`` ("run" or "report"); ``close`` unlocks it."""

    def __init__(self, path: Path, kind: str, lock: FolderLock, created: list[Path]) -> None:
        self.path = path
        self.kind = kind
        self.lock = lock
        self.created = created  # folders this process created, deepest first
        self.recovered = False  # an interrupted publication was finished on opening
        self.interrupted = False  # Ctrl-C came while the outputs were published (they are complete)
        self.kept: list[str] = []  # earlier outputs left in place because they were changed
        self.file_list = self._owned()

    @classmethod
    def open(cls, path: Path, kind: str) -> "OutputFolder":
        """Create (if needed) and lock ``path``, then finish or discard what an interrupted write left."""
        path = check_can_create(Path(path))
        created = [folder for folder in (path, *path.parents) if not folder.exists()]
        ensure_writable_dir(path)
        try:
            folder = cls(path, kind, FolderLock.acquire(path), created)
        except BaseException:
            _remove_empty(created)
            raise
        try:
            if (path / PUBLISH_DIR).is_dir():
                folder.kept += folder._roll_forward()
                folder.recovered = True
            shutil.rmtree(path / STAGING_DIR, ignore_errors=True)
        except BaseException:
            folder.close()
            raise
        return folder

    def close(self) -> None:
        """Unlock; a folder this process created and left empty is removed again."""
        self.lock.release()
        _remove_empty(self.created)
        self.created = []

    def _owned(self) -> FileList | None:
        """The file list; for a run folder of a version before file lists, its outputs recognised by name."""
        listed = read_file_list(self.path)
        if listed is None and self.kind == "run":
            try:
                if read_run_record(self.path / RECORD_FILE) is not None:
                    return legacy_file_list(self.path)
            except ValueError:
                pass
        return listed

    def claim(self) -> None:
        """Start an empty file list in a new folder: from now on only what it lists is robustpath's."""
        if self.file_list is None:
            self.file_list = FileList(self.kind)
            write_file_list(self.path, self.file_list)

    def refuse_unless_own(self) -> None:
        """UsageError unless the folder is empty or holds only robustpath's own outputs of this kind."""
        if self.file_list is not None and self.file_list.kind != self.kind:
            raise UsageError(f"'{self.path}' holds a robustpath {self.file_list.kind}, not a {self.kind}; choose "
                             "another --out")
        listed = self.file_list.top_level() if self.file_list else set()
        foreign = sorted(entry.name for entry in os.scandir(self.path)
                         if entry.name not in INTERNAL_NAMES and entry.name not in listed)
        if foreign:
            raise UsageError(
                f"'{self.path}' is not empty ({shown_names(foreign)}) and holds no robustpath {self.kind}; robustpath "
                f"writes only into a new or empty folder or one holding its own {self.kind}: choose another --out"
            )

    def kept_notices(self) -> list[str]:
        return [f"kept '{self.path / name}': it was changed after robustpath wrote it" for name in self.kept]

    def changed_files(self) -> list[str]:
        return self.file_list.changed(self.path) if self.file_list else []

    @contextmanager
    def publishing(self) -> Iterator[Path]:
        """Yield the staging folder to write the outputs into; publish them when the block ends."""
        staging = self.path / STAGING_DIR
        shutil.rmtree(staging, ignore_errors=True)
        ensure_writable_dir(staging)
        try:
            yield staging
            self._list_new_files(staging)
            fault_point("publish-commit")
            with _deferred_interrupt() as interrupt:
                os.rename(staging, self.path / PUBLISH_DIR)  # the commit: from here on the new set is published
                fsync_dir(self.path)
                self.kept += self._roll_forward()
            self.interrupted = interrupt["pending"]
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _list_new_files(self, staging: Path) -> None:
        """Add the file list of the staged outputs; OutputError (nothing in OUT changed) when one would replace a
        file that is not robustpath's own."""
        files = describe_files(staging)
        conflicts = [rel for rel in files if not self._replaceable(rel)]
        if conflicts:
            shown = shown_names([f"'{self.path / rel}'" for rel in conflicts])
            raise OutputError(
                f"not written: {shown} {'is' if len(conflicts) == 1 else 'are'} not robustpath's own output (or "
                f"changed since it was written); move {'it' if len(conflicts) == 1 else 'them'} out of '{self.path}' "
                "and run the command again"
            )
        write_file_list(staging, FileList(self.kind, files))
        fsync_dir(staging)

    def _replaceable(self, relative: str) -> bool:
        """Nothing is at ``relative`` (and its parents are real folders or absent), or robustpath's own file is."""
        for parent in parents_inside(self.path, relative):
            if os.path.lexists(parent) and (parent.is_symlink() or not parent.is_dir()):
                return False
        target = self.path / relative
        if not os.path.lexists(target):
            return True
        if self.file_list is not None and relative in self.file_list.files:
            return self.file_list.unchanged(self.path, relative)
        return relative in _LAST_FILES[self.kind] and target.is_file() and not target.is_symlink()

    def _roll_forward(self) -> list[str]:
        """Finish publishing ``.publish`` (idempotent: a killed roll forward is finished by the next one)."""
        publish = self.path / PUBLISH_DIR
        new = read_file_list(publish)
        if new is None:  # the file list is already in place: only the clean-up was left
            shutil.rmtree(publish, ignore_errors=True)
            return []
        last = _LAST_FILES[new.kind]
        for index, relative in enumerate(rel for rel in sorted(new.files) if rel not in last):
            self._move_in(publish, relative)
            if index == 0:
                fault_point("publish-outputs")
        kept = self._delete_earlier_outputs(new)
        for name in _DISCARDED[new.kind]:
            shutil.rmtree(self.path / name, ignore_errors=True)
        for relative in last:
            if relative in new.files:
                self._move_in(publish, relative)
        fault_point("publish-record")
        fsync_dir(self.path)
        os.replace(publish / FILE_LIST, self.path / FILE_LIST)
        shutil.rmtree(publish, ignore_errors=True)
        fsync_dir(self.path)
        self.file_list = new
        return kept

    def _move_in(self, publish: Path, relative: str) -> None:
        source = publish / relative
        if not source.exists():  # moved before an interruption
            return
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def _delete_earlier_outputs(self, new: FileList) -> list[str]:
        """Delete the earlier listed outputs that ``new`` does not replace; changed ones are kept → their names."""
        old = self.file_list
        if old is None:
            return []
        kept = []
        for relative in sorted(set(old.files) - set(new.files)):
            if not os.path.lexists(self.path / relative):
                continue
            if old.unchanged(self.path, relative):
                (self.path / relative).unlink()
            else:
                kept.append(relative)
        for folder in old.folders():
            try:
                (self.path / folder).rmdir()  # only when empty
            except OSError:
                pass
        return kept


def read_run_record(path: Path) -> dict | None:
    """A robustpath run record (with "completed" a bool; records of versions that wrote
    run.json only at the end lack it and count as complete); None when there is none.

    Raises ValueError when the file exists but is not a run record."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(record, dict) or not isinstance(record.get("spec"), dict) or not record.get("run_id"):
        raise ValueError("not a run record")
    record.setdefault("completed", True)
    if not isinstance(record["completed"], bool):
        raise ValueError("'completed' is not true or false")
    return record


def shown_names(names: list[str], limit: int = 4) -> str:
    """The first ``limit`` names, comma-separated, with "…" when there are more."""
    return ", ".join(names[:limit]) + (", …" if len(names) > limit else "")


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@contextmanager
def _deferred_interrupt() -> Iterator[dict]:
    """Hold Ctrl-C (SIGINT) back for the block; ``["pending"]`` says whether one came.

    Only where Python's own handler is installed and this is the main thread; elsewhere
    the block runs as it is.
    """
    state = {"pending": False}
    try:
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler:
            raise ValueError("not the default handler")
        signal.signal(signal.SIGINT, lambda *_: state.update(pending=True))
    except ValueError:  # not the main thread, or SIGINT is handled or ignored by someone else
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
