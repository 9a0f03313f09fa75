"""Say, in one line, why a pickle checkpoint was refused, without unpickling it.

``torch.load(weights_only=True)`` decides what robustpath loads.  When it refuses a
file its own message is long and misleading: it suggests ``weights_only=False``
(which would run the file's code), and a protocol-4 pickle reads as "Unsupported
operand 149".  This module reads the pickle opcodes with ``pickletools``, which only
parses (it never imports or calls anything), to name the code the file refers to.
"""
from __future__ import annotations

import contextlib
import io
import pickletools
import warnings
import zipfile
from pathlib import Path

from robustpath.errors import ModelError

_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
                   "STRING", "SHORT_BINBYTES", "BINBYTES"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_SCAN_LIMIT = 64 << 20  # bytes of pickle read per stream: opcodes come first, tensor data later


def _streams(path: Path) -> list[bytes]:
    """The pickles of a checkpoint: the .pkl records of a torch zip archive, or the file itself."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [archive.read(name)[:_SCAN_LIMIT] for name in archive.namelist() if name.endswith(".pkl")]
    with open(path, "rb") as handle:
        return [handle.read(_SCAN_LIMIT)]


def _globals_in(data: bytes) -> list[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL / INST in the pickles of ``data``, in order."""
    found: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):  # a legacy torch file holds several pickles back to back
        recent: list[object] = []
        memo: dict[int, object] = {}
        try:
            for opcode, argument, _ in pickletools.genops(stream):
                name = opcode.name
                if name in _STRING_OPCODES:
                    recent.append(argument.decode("latin-1") if isinstance(argument, bytes) else argument)
                elif name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif name in _MEMO_PUT:
                    memo[argument] = recent[-1] if recent else None
                elif name in _MEMO_GET:
                    recent.append(memo.get(argument))
                elif name in ("GLOBAL", "INST"):
                    found.append(str(argument).replace(" ", "."))
                elif name == "STACK_GLOBAL" and len(recent) >= 2:
                    found.append(f"{recent[-2]}.{recent[-1]}")
        except Exception:  # noqa: BLE001 - raw tensor bytes after the pickles, or a damaged file
            break
    return found


def _allowed_globals() -> set[str]:
    """What torch's weights-only unpickler accepts (tensor rebuilding, OrderedDict, ...)."""
    try:
        from torch import _weights_only_unpickler as unpickler

        return set(unpickler._get_allowed_globals()) | set(unpickler._get_user_allowed_globals())
    except Exception:  # noqa: BLE001 - a torch without these helpers: name every global
        return set()


def pickled_code(path: Path) -> list[str]:
    """The globals (classes, functions) a pickle checkpoint names that weights-only loading refuses."""
    try:
        streams = _streams(Path(path))
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return []
    allowed = _allowed_globals()
    names = [name for data in streams for name in _globals_in(data) if name not in allowed]
    return list(dict.fromkeys(names))


def refused_pickle(path: Path, spec: str, reason: str | None = None) -> ModelError:
    """The one-line error for a pickle checkpoint that weights-only loading refused (nothing ran)."""
    names = pickled_code(path)
    if names:
        shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
        held = f"pickled code ({shown})"
    else:
        held = "pickled objects" + (f" ({reason})" if reason else "")
    return ModelError(f"model '{spec}': '{path}' contains {held} that robustpath will not load (weights-only "
                      "loading; nothing was run); convert it to safetensors")


@contextlib.contextmanager
def quiet_pickle_warnings():
    """torch warns on stderr about pickle protocols it reads; the library does not print."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
