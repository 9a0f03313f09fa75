"""The --out folder of `robustpath eval`: never delete or replace what robustpath did not write,
replace a run only once the new one is complete, recognise what killed runs left behind.

Real run folders written by the command line; the user's files are real files beside them.
"""
from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from engine_fixtures import cli, torch_threads

RUN = ["-c", "hue", "-s", "1", "-t", "retrieval", "--device", "cpu", "--quiet"]


@pytest.fixture(autouse=True)
def one_thread_and_own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    with torch_threads(1):
        yield


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path → bytes), robustpath's hidden bookkeeping left out."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.relative_to(folder).parts[0] not in (".lock", ".partial", ".robustpath-files.json")}


def one_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def complete_run(tiny_customvit_dir, tmp_path) -> Path:
    out = tmp_path / "run"
    result = cli("eval", tiny_customvit_dir, "--out", out, *RUN)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_folder_with_files_robustpath_did_not_write_is_refused_and_kept(tiny_customvit_dir, tmp_path, overwrite):
    folder = tmp_path / "project"
    (folder / "plots").mkdir(parents=True)
    (folder / "plots" / "figure.png").write_text("keep")
    (folder / "data.parquet").write_text("keep")
    (folder / "results.csv").write_text("mine")
    result = cli("eval", tiny_customvit_dir, "--out", folder, *RUN, *overwrite)
    assert result.exit_code == 2
    error = one_error(result)
    assert f"'{folder}' is not empty (data.parquet, plots, results.csv)" in error and "choose another --out" in error
    assert contents(folder) == {"data.parquet": b"keep", "plots/figure.png": b"keep", "results.csv": b"mine"}
    assert sorted(path.name for path in folder.iterdir()) == ["data.parquet", "plots", "results.csv"]  # no lock left


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_out_is_a_usage_error_everywhere(tiny_customvit_dir, tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)  # an empty --out used to mean this folder
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "figure.png").write_text("keep")
    commands = [["eval", tiny_customvit_dir, *RUN], ["train", "--epochs", "1"], ["report", tmp_path],
                ["corrupt", "demo-ihc", "-c", "hue"]]
    for command in commands:
        result = cli(*command, "--out", value)
        assert result.exit_code == 2, (command, result.output)
        assert "'--out'" in one_error(result) and "empty" in one_error(result)
    config = tmp_path / "sweep.toml"
    config.write_text(f'model = "customvit:{tiny_customvit_dir}"\nout = "{value}"\n')
    result = cli("eval", "--config", config, *RUN)
    assert result.exit_code == 2 and "'out' is empty" in one_error(result)
    import robustpath
    from robustpath.errors import UsageError

    with pytest.raises(UsageError, match="out is empty"):
        robustpath.evaluate(f"customvit:{tiny_customvit_dir}", out=value)
    assert (tmp_path / "plots" / "figure.png").read_text() == "keep"
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != "cache") == ["plots", "sweep.toml"]


def test_overwrite_replaces_only_what_robustpath_wrote(complete_run, tiny_customvit_dir):
    out = complete_run
    old = contents(out)
    (out / "notes.txt").write_text("my notes")
    (out / "plots" / "mine.png").write_text("my figure")
    result = cli("eval", tiny_customvit_dir, "--out", out, *RUN, "-c", "contrast", "--format", "json", "--overwrite")
    assert result.exit_code == 0, result.output
    now = contents(out)
    assert now["notes.txt"] == b"my notes" and now["plots/mine.png"] == b"my figure"
    assert sorted(path.name for path in (out / "plots").iterdir()) == ["mine.png"]  # the old plots are gone
    assert "report.md" in old and "report.md" not in now and "report.json" in now
    assert now["results.csv"] != old["results.csv"] and b"contrast" in now["results.csv"]
    listed = json.loads((out / ".robustpath-files.json").read_text())["files"]
    assert "notes.txt" not in listed and "plots/mine.png" not in listed and "results.csv" in listed


