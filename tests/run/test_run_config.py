"""Run configs: a sweep over models and datasets from TOML, overrides, run.json round trip."""
import json

import pandas as pd
from typer.testing import CliRunner

from robustpath.cli.main import app

runner = CliRunner()


def _write_config(path, model_dir, out):
    path.write_text(
        f"""
models = ["{model_dir}", {{ spec = "customvit:{model_dir}" }}]
datasets = ["demo-ihc"]
corruptions = ["hue"]
severities = [1]
tasks = ["linear_probe"]
seed = 3
out = "{out}"
"""
    )


def test_config_sweep_with_command_line_override(tmp_path, tiny_customvit_dir):
    config = tmp_path / "sweep.toml"
    _write_config(config, tiny_customvit_dir, "runs")
    result = runner.invoke(app, ["eval", "--config", str(config), "--seed", "5", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 2
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(name.startswith("demo-ihc__") for name in folders)
    record = json.loads((tmp_path / "runs" / folders[0] / "run.json").read_text())
    assert record["spec"]["seed"] == 5  # the command line wins over the file
    assert record["spec"]["corruptions"] == ["hue"] and record["spec"]["severities"] == [1]


def test_run_json_reproduces_the_run(tmp_path, tiny_customvit_dir):
    first = tmp_path / "first"
    result = runner.invoke(
        app, ["eval", str(tiny_customvit_dir), "-c", "contrast", "-s", "2", "-t", "retrieval", "--out", str(first), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    again = tmp_path / "again"
    result = runner.invoke(app, ["eval", "--config", str(first / "run.json"), "--out", str(again), "--quiet"])
    assert result.exit_code == 0, result.output
    columns = ["task", "metric", "corruption", "severity", "stage", "value", "ci_low", "ci_high"]
    a = pd.read_csv(first / "results.csv")[columns]
    b = pd.read_csv(again / "results.csv")[columns]
    pd.testing.assert_frame_equal(a, b)


def test_bad_config_keys_are_named(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('model = "customvit-demo"\nseverity = [1]\n')
    result = runner.invoke(app, ["eval", "--config", str(config), "--dry-run"])
    assert result.exit_code == 2 and "unknown key(s) ['severity']" in result.output
    config.write_text('model = "customvit-demo"\nseverities = ["high"]\n')
    result = runner.invoke(app, ["eval", "--config", str(config), "--dry-run"])
    assert result.exit_code == 2 and "'severities' must be a list of ints" in result.output
