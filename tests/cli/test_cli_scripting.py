"""Scripting: --json on stdout, environment defaults, python -m robustpath."""
import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from robustpath.cli.main import app

runner = CliRunner()


def test_json_summary_is_the_only_stdout(tiny_customvit_dir, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["eval", str(tiny_customvit_dir), "-c", "hue", "-s", "2", "--json", "--out", str(out), "-t", "linear_probe"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    table = pd.read_csv(out / "results.csv")
    clean = table[(table.task == "linear_probe") & (table.metric == "accuracy") & (table.corruption == "none")]
    assert summary["clean"]["linear_probe"]["accuracy"] == pytest.approx(clean.value.iloc[0], abs=1e-9)
    hue = table[(table.task == "linear_probe") & (table.metric == "accuracy") & (table.corruption == "hue")]
    assert summary["mean_drop_from_clean"]["linear_probe"]["accuracy"]["hue"] == pytest.approx(hue.drop_from_clean.mean(), abs=1e-9)
    assert summary["outputs"]["results"].endswith("results.csv")


def test_dry_run_json(tmp_path):
    result = runner.invoke(app, ["eval", "--dry-run", "--json", "-c", "hue", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["images_to_embed"] == 400 + 120 * 4 and plan["forward_passes"] == 14


def test_environment_supplies_defaults(tmp_path):
    result = runner.invoke(app, ["eval", "--dry-run", "--out", str(tmp_path / "o")], env={"ROBUSTPATH_BATCH_SIZE": "0"})
    assert result.exit_code == 2 and "batch-size" in result.output


def test_python_dash_m_runs_the_cli():
    completed = subprocess.run([sys.executable, "-m", "robustpath", "--version"], capture_output=True, text=True)
    assert completed.returncode == 0 and completed.stdout.startswith("robustpath ")
