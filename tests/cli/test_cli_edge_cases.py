"""Edge cases through the command line: images smaller than a model patch, and Ctrl-C (a real SIGINT)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from PIL import Image
from process_fixtures import environment, error_lines, start
from typer.testing import CliRunner

from robustpath.cli.main import app


def test_images_smaller_than_a_patch_are_upscaled_with_a_note(tiny_customvit_dir, tmp_path):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i, side in enumerate((2, 3, 2)):  # 2×2 is the most common size: 3×3 images are resized to it
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(tmp_path / "data" / label / f"{i}.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "eval", str(tiny_customvit_dir), "--data", str(tmp_path / "data"), "--out", str(out), "--device", "cpu",
        "-t", "retrieval", "-t", "linear_probe", "-c", "markup", "-c", "resolution", "-c", "gaussian_blur", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    notes = " ".join(result.output.split())  # rich wraps long notes
    assert "smaller than one 8 px patch" in notes and "upscaled 20× to the 40×40 px input" in notes
    record = json.loads((out / "run.json").read_text())
    assert record["dataset"]["native_size"] == [2, 2] and record["completed"] is True
    table = pd.read_csv(out / "results.csv")
    clean = table[(table.corruption == "none") & (table.task == "retrieval")]
    assert set(clean.n) == {2}  # one test image per class (30% of 3)
    assert set(table.corruption) == {"none", "markup", "resolution", "gaussian_blur"}
    assert (out / "plots" / "corruption_gallery.png").is_file() and "## Corruption gallery" in (out / "report.md").read_text()


def test_ctrl_c_exits_130_with_a_resume_hint_and_leaves_no_complete_outputs(tiny_customvit_dir, tmp_path):
    out = tmp_path / "out"
    process = start(["eval", tiny_customvit_dir, "--out", out, "--device", "cpu", "-t", "retrieval", "-b", "8",
                     "--no-cache", "--quiet"], environment(tmp_path))
    deadline = time.monotonic() + 60
    while not list((out / ".partial").rglob("*.safetensors")):  # the sweep has stored its first embeddings
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sweep did not start"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert error_lines(stderr) == [f"error: interrupted; re-run the same command with --out '{out}' to resume"], stderr
    record = json.loads((out / "run.json").read_text())
    assert record["completed"] is False
    for name in ("results.csv", "report.md", "outcomes.npz"):
        assert not (out / name).exists(), name
    assert not [path for path in out.rglob("*.tmp")]  # no half-written file
    assert list((out / ".partial").rglob("*.safetensors"))  # kept for the re-run (resuming is tested in test_cache_resume.py)



def test_the_process_exits_with_its_code_while_a_worker_thread_still_runs(tmp_path):
    # a non-daemon worker that never ends would keep a normal exit waiting forever
    script = (
        "import threading, time, sys\n"
        "threading.Thread(target=time.sleep, args=(3600,), name='robustpath-scoring').start()\n"
        "from robustpath.cli.support import exit_process\n"
        "print('written', flush=False)\n"
        "exit_process(130)\n"
        "sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 130 and result.stdout == "written\n"
