"""What the model adapters share: Hub downloads that fail fast, safe weights, geometry.

Network policy.  Local paths never touch the network.  A Hub name is fetched
through ``download_hub_file`` / ``download_hub_snapshot``:

- ``HF_HUB_OFFLINE`` set (1/true/yes/on): the local Hugging Face cache only;
  a miss raises ModelError at once.
- otherwise one HEAD request to the Hub endpoint (``HF_ENDPOINT``; proxies
  from the environment apply), bounded to ``PROBE_TIMEOUT`` seconds, DNS
  included; no answer means the local cache only, then ModelError.  This
  replaces huggingface_hub's retry loop, which stalls 20-45 s with no network.
- ``HF_TOKEN`` is read by huggingface_hub itself (gated repositories need it).

Every failure says how to use a local copy (``hf download ORG/REPO --local-dir
DIR``, then a local spec form).  Weights are untrusted data: safetensors, or
``torch.load(weights_only=True)``, which refuses any pickle that names code.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from robustpath.errors import ModelError
from robustpath.models.base import Preprocessing

if TYPE_CHECKING:  # pragma: no cover
    import torch

PROBE_TIMEOUT = 3.0
_PROBE_TTL = 60.0
_probe_cache: dict[str, tuple[float, bool]] = {}
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no network."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _probe(url: str, timeout: float) -> bool:
    """One HEAD request (proxies from the environment apply), in a daemon thread so that a
    hanging DNS lookup or a connection that is accepted and then stalls is bounded too.
    Any HTTP answer, even an error status, means the endpoint is reachable."""
    import urllib.error
    import urllib.request

    result = [False]

    def request() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            result[0] = True
        except urllib.error.HTTPError:
            result[0] = True
        except Exception:  # noqa: BLE001 - any other failure means "not reachable"
            pass

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0]


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the Hub endpoint answers within ``timeout`` seconds; cached for a minute."""
    url = _endpoint()
    now = time.monotonic()
    cached = _probe_cache.get(url)
    if cached and now - cached[0] < _PROBE_TTL:
        return cached[1]
    ok = _probe(url, timeout)
    _probe_cache[url] = (now, ok)
    return ok


def local_copy_hint(repo_id: str, local_form: str) -> str:
    return (f"to use a local copy, run `hf download {repo_id} --local-dir DIR` where the network is available "
            f"and pass {local_form}")


