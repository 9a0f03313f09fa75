"""The Python API: ``robustpath.evaluate(...)``, ``robustpath.train(...)`` and ``robustpath.load_embeddings(...)``."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.embedding.saved import load_embeddings as _load_saved_embeddings
from robustpath.errors import UsageError
from robustpath.models.training import TrainSpec, train_customvit
from robustpath.run.runner import evaluate_and_write
from robustpath.spec.run_spec import RunSpec
from robustpath.util.atomic import output_path

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def evaluate(model: str = "customvit-demo", data: str = "demo-ihc", *, out: str | Path | None = None,
             progress=None, **options) -> "pd.DataFrame | None":
    """Evaluate ``model`` on ``data`` clean and corrupted; return the results table.

    ``options`` are RunSpec fields: tasks, corruptions, severities, stage, preset,
    device, batch_size, num_workers, seed, test_fraction, prompts, templates,
    pooling, trust_remote_code, on_bad_image, deterministic, save_embeddings,
    embeddings_dtype, bootstrap (resamples behind intervals and drop p-values,
    default 1,000; 10,000 for publication) (sequences may be lists).  With ``out`` the run also writes
    results.csv, predictions.csv, misclassified.csv, report.md, report.html and run.json there
    (and embeddings/ with ``save_embeddings=True``).
    The DataFrame has the results schema (robustpath.results.table.SCHEMA_COLUMNS
    plus derived columns); its ``attrs["record"]`` holds the run.json record.
    In a script started by torchrun the processes share the work; rank 0 gets the
    table (and writes ``out``), the other ranks get None.
    """
    fields = {f.name for f in dataclasses.fields(RunSpec)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UsageError(f"evaluate() got unknown option(s) {unknown}; expected some of {sorted(fields - {'model', 'data', 'out'})}")
    for key in ("tasks", "corruptions", "severities", "samples_per_class"):
        if key in options:
            options[key] = tuple([options[key]] if isinstance(options[key], (str, int)) else options[key])
    if options.get("save_embeddings") and out is None:
        raise UsageError("evaluate(save_embeddings=True) needs out=: the embeddings are written to OUT/embeddings/")
    spec = RunSpec(model=model, data=data, out=output_path(out, "out") if out is not None else None, **options)
    written = evaluate_and_write(spec, progress=progress)
    if written is None:  # not rank 0 of a torchrun launch
        return None
    result, _ = written
    table = result.table.copy()
    table.attrs["record"] = result.record
    return table


def load_embeddings(run_dir: str | Path):
    """The embeddings a run saved (``save_embeddings=True`` / ``--save-embeddings``).

    Returns a robustpath.embedding.saved.RunEmbeddings: ``.samples`` (DataFrame of
    every sample), ``.variants`` (keys such as "gaussian_blur/2/pre"), ``[key]`` →
    (torch tensor (n, D), DataFrame of those n samples in the same order; "clean"
    for the clean set), ``.text`` (zero-shot class embeddings (K, D) or None),
    ``.classes`` and ``.dtype``.
    """
    return _load_saved_embeddings(run_dir)


def train(data: str = "demo-ihc", out: str | Path = "customvit", **options) -> Path:
    """Train a CustomViT (see robustpath.models.training.TrainSpec for options, ``overwrite=True`` to
    replace a model already in ``out``); returns its folder."""
    result = train_customvit(TrainSpec(data=data, out=output_path(out, "out"), **options))
    return result.path
