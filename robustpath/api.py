"""The Python API: ``robustpath.evaluate(...)`` and ``robustpath.train(...)``."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def evaluate(model: str = "customvit-demo", data: str = "demo-ihc", *, out: str | Path | None = None,
             progress=None, **options) -> "pd.DataFrame":
    """Evaluate ``model`` on ``data`` clean and corrupted; return the results table.

    ``options`` are RunSpec fields: tasks, corruptions, severities, stage, preset,
    device, batch_size, num_workers, seed, test_fraction, prompts, templates,
    pooling, trust_remote_code, on_bad_image, deterministic (sequences may be lists).  With
    ``out`` the run also writes results.csv, report.md and run.json there.
    The DataFrame has the results schema (robustpath.results.SCHEMA_COLUMNS
    plus derived columns); its ``attrs["record"]`` holds the run.json record.
    """
    import dataclasses

    from robustpath.config import RunSpec
    from robustpath.errors import UsageError
    from robustpath.runner import run_evaluation

    fields = {f.name for f in dataclasses.fields(RunSpec)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UsageError(f"evaluate() got unknown option(s) {unknown}; expected some of {sorted(fields - {'model', 'data', 'out'})}")
    for key in ("tasks", "corruptions", "severities", "samples_per_class"):
        if key in options:
            options[key] = tuple([options[key]] if isinstance(options[key], (str, int)) else options[key])
    spec = RunSpec(model=model, data=data, out=Path(out) if out is not None else None, **options)
    result = run_evaluation(spec, progress=progress)
    if out is not None:
        from robustpath.report.files import write_run_outputs

        write_run_outputs(result, Path(out))
    table = result.table.copy()
    table.attrs["record"] = result.record
    return table


def train(data: str = "demo-ihc", out: str | Path = "customvit", **options) -> Path:
    """Train a CustomViT (see robustpath.training.TrainSpec for options); returns its folder."""
    from robustpath.training import TrainSpec, train_customvit

    result = train_customvit(TrainSpec(data=data, out=Path(out), **options))
    return result.path
