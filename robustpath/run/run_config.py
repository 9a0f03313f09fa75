"""Run configs: one TOML file describing a sweep over models and datasets.

A config holds any RunSpec field at the top level (``data``, ``tasks``,
``corruptions``, ``severities``, ``stage``, ``preset``, ``device``,
``batch_size``, ``seed``, ``prompts``, ``templates``, ``pooling``, ``out``, …),
plus ``models`` and ``datasets`` lists that expand into one run per pair::

    models = ["customvit-demo", { spec = "dinov2-small", pooling = "cls+mean" }]
    datasets = ["demo-ihc", "data/my_patches.csv"]
    corruptions = ["gaussian_blur", "resolution"]
    stage = "both"
    out = "runs/blur-study"

Relative paths are read relative to the config file.  Options given on the
command line (or through ROBUSTPATH_* variables) override the file.  A run.json
written by robustpath is accepted too: its resolved "spec" is re-run as it was.

A file never switches on repository code: ``trust_remote_code = true`` (at the top
level, for one model, or in a replayed run.json) is refused unless
``--trust-remote-code`` is given on the command line as well.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from robustpath.spec.run_spec import RunSpec
from robustpath.errors import UsageError

_FIELDS = {f.name: f for f in dataclasses.fields(RunSpec)}
_TUPLES = {"tasks", "corruptions", "severities", "samples_per_class"}
_PATHS = {"prompts", "out", "cache_dir"}
_OPTIONAL_STRINGS = {"templates", "pooling"}
_STRINGS = {"model", "data", "preset", "device", "stage", "on_bad_image", "gallery", "embeddings_dtype", "predictions"}
_SWEEP_KEYS = {"models", "datasets"}
REMOTE_CODE = "trust_remote_code"


def _read(path: Path) -> dict:
    from robustpath.util.settings_files import read_settings_file

    data = read_settings_file(path, "--config")
    if path.suffix.lower() == ".json" and isinstance(data, dict):
        data = data.get("spec", data)  # a run.json: re-run its resolved options
    if not isinstance(data, dict):
        raise UsageError(f"--config: '{path}' must hold a table of run options")
    return data


def _check_value(key: str, value, path: Path):
    """One run option of the file, checked; lists become tuples, relative paths resolve against the file's folder."""
    if key in _TUPLES:
        return _check_list(key, value, path)
    if key == "preset" and isinstance(value, list):
        if not value or not all(isinstance(v, str) for v in value):
            raise UsageError(f"--config: '{path}': 'preset' must be a preset name or file, or a non-empty list of them")
        return tuple(value)
    if key in _PATHS and value is not None:
        return _check_path(key, value, path)
    if (key in _STRINGS or (key in _OPTIONAL_STRINGS and value is not None)) and not isinstance(value, str):
        raise UsageError(f"--config: '{path}': '{key}' must be a string, got {value!r}")
    return value


def _check_list(key: str, value, path: Path) -> tuple:
    item_type = int if key in ("severities", "samples_per_class") else str
    if not isinstance(value, list) or not all(isinstance(v, item_type) and not isinstance(v, bool) for v in value):
        raise UsageError(f"--config: '{path}': '{key}' must be a list of {item_type.__name__}s")
    return tuple(value)


def _check_path(key: str, value, path: Path) -> Path:
    if not isinstance(value, str):
        raise UsageError(f"--config: '{path}': '{key}' must be a path (a string), got {value!r}")
    if not value.strip():  # would mean the config's own folder
        raise UsageError(f"--config: '{path}': '{key}' is empty; give a path")
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else (path.parent / candidate)


def _check_document(data: dict, path: Path, overrides: dict) -> None:
    """Known keys, non-empty sweep lists, and no repository code switched on by the file."""
    unknown = sorted(set(data) - set(_FIELDS) - _SWEEP_KEYS)
    if unknown:
        raise UsageError(f"--config: '{path}' has unknown key(s) {unknown}; expected some of {sorted(set(_FIELDS) | _SWEEP_KEYS)}")
    for key in _SWEEP_KEYS & set(data):
        if not isinstance(data[key], list) or not data[key]:
            raise UsageError(f"--config: '{path}': '{key}' must be a non-empty list")
    _check_remote_code(data, path, allowed=overrides.get(REMOTE_CODE) is True)


