"""Run folders under attack by real processes: two writers racing, SIGKILL, Ctrl-C while outputs are
written, inputs changed between a kill and the resume.

The private testing hook ROBUSTPATH_TEST_FAULT (robustpath.util.fault_points) stops a process at a
named step, so that a signal lands exactly there.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from process_fixtures import environment, error_lines, fault, run, start, wait_for

RUN = ["-t", "retrieval", "-s", "1", "--device", "cpu", "--quiet"]
OUTPUT_NAMES = {"results.csv", "report.md", "predictions.csv", "misclassified.csv", "outcomes.npz", "plots"}


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Two classes of eight 40×40 PNG files."""
    rng = np.random.default_rng(0)
    for label, shade in (("a", 60), ("b", 190)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(8):
            pixels = np.clip(rng.normal(shade, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / label / f"{i}.png")
    return tmp_path / "data"


def eval_args(model, data: Path, out: Path, corruption: str = "hue") -> list:
    return ["eval", model, "--data", data, "--out", out, "-c", corruption, *RUN]


def record_of(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def assert_one_complete_run(out: Path, corruption: str) -> dict:
    """run.json, results.csv and predictions.csv all belong to one complete run of ``corruption``."""
    import pandas as pd

    record = record_of(out)
    assert record["completed"] is True
    results, predictions = pd.read_csv(out / "results.csv"), pd.read_csv(out / "predictions.csv")
    assert set(results.run_id) == {record["run_id"]}
    assert set(results.corruption) == set(predictions.corruption) == {"none", corruption}
    assert record["spec"]["corruptions"] == [corruption]
    assert not {".partial", ".staging", ".publish"} & {path.name for path in out.iterdir()}
    return record


def test_a_second_writer_fails_at_once_and_a_killed_holder_leaves_no_lock(tiny_customvit_dir, image_folder, tmp_path):
    out = tmp_path / "out"
    holder = start(eval_args(tiny_customvit_dir, image_folder, out), environment(tmp_path, **fault(tmp_path, "run-started", "pause")))
    try:
        wait_for(tmp_path / "run-started.reached", holder)
        began = time.monotonic()
        second = run(eval_args(tiny_customvit_dir, image_folder, out, "contrast"), environment(tmp_path))
        assert time.monotonic() - began < 45  # it did not wait for the holder (paused for 60 s)
        assert second.returncode == 1, second.stderr
        assert error_lines(second.stderr) == [
            f"error: '{out}' is in use by another robustpath process (pid {holder.pid} on {os.uname().nodename}, since "
            f"{json.loads((out / '.lock').read_text())['since']}); wait for it to finish or choose another --out"
        ]
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    resumed = run(eval_args(tiny_customvit_dir, image_folder, out), environment(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert_one_complete_run(out, "hue")
    assert not (out / ".lock").exists()


def test_two_racing_writers_never_mix_their_outputs(tiny_customvit_dir, image_folder, tmp_path):
    out = tmp_path / "out"
    processes = {corruption: start(eval_args(tiny_customvit_dir, image_folder, out, corruption), environment(tmp_path))
                 for corruption in ("hue", "contrast")}
    finished = {corruption: (process.wait(timeout=300), process.communicate()[1]) for corruption, process in processes.items()}
    winners = [corruption for corruption, (code, _) in finished.items() if code == 0]
    assert len(winners) == 1, finished
    loser_code, loser_error = next(result for corruption, result in finished.items() if corruption not in winners)
    expected = {1: "is in use by another robustpath process", 2: "already holds a complete run"}  # when it came late
    assert loser_code in expected and len(error_lines(loser_error)) == 1, loser_error
    assert expected[loser_code] in error_lines(loser_error)[0]
    assert_one_complete_run(out, winners[0])


@pytest.mark.parametrize("changed", ["images", "weights"])
def test_a_resume_after_the_inputs_changed_is_refused(tiny_customvit_dir, image_folder, tmp_path, changed):
    model = tmp_path / "model"
    shutil.copytree(tiny_customvit_dir, model)
    out = tmp_path / "out"
    command = eval_args(f"customvit:{model}", image_folder, out)
    killed = run(command, environment(tmp_path, **fault(tmp_path, "run-started", "kill")))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    started = (out / "run.json").read_bytes()
    if changed == "images":
        Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(image_folder / "a" / "3.png")
    else:
        _replace_weights(model)
    refused = run(command, environment(tmp_path))
    assert refused.returncode == 2, refused.stderr
    first_id = json.loads(started)["run_id"]
    (error,) = error_lines(refused.stderr)
    assert f"holds an unfinished run of other inputs: it was started as run {first_id}" in error
    assert "--overwrite" in error and (out / "run.json").read_bytes() == started
    if changed == "weights":
        return
    fresh = run(command + ["--overwrite"], environment(tmp_path))
    assert fresh.returncode == 0, fresh.stderr
    reference = run(eval_args(f"customvit:{model}", image_folder, tmp_path / "reference"), environment(tmp_path))
    assert reference.returncode == 0, reference.stderr
    record = assert_one_complete_run(out, "hue")
    assert record["run_id"] != first_id and record["run_id"] == record_of(tmp_path / "reference")["run_id"]
    assert len(record["sessions"]) == 1
    assert (out / "results.csv").read_bytes() == (tmp_path / "reference" / "results.csv").read_bytes()


def _replace_weights(model: Path) -> None:
    import torch

    from robustpath.models.customvit import load_customvit, save_customvit

    network = load_customvit(model)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.05)
    save_customvit(network, model)


@pytest.mark.parametrize("step", ["plot-job", "publish-commit"])
def test_ctrl_c_while_the_outputs_are_written_leaves_no_outputs(tiny_customvit_dir, image_folder, tmp_path, step):
    """A terminal's Ctrl-C reaches every process of the group: the plot workers too."""
    out = tmp_path / "out"
    command = eval_args(tiny_customvit_dir, image_folder, out)
    process = start(command, environment(tmp_path, **fault(tmp_path, step, "pause", seconds=3)))
    wait_for(tmp_path / f"{step}.reached", process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert error_lines(stderr) == [f"error: interrupted; re-run the same command with --out '{out}' to resume"]
    assert record_of(out)["completed"] is False
    assert not OUTPUT_NAMES & {path.name for path in out.iterdir()} and not (out / ".staging").exists()
    resumed = run(command, environment(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert record_of(out)["embedding"]["resumed"] is True
    assert_one_complete_run(out, "hue")


@pytest.mark.parametrize("step", ["publish-outputs", "publish-record"])
def test_a_kill_while_publishing_is_finished_by_the_next_command(tiny_customvit_dir, image_folder, tmp_path, step):
    out = tmp_path / "out"
    command = eval_args(tiny_customvit_dir, image_folder, out)
    killed = run(command, environment(tmp_path, **fault(tmp_path, step, "kill")))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / ".publish").is_dir()
    report = run(["report", out, "--out", tmp_path / "merged"], environment(tmp_path))
    assert report.returncode == 1 and "was stopped while its outputs were written" in report.stderr
    again = run(command, environment(tmp_path))
    assert again.returncode == 2, again.stderr
    assert error_lines(again.stderr) == [
        f"error: '{out}' already holds a complete run (its interrupted write has now been finished); pass --overwrite "
        "to replace it or choose another --out"]
    assert_one_complete_run(out, "hue")
    listed = json.loads((out / ".robustpath-files.json").read_text())["files"]
    assert {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()} == {*listed, ".robustpath-files.json"}
    assert run(["report", out, "--out", tmp_path / "merged"], environment(tmp_path)).returncode == 0


def test_an_overwrite_killed_before_publishing_keeps_the_old_run_and_resumes(tiny_customvit_dir, image_folder, tmp_path):
    out = tmp_path / "out"
    first = run(eval_args(tiny_customvit_dir, image_folder, out), environment(tmp_path))
    assert first.returncode == 0, first.stderr
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    replacement = eval_args(tiny_customvit_dir, image_folder, out, "contrast") + ["--overwrite"]
    killed = run(replacement, environment(tmp_path, **fault(tmp_path, "publish-commit", "kill")))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file() and ".partial" not in path.parts
            and ".staging" not in path.parts and path.name != ".lock"} == before
    assert run(["report", out, "--out", tmp_path / "merged"], environment(tmp_path)).returncode == 0
    finished = run(replacement, environment(tmp_path))
    assert finished.returncode == 0, finished.stderr
    record = assert_one_complete_run(out, "contrast")
    assert record["embedding"]["resumed"] is True and len(record["sessions"]) == 2


def test_ctrl_c_during_the_final_renames_lets_them_finish(tiny_customvit_dir, image_folder, tmp_path):
    out = tmp_path / "out"
    process = start(eval_args(tiny_customvit_dir, image_folder, out),
                    environment(tmp_path, **fault(tmp_path, "publish-outputs", "pause", seconds=3)))
    wait_for(tmp_path / "publish-outputs.reached", process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert error_lines(stderr) == [f"error: interrupted after the run was complete; its outputs are in '{out}'"]
    assert_one_complete_run(out, "hue")
