"""Image folders with links and unreadable files, through the command line.

Two links to one file would count one image twice (a crash after the whole sweep, before
this was checked) or leak a test image into the training split; they are refused when the
data is loaded, before anything is written.  Dangling links and undecodable files are left
out, listed in run.json, announced on stderr and in report.md.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from process_fixtures import one_error, run_cli
from engine_fixtures import cli, torch_threads
from PIL import Image

QUICK = ["-c", "hue", "-s", "1", "-t", "retrieval", "-t", "linear_probe", "--device", "cpu", "--quiet", "--no-cache"]


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _split_folder(root: Path) -> Path:
    """ROOT/train/<class>/ and ROOT/test/<class>/, 4 + 2 distinct images per class."""
    for number, (split, count) in enumerate((("train", 4), ("test", 2))):
        for letter, label in enumerate(("a", "b")):
            for k in range(count):
                _image(root / split / label / f"{k}.png", 100 * number + 10 * letter + k)
    return root


def test_two_links_to_one_test_image_are_refused_before_anything_is_written(tiny_customvit_dir, tmp_path):
    root = _split_folder(tmp_path / "data")
    os.symlink(root / "test" / "a" / "0.png", root / "test" / "a" / "copy-1.png")
    os.symlink(root / "test" / "a" / "0.png", root / "test" / "a" / "copy-2.png")
    completed = run_cli(tmp_path, "eval", tiny_customvit_dir, "--data", root, "--out", tmp_path / "out", *QUICK)
    line = one_error(completed, 1)
    assert "are the same file" in line and "'" + str(root / "test" / "a") in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("link", [os.symlink, os.link], ids=["symbolic", "hard"])
def test_a_test_image_linked_into_training_is_refused(tiny_customvit_dir, tmp_path, link):
    root = _split_folder(tmp_path / "data")
    link(root / "test" / "b" / "1.png", root / "train" / "b" / "leak.png")
    result = cli("eval", tiny_customvit_dir, "--data", root, "--out", tmp_path / "out", *QUICK)
    assert result.exit_code == 1, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert str(root / "train" / "b" / "leak.png") in line and str(root / "test" / "b" / "1.png") in line
    assert not (tmp_path / "out").exists()


def test_unreadable_files_and_dangling_links_are_announced_and_listed(tiny_customvit_dir, tmp_path):
    root = _split_folder(tmp_path / "data")
    os.symlink(root / "train" / "a" / "gone.png", root / "train" / "a" / "dangling.png")
    (root / "test" / "b" / "broken.png").write_text("not an image")
    (root / "train" / "b" / "empty.png").write_bytes(b"")
    with torch_threads(1):
        result = cli("eval", tiny_customvit_dir, "--data", root, "--out", tmp_path / "out", *QUICK)
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.output.split())
    assert "note: 3 image file(s) could not be read and were left out" in stderr
    for name in ("'dangling.png'", "'broken.png'", "'empty.png'"):
        assert name in stderr
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    skipped = {Path(entry["path"]).name: entry["reason"] for entry in record["dataset"]["skipped_images"]}
    assert set(skipped) == {"dangling.png", "broken.png", "empty.png"}
    assert "dangling symbolic link" in skipped["dangling.png"]
    report = " ".join((tmp_path / "out" / "report.md").read_text().split())
    assert "3 image file(s) could not be read" in report and "'dangling.png'" in report
    assert record["dataset"]["counts"]["train"] == {"a": 4, "b": 4} and record["dataset"]["counts"]["test"] == {"a": 2, "b": 2}


def test_byte_identical_copies_are_announced(tiny_customvit_dir, tmp_path):
    root = _split_folder(tmp_path / "data")
    (root / "train" / "a" / "duplicate.png").write_bytes((root / "test" / "a" / "1.png").read_bytes())
    with torch_threads(1):
        result = cli("eval", tiny_customvit_dir, "--data", root, "--out", tmp_path / "out", *QUICK)
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.output.split())
    assert "1 image file(s) are byte-identical copies of others" in stderr and "1 of them sit in the other split" in stderr
    identical = json.loads((tmp_path / "out" / "run.json").read_text())["dataset"]["identical_images"]
    assert identical["pairs"] == 1 and identical["across_splits"] == 1
    assert {Path(p).name for p in identical["example"]} == {"1.png", "duplicate.png"}