def test_overwrite_refuses_outputs_someone_changed(complete_run, tiny_customvit_dir):
    out = complete_run
    with open(out / "report.md", "a") as handle:
        handle.write("\nMy conclusions.\n")
    before = contents(out)
    result = cli("eval", tiny_customvit_dir, "--out", out, *RUN, "--overwrite")
    assert result.exit_code == 2
    assert "changed since (report.md)" in one_error(result) and "move them out" in one_error(result)
    assert contents(out) == before


def test_overwrite_never_follows_a_link_out_of_the_folder(complete_run, tiny_customvit_dir, tmp_path):
    out, elsewhere = complete_run, tmp_path / "elsewhere"
    (out / "plots").rename(elsewhere)  # the same files, now outside the run folder, reached through a link
    (out / "plots").symlink_to(elsewhere, target_is_directory=True)
    before = contents(elsewhere)
    result = cli("eval", tiny_customvit_dir, "--out", out, *RUN, "--format", "json", "--overwrite")
    assert result.exit_code == 2 and "changed since (plots/" in one_error(result)
    assert contents(elsewhere) == before


def test_a_run_folder_of_an_earlier_version_is_replaced_by_name(complete_run, tiny_customvit_dir):
    """Versions before the file list: a folder with their run.json is theirs, for the names they write."""
    out = complete_run
    (out / ".robustpath-files.json").unlink()
    (out / "notes.txt").write_text("my notes")
    (out / "plots" / "mine.png").write_text("my figure")
    result = cli("eval", tiny_customvit_dir, "--out", out, *RUN, "-c", "contrast", "--format", "json", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "my notes" and (out / "plots" / "mine.png").read_text() == "my figure"
    assert not (out / "report.md").exists() and sorted(p.name for p in (out / "plots").iterdir()) == ["mine.png"]


def test_a_failing_overwrite_leaves_the_complete_run(complete_run, tiny_customvit_dir, monkeypatch):
    """The disk fills up while the new run writes its outputs: the old run stays, whole."""
    out = complete_run
    before = contents(out)
    record = json.loads((out / "run.json").read_text())

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("robustpath.output.exports.write_exports", full_disk)
    result = cli("eval", tiny_customvit_dir, "--out", out, *RUN, "-c", "contrast", "--overwrite")
    assert result.exit_code == 1
    assert contents(out) == before and json.loads((out / "run.json").read_text()) == record
    assert not (out / ".staging").exists() and not (out / ".publish").exists()
    assert json.loads((out / ".partial" / "run.json").read_text())["completed"] is False  # the replacement, resumable
    monkeypatch.undo()
    result = cli("report", out, "--out", out.parent / "merged")  # the old run is still a complete run
    assert result.exit_code == 0, result.output


def test_a_partial_store_left_beside_a_complete_run_is_removed(complete_run, tiny_customvit_dir):
    """Earlier versions, killed between the final run.json and removing .partial, left this state."""
    out = complete_run
    shutil.copytree(out / "plots", out / ".partial" / "embeddings-v1")  # any leftover content
    before = contents(out)
    result = cli("eval", tiny_customvit_dir, "--out", out, *RUN)
    assert result.exit_code == 2 and "already holds a complete run" in one_error(result)
    assert not (out / ".partial").exists() and contents(out) == before


def test_an_import_cut_short_by_ctrl_c_is_an_interruption(tiny_customvit_dir, tmp_path, monkeypatch):
    """matplotlib's C extensions, imported while the outputs are written, turn Ctrl-C into
    ImportError("initialization failed") caused by the KeyboardInterrupt (pybind11 does)."""
    def interrupted_import(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ImportError("initialization failed") from interrupt

    monkeypatch.setattr("robustpath.output.exports.write_exports", interrupted_import)
    out = tmp_path / "out"
    result = cli("eval", tiny_customvit_dir, "--out", out, *RUN)
    assert result.exit_code == 130
    assert one_error(result) == f"error: interrupted; re-run the same command with --out '{out}' to resume"
    assert json.loads((out / "run.json").read_text())["completed"] is False and not (out / "results.csv").exists()
