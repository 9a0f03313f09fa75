"""Small hand-made results tables and run folders for the robustness and report tests.

Import into a test module: ``from report_fixtures import GOLDEN, golden_table, write_run_dir``.
Two models on a 3-class dataset "toy", linear-probe accuracy, Gaussian blur before and
after the resize and hue before it, severities 1 and 2 (the numbers are easy to sum by hand).
"""
from __future__ import annotations

import json
from pathlib import Path

from robustpath.tasks.metrics import MetricValue
from robustpath.output.report.formats import table_csv
from robustpath.results.table import DERIVED_COLUMNS, SCHEMA_COLUMNS, build_results_table, metric_rows
from robustpath.variants import CLEAN_VARIANT, Variant

CONDITIONS = (("gaussian_blur", "pre"), ("gaussian_blur", "post"), ("hue", "pre"))
GOLDEN = {
    "alpha": {"clean": 0.9, ("gaussian_blur", "pre"): (0.8, 0.6), ("gaussian_blur", "post"): (0.7, 0.5), ("hue", "pre"): (0.9, 0.8)},
    "beta": {"clean": 0.8, ("gaussian_blur", "pre"): (0.7, 0.7), ("gaussian_blur", "post"): (0.6, 0.4), ("hue", "pre"): (0.8, 0.6)},
}
HALF_WIDTH = 0.05


def _value(value: float, clean: float | None) -> MetricValue:
    drop = 0.0 if clean is None else value - clean
    return MetricValue(value, value - HALF_WIDTH, value + HALF_WIDTH, 100, drop - 0.02, drop + 0.02)


def golden_rows(model: str, run_id: str, dataset: str = "toy", values_of: str | None = None) -> list[dict]:
    values = GOLDEN[values_of or model]
    rows = metric_rows(run_id, model, dataset, "linear_probe", CLEAN_VARIANT,
                       {"accuracy": _value(values["clean"], None), "flip_rate": _value(0.0, None)})
    for corruption, stage in CONDITIONS:
        for severity, value in enumerate(values[(corruption, stage)], start=1):
            rows += metric_rows(run_id, model, dataset, "linear_probe", Variant(corruption, severity, stage),
                                {"accuracy": _value(value, values["clean"]), "flip_rate": _value(0.1 * severity, 0.0)})
    return rows


def golden_table():
    return build_results_table(golden_rows("alpha", "run-a") + golden_rows("beta", "run-b"))


def run_record(model: str, run_id: str, dataset: str = "toy") -> dict:
    return {
        "schema_version": 2, "run_id": run_id, "started": "2026-01-01T00:00:00+00:00", "device": "cpu",
        "spec": {"seed": 0}, "model": {"name": model},
        "dataset": {"name": dataset, "classes": ["a", "b", "c"], "native_size": [40, 40]},
        "preset": {"name": "pathology", "variants": [
            {"corruption": c, "severity": s, "stage": st, "parameter": s, "unit": "px"} for c, st in CONDITIONS for s in (1, 2)
        ]},
        "notes": ["The linear probe is trained on clean training embeddings and scored on corrupted test embeddings."],
    }


def write_run_dir(folder: Path, model: str, run_id: str, schema_version: int = 2, values_of: str | None = None) -> Path:
    """A folder as `robustpath eval` writes it: results.csv and run.json (numbers of GOLDEN[values_of or model])."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = build_results_table(golden_rows(model, run_id, values_of=values_of))
    if schema_version == 1:
        table = table[list(SCHEMA_COLUMNS) + list(DERIVED_COLUMNS[:2])]
        text = table.to_csv(index=False, lineterminator="\n")
    else:
        text = table_csv(table)
    (folder / "results.csv").write_text(text)
    (folder / "run.json").write_text(json.dumps(run_record(model, run_id)))
    return folder
