"""Notices reach the terminal while the run goes on, not only in the notes printed at its end."""
from __future__ import annotations

import signal
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from process_fixtures import environment, fault, run

from robustpath.util.progress import notify


def _image_folder(root: Path) -> Path:
    """Two classes of six 40×40 PNG files."""
    rng = np.random.default_rng(0)
    for label, shade in (("a", 60), ("b", 190)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(rng.normal(shade, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def test_the_resume_notice_is_printed_before_the_run_ends(tiny_customvit_dir, tmp_path):
    out = tmp_path / "out"
    command = ["eval", f"customvit:{tiny_customvit_dir}", "--data", _image_folder(tmp_path / "data"), "--out", out,
               "-c", "hue", "-t", "embedding_drift", "-s", "1", "--device", "cpu", "--quiet", "--no-cache"]
    killed = run(command, environment(tmp_path, **fault(tmp_path, "run-started", "kill")))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run(command, environment(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stderr.splitlines()
    notice = [i for i, line in enumerate(lines) if line.startswith(f"note: resuming the unfinished run in '{out}'")]
    end_notes = [i for i, line in enumerate(lines) if line.startswith("note: Embedding drift: ")]
    assert len(notice) == 1 and len(end_notes) == 1, resumed.stderr
    assert notice[0] < end_notes[0]  # printed when the run resumed, not with the notes once the run is over


def test_a_reporter_without_notice_gets_the_notice_as_a_warning():
    class Older:
        def start(self, key, description, total): ...

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notify(Older(), "out of memory at batch size 4: retrying with batch size 2")
        notify(None, "nobody to tell")
    assert [(w.category, str(w.message)) for w in caught] == [
        (RuntimeWarning, "out of memory at batch size 4: retrying with batch size 2")]
