"""Which files in an output folder robustpath wrote: the file list ``OUT/.robustpath-files.json``.

Every publication (robustpath.output.output_folder) lists each file it put in the folder with
its size and SHA-256.  robustpath replaces or deletes a file only when the list names it
and the file still has the listed content; anything else in the folder is the user's and
is never touched.  Run folders written before the list existed are recognised by their
run.json and the names robustpath gave its outputs (``legacy_file_list``).
"""
from __future__ import annotations

import fnmatch
import json
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from robustpath.output.layout import FILE_LIST, legacy_run_files
from robustpath.util.atomic import file_sha256, write_json_atomic

FORMAT_VERSION = 1
KINDS = ("run", "report")
# What earlier versions wrote into a run folder, for folders without a file list.
LEGACY_RUN_FILES = legacy_run_files()


@dataclass(frozen=True)
class FileList:
    """The files robustpath put in a folder: relative POSIX path → {"size", "sha256"} (None: not recorded)."""

    kind: str
    files: dict[str, dict] = field(default_factory=dict)

    def unchanged(self, folder: Path, relative: str) -> bool:
        """The listed file is still a regular file with the listed size and content."""
        entry = self.files.get(relative)
        if entry is None or any(parent.is_symlink() for parent in parents_inside(folder, relative)):
            return False  # a link in the path leads out of the folder
        try:
            info = os.lstat(Path(folder) / relative)
        except OSError:
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        if entry.get("size") is not None and info.st_size != entry["size"]:
            return False
        return entry.get("sha256") is None or file_sha256(Path(folder) / relative) == entry["sha256"]

    def changed(self, folder: Path) -> list[str]:
        """Listed files that are still there but no longer hold what robustpath wrote."""
        return [rel for rel in sorted(self.files)
                if os.path.lexists(Path(folder) / rel) and not self.unchanged(folder, rel)]

    def top_level(self) -> set[str]:
        """First path components of the listed files (files and the folders that hold them)."""
        return {PurePosixPath(rel).parts[0] for rel in self.files}

    def folders(self) -> list[str]:
        """Folders that hold listed files, deepest first."""
        parents = {str(parent) for rel in self.files for parent in PurePosixPath(rel).parents if str(parent) != "."}
        return sorted(parents, key=lambda name: (-name.count("/"), name))


def parents_inside(folder: Path, relative: str) -> list[Path]:
    """The folders between ``folder`` and the file at ``relative`` (relative POSIX path), outermost first."""
    parts = PurePosixPath(relative).parts
    return [Path(folder).joinpath(*parts[:depth]) for depth in range(1, len(parts))]


def describe_files(root: Path) -> dict[str, dict]:
    """Every regular file under ``root`` → {"size", "sha256"} (links and other entries are left out)."""
    root = Path(root)
    files = {}
    for folder, names, file_names in os.walk(root):
        names.sort()
        for name in sorted(file_names):
            path = Path(folder) / name
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                files[path.relative_to(root).as_posix()] = {"size": info.st_size, "sha256": file_sha256(path)}
    return files


def write_file_list(folder: Path, file_list: FileList) -> Path:
    return write_json_atomic(Path(folder) / FILE_LIST, {
        "format_version": FORMAT_VERSION, "kind": file_list.kind,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": "the files robustpath wrote here; it replaces or deletes only these, and only while unchanged",
        "files": file_list.files,
    })


def read_file_list(folder: Path) -> FileList | None:
    """The file list in ``folder``; None when there is none or it cannot be trusted (nothing is then owned)."""
    try:
        data = json.loads((Path(folder) / FILE_LIST).read_text(encoding="utf-8"))
        files, kind = data["files"], data["kind"]
        if kind not in KINDS or not isinstance(files, dict) or not all(_valid(rel, entry) for rel, entry in files.items()):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return FileList(kind, files)


def _valid(relative: str, entry: object) -> bool:
    """A relative path inside the folder (no '..', not absolute) with a size and a digest."""
    parts = PurePosixPath(relative).parts
    return (bool(parts) and not PurePosixPath(relative).is_absolute() and ".." not in parts
            and isinstance(entry, dict) and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str))


def legacy_file_list(folder: Path) -> FileList:
    """The outputs of a run folder written before file lists existed, recognised by name (content not recorded)."""
    folder = Path(folder)
    files = {}
    for pattern in LEGACY_RUN_FILES:
        parent, _, name = pattern.rpartition("/")
        where = folder / parent if parent else folder
        if where.is_dir() and not where.is_symlink():
            for path in where.iterdir():
                if fnmatch.fnmatchcase(path.name, name) and path.is_file() and not path.is_symlink():
                    files[path.relative_to(folder).as_posix()] = {"size": None, "sha256": None}
    return FileList("run", files)