def _fetch(fetch: Callable[[bool], str], repo_id: str, what: str, spec: str, local_form: str) -> Path:
    """Run ``fetch(local_files_only)`` under the network policy above; errors become ModelError."""
    from huggingface_hub import errors

    hint = local_copy_hint(repo_id, local_form)
    local_only = hub_offline()
    reason = "HF_HUB_OFFLINE is set"
    if not local_only and not hub_reachable():
        local_only, reason = True, f"{_endpoint()} does not answer"
    try:
        return Path(fetch(local_only))
    except errors.LocalEntryNotFoundError:
        if local_only:
            raise ModelError(f"model '{spec}': no copy of {what} from '{repo_id}' in the local Hugging Face cache, "
                             f"and {reason}; {hint}") from None
        raise ModelError(f"model '{spec}': download of {what} from '{repo_id}' failed (network); {hint}") from None
    except errors.GatedRepoError:
        raise ModelError(f"model '{spec}': '{repo_id}' is gated: accept its terms at https://huggingface.co/{repo_id} "
                         "and set HF_TOKEN to a token of that account") from None
    except errors.RepositoryNotFoundError:
        raise ModelError(f"model '{spec}': '{repo_id}' was not found on the Hugging Face Hub "
                         "(a private repository needs HF_TOKEN)") from None
    except errors.RevisionNotFoundError:
        raise ModelError(f"model '{spec}': '{repo_id}' has no such revision") from None
    except errors.EntryNotFoundError:
        raise ModelError(f"model '{spec}': '{repo_id}' has no {what}") from None
    except (errors.HfHubHTTPError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model '{spec}': download of {what} from '{repo_id}' failed: {first}; {hint}") from None


def download_hub_file(repo_id: str, filename: str, *, spec: str, local_form: str) -> Path:
    """Path of ``filename`` from Hub repository ``repo_id`` (cache first; see module doc)."""
    from huggingface_hub import hf_hub_download

    return _fetch(lambda local: hf_hub_download(repo_id, filename, local_files_only=local),
                  repo_id, f"file '{filename}'", spec, local_form)


def download_first_hub_file(repo_id: str, filenames: list[str], *, spec: str, local_form: str) -> Path:
    """The first of ``filenames`` that ``repo_id`` has (e.g. safetensors before a pickle)."""
    for name in filenames[:-1]:
        try:
            return download_hub_file(repo_id, name, spec=spec, local_form=local_form)
        except ModelError as exc:
            if f"has no file '{name}'" not in str(exc) and "no copy of" not in str(exc):
                raise
    return download_hub_file(repo_id, filenames[-1], spec=spec, local_form=local_form)


def download_hub_snapshot(repo_id: str, patterns: list[str], *, spec: str, local_form: str) -> Path:
    """Folder holding the files of ``repo_id`` that match ``patterns`` (cache first)."""
    from huggingface_hub import snapshot_download

    return _fetch(lambda local: snapshot_download(repo_id, allow_patterns=patterns, local_files_only=local),
                  repo_id, "the model files", spec, local_form)


REMOTE_CODE_REFUSED = ("it ships its own code (auto_map), which runs only with --trust-remote-code "
                       "(trust_remote_code=True in Python): pass it only if you trust that code")


@contextlib.contextmanager
def no_code_prompts():
    """While a model loads, transformers never asks on stdin whether to run a repository's code.

    transformers prompts ("run the custom code? [y/N]", waiting 15 s) when a caller leaves
    trust_remote_code unset, as open_clip does for Hugging Face text towers; with its
    prompt time at 0 it refuses at once (a ValueError) instead.
    """
    try:
        from transformers import dynamic_module_utils
    except ImportError:  # without transformers nothing can prompt
        yield
        return
    previous = dynamic_module_utils.TIME_OUT_REMOTE_CODE
    dynamic_module_utils.TIME_OUT_REMOTE_CODE = 0
    try:
        yield
    finally:
        dynamic_module_utils.TIME_OUT_REMOTE_CODE = previous


def code_in_config(folder: Path) -> str | None:
    """The file of ``folder`` whose ``auto_map`` names repository code (config, tokenizer, processor), if any."""
    import json

    for name in ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json"):
        try:
            data = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("auto_map"):
            return name
    return None


def hub_commit(path: Path) -> str | None:
    """The commit hash of a file or folder inside the Hugging Face cache, if it is there."""
    parts = Path(path).resolve().parts
    if "snapshots" in parts[:-1]:
        return parts[parts.index("snapshots") + 1]
    return None


def file_sha256(path: Path) -> str:
    """SHA-256 of a weights file, computed once per (path, size, mtime)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def add_provenance(facts: dict, weights: Path, notes: list[str]) -> dict:
    """Add the weights' Hub commit (when downloaded) and preprocessing notes to ``facts``."""
    commit = hub_commit(weights)
    if commit:
        facts["hub_commit"] = commit
    if notes:
        facts["preprocessing_notes"] = list(notes)
    return facts


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte header length and a JSON header."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a constants.pkl record (torch.load would run them)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in archive.namelist())


def load_state_dict_file(path: Path, *, spec: str) -> dict:
    """Tensors from a safetensors file or a weights-only torch checkpoint (CPU).

    A pickle that names any code (a class, a function) and a TorchScript archive
    are refused before anything runs.  ``{"state_dict": ...}`` / ``{"model": ...}``
    wrappers and a ``module.`` prefix (DataParallel) are removed; other
    non-tensor entries (epoch, optimizer) are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model '{spec}': weights file '{path}' not found")
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"model '{spec}': '{path}' is not a readable safetensors file: {exc}") from None
    if path.suffix == ".safetensors":
        raise ModelError(f"model '{spec}': '{path}' is not a safetensors file (no safetensors header)")
    import pickle

    import torch

    from robustpath.models.pickles import quiet_pickle_warnings, refused_pickle

    if _is_torchscript(path):
        raise ModelError(f"model '{spec}': '{path}' is a TorchScript archive (code) that robustpath will not load; "
                         "convert its weights to safetensors")
    try:
        with quiet_pickle_warnings():
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise refused_pickle(path, spec, unpickling_reason(exc)) from None
    except (RuntimeError, ValueError, EOFError, OSError, AttributeError, TypeError) as exc:
        raise ModelError(f"model '{spec}': '{path}' is not a readable torch checkpoint: {first_line(exc)}") from None
    return _unwrap_state_dict(checkpoint, path, spec)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name when there is none)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def unpickling_reason(exc: BaseException) -> str:
    """The line of torch's weights-only message that says what it refused ("Unsupported ...")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if line.startswith(("Unsupported", "Trying to load"))), first_line(exc))


def _unwrap_state_dict(checkpoint, path: Path, spec: str) -> dict:
    import torch

    state = checkpoint
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ModelError(f"model '{spec}': '{path}' holds a {type(state).__name__}, expected a dict of tensors")
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ModelError(f"model '{spec}': '{path}' holds no tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def state_dict_problems(expected: dict, state: dict) -> list[str]:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``expected``, by name."""

    def listed(keys: list[str]) -> str:
        return f"{keys[:5]}{' …' if len(keys) > 5 else ''}"

    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shaped = sorted(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                    for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys {listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {listed(unexpected)}")
    if shaped:
        problems.append(f"mis-shaped keys {listed(shaped)}")
    return problems


def load_strict(model: "torch.nn.Module", state: dict, *, path: Path, spec: str) -> None:
    """Load ``state`` into ``model`` exactly, or raise naming the keys that do not fit."""
    problems = state_dict_problems(model.state_dict(), state)
    if problems:
        raise ModelError(f"model '{spec}': weights '{Path(path).name}' do not fit the architecture: "
                         + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def patch_side(patch) -> int | None:
    """A model's patch size as one number of pixels (the smaller side of a non-square patch); None if unknown."""
    if isinstance(patch, (tuple, list)) and patch:
        sides = [patch_side(side) for side in patch]
        return min(sides) if all(sides) else None
    if isinstance(patch, bool) or not isinstance(patch, (int, float)) or patch <= 0:
        return None
    return int(patch)


def make_preprocessing(input_size: tuple[int, int], mean, std, *, resize_mode: str, crop: str,
                       resize_size: int | None, notes: list[str]) -> Preprocessing:
    """A Preprocessing; ``resize_size`` is the shorter side before a centre crop (e.g. 256 → 224)."""
    size = (int(input_size[0]), int(input_size[1]))
    kwargs = dict(input_size=size, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
                  resize_mode=resize_mode, crop=crop)
    if crop == "center" and resize_size is not None and int(resize_size) != max(size):
        kwargs["resize_size"] = int(resize_size)
    return Preprocessing(**kwargs)


def model_device(model: "torch.nn.Module") -> "torch.device":
    import torch

    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