def _check_remote_code(data: dict, path: Path, allowed: bool) -> None:
    """Repository code runs only when the command line (or the API call) asks for it, never a file."""
    tables = [("", data)] + [(f" for model '{m.get('spec')}'", m) for m in data.get("models", []) if isinstance(m, dict)]
    for where, table in tables:
        value = table.get(REMOTE_CODE, False)
        if not isinstance(value, bool):
            raise UsageError(f"--config: '{path}': '{REMOTE_CODE}'{where} must be true or false, got {value!r}")
        if value and not allowed:
            raise UsageError(
                f"--config: '{path}' sets {REMOTE_CODE} = true{where}, and a file may not switch on repository "
                "code; pass --trust-remote-code on the command line if you trust that model's code"
            )


def _local(value: str, path: Path) -> str:
    """A data or preset value that names a relative file resolves against the config's folder."""
    candidate = path.parent / value
    return str(candidate) if not Path(value).is_absolute() and candidate.exists() else value


def load_run_config(path: Path, overrides: dict) -> list[RunSpec]:
    """One RunSpec per (model, dataset) of the config, with ``overrides`` applied last."""
    from robustpath.tasks import DEFAULT_TASKS

    path = Path(path)
    data = _read(path)
    _check_document(data, path, overrides)
    base = _base_options(data, path)
    models = data.get("models", [base.get("model")] if base.get("model") else [])
    datasets = [_local(str(d), path) for d in data.get("datasets", [base.get("data", "demo-ihc")])]
    if not models:
        raise UsageError(f"--config: '{path}' names no model: set 'model' or 'models'")
    runs = []
    for entry in models:
        model = _model_entry(entry, path)
        for dataset in datasets:
            values = {"tasks": DEFAULT_TASKS, **base, "model": model["spec"], "data": dataset}
            values.update({k: v for k, v in model.items() if k != "spec"})
            values.update(overrides)
            runs.append(values)
    specs = [_make_spec(values, path, several=len(runs) > 1) for values in runs]
    return _distinct_outputs(specs)


def _base_options(data: dict, path: Path) -> dict:
    """The file's run options, checked, with data and preset files resolved against its folder."""
    base = {k: _check_value(k, v, path) for k, v in data.items() if k in _FIELDS}
    for key in ("data", "preset"):
        if isinstance(base.get(key), str):
            base[key] = _local(base[key], path)
    if isinstance(base.get("preset"), tuple):
        base["preset"] = tuple(_local(name, path) for name in base["preset"])
    return base


def _model_entry(entry, path: Path) -> dict:
    """A 'models' entry as a table with 'spec' (and 'pooling', 'trust_remote_code')."""
    model = dict(entry) if isinstance(entry, dict) else {"spec": entry}
    if not isinstance(model.get("spec"), str) or set(model) - {"spec", "pooling", "trust_remote_code"}:
        raise UsageError(f"--config: '{path}': each model is a spec string or a table with 'spec' (and 'pooling')")
    return model


def _distinct_outputs(specs: list[RunSpec]) -> list[RunSpec]:
    """Two runs never share an output folder: repeats get __2, __3, … appended."""
    seen: dict[str, int] = {}
    distinct = []
    for spec in specs:
        key = str(spec.out)
        if spec.out is not None and key in seen:
            seen[key] += 1
            spec = dataclasses.replace(spec, out=Path(f"{key}__{seen[key]}"))
        else:
            seen[key] = 1
        distinct.append(spec)
    return distinct


def run_folder_name(data: str, model: str) -> str:
    """<dataset>__<model> with characters outside [A-Za-z0-9._-] replaced by '_'."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{Path(data).name}__{Path(model).name}")


def _make_spec(values: dict, path: Path, several: bool) -> RunSpec:
    """With several runs, each writes to OUT/<dataset>__<model>."""
    if several and values.get("out") is not None:
        values["out"] = Path(values["out"]) / run_folder_name(values["data"], values["model"])
    try:
        return RunSpec(**values)
    except (TypeError, UsageError) as exc:
        raise UsageError(f"--config: '{path}': {exc}") from None
