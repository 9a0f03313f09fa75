"""`robustpath report` on run folders that are not what they should be: unfinished runs, an
unreadable run.json, a folder mixing two runs, mixed schema versions or presets, and an --out
folder that holds other files."""
from __future__ import annotations

import json

import pytest
from report_fixtures import write_run_dir
from typer.testing import CliRunner

from robustpath.cli.main import app
from robustpath.results.table import SCHEMA_VERSION

runner = CliRunner()


def report(*args):
    result = runner.invoke(app, ["report", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def one_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def alpha(tmp_path):
    return write_run_dir(tmp_path / "alpha", "alpha", "run-a")


@pytest.fixture
def unfinished(tmp_path):
    folder = write_run_dir(tmp_path / "beta", "beta", "run-b")
    record = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**record, "completed": False}))
    return folder


def test_an_unfinished_run_is_refused_or_left_out_with_a_notice(alpha, unfinished, tmp_path):
    result = report(alpha, unfinished, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"'{unfinished}' holds an unfinished run" in one_error(result) and "--skip-incomplete" in one_error(result)
    assert not (tmp_path / "out").exists()
    result = report(alpha, unfinished, "--out", tmp_path / "out", "--skip-incomplete", "--no-plots")
    assert result.exit_code == 0, result.output
    notice = f"Left out the unfinished run in '{unfinished}' (--skip-incomplete)."
    assert f"note: {notice}" in " ".join(result.output.split())
    assert f"> {notice}" in (tmp_path / "out" / "report.md").read_text()
    assert set(__import__("pandas").read_csv(tmp_path / "out" / "results.csv").run_id) == {"run-a"}
    result = report(unfinished, "--out", tmp_path / "out2", "--skip-incomplete")
    assert result.exit_code == 1 and "no finished run folders given" in one_error(result)


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"run_id": "run-b"}', '{"run_id": "run-b", "spec": {}, '
                                     '"completed": "yes"}', "\u0000\u00ff"])
def test_an_unreadable_run_record_is_refused(alpha, tmp_path, garbage):
    broken = write_run_dir(tmp_path / "beta", "beta", "run-b")
    (broken / "run.json").write_text(garbage)
    result = report(alpha, broken, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"'{broken / 'run.json'}' is not a robustpath run record" in one_error(result)


def test_a_folder_mixing_two_runs_is_refused(alpha, tmp_path):
    mixed = write_run_dir(tmp_path / "beta", "beta", "run-b")
    (mixed / "run.json").write_text((write_run_dir(tmp_path / "gamma", "gamma", "run-c", values_of="beta") / "run.json").read_text())
    result = report(alpha, mixed, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"'{mixed}' mixes runs: results.csv holds run run-b but run.json is run run-c" in one_error(result)


def test_mixed_schema_versions_and_preset_values_are_noted(alpha, tmp_path):
    old = write_run_dir(tmp_path / "old", "gamma", "run-old", schema_version=1, values_of="beta")
    record = json.loads((old / "run.json").read_text())
    record["preset"]["variants"][0]["parameter"] = 7.5  # gaussian_blur 1 pre: 1 in alpha's run
    (old / "run.json").write_text(json.dumps(record))
    result = report(alpha, old, "--out", tmp_path / "out", "--no-plots", "--format", "json", "--format", "markdown")
    assert result.exit_code == 0, result.output
    all_notes = json.loads((tmp_path / "out" / "report.json").read_text())["notes"]
    notes = [note for note in all_notes if note.startswith(("Results of schema versions", "Preset "))]
    assert notes == [
        f"Results of schema versions 1, {SCHEMA_VERSION} were merged: the older tables ({old}) were upgraded, so their drop "
        "intervals and data-scale rows are missing.",
        "Preset 'pathology' has different parameters in runs run-a and run-old (gaussian_blur severity 1: 1 vs 7.5): "
        "their corruptions differ.",
    ]
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert all(f"> {note}" in markdown for note in notes)
    assert all(f"note: {note}" in " ".join(result.output.split()) for note in notes)


def test_the_report_folder_takes_no_one_elses_files(alpha, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("mine")
    result = report(alpha, "--out", out)
    assert result.exit_code == 2 and f"'{out}' is not empty (results.csv)" in one_error(result)
    assert [path.name for path in out.iterdir()] == ["results.csv"] and (out / "results.csv").read_text() == "mine"
    result = report(alpha, "--out", alpha.parent / "second-run-folder", "--no-plots")
    assert result.exit_code == 0  # a new folder
    again = report(alpha, "--out", alpha.parent / "second-run-folder", "--no-plots", "--format", "json")
    assert again.exit_code == 0, again.output  # an earlier report is replaced: only its own files
    assert sorted(path.name for path in (alpha.parent / "second-run-folder").iterdir()) == [
        ".robustpath-files.json", "report.json"]
    result = runner.invoke(app, ["eval", "--out", str(alpha.parent / "second-run-folder"), "-c", "hue"])
    assert result.exit_code == 2 and "holds a robustpath report, not a run" in one_error(result)  # not eval's to replace
    run_folder = write_run_dir(tmp_path / "beta", "beta", "run-b")  # as earlier versions wrote it: no file list
    result = report(alpha, "--out", run_folder)
    assert result.exit_code == 2 and "(results.csv, run.json) and holds no robustpath report" in one_error(result)
