"""`robustpath train --out DIR`: an existing model is replaced only with --overwrite, a folder with
other files never, and a killed training leaves the old model or the new one, complete."""
from __future__ import annotations

import json
import signal

import pytest
from engine_fixtures import cli
from process_fixtures import environment, fault, run

from robustpath.models import load_encoder

TRAIN = ["--epochs", "1", "--width", "16", "--depth", "1", "--heads", "2", "--patch-size", "8", "--device", "cpu", "--quiet"]


def files(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.fixture
def trained(tmp_path):
    model = tmp_path / "model"
    result = cli("train", "--out", model, *TRAIN)
    assert result.exit_code == 0, result.output
    return model


def test_an_existing_model_is_replaced_only_with_overwrite(trained):
    before = files(trained)
    result = cli("train", "--out", trained, *TRAIN, "--seed", "1")
    assert result.exit_code == 2
    assert f"--out '{trained}' already holds a model; pass --overwrite" in result.output
    assert files(trained) == before
    result = cli("train", "--out", trained, *TRAIN, "--seed", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((trained / "config.json").read_text())["training"]["seed"] == 1
    assert sorted(files(trained)) == ["config.json", "model.safetensors"] and files(trained) != before
    assert [path.name for path in trained.parent.iterdir() if path.name.startswith(".")] == []  # nothing left beside
    load_encoder(f"customvit:{trained}")


def test_a_folder_with_other_files_is_never_replaced(trained):
    (trained / "notes.txt").write_text("keep")
    before = files(trained)
    for overwrite in ([], ["--overwrite"]):
        result = cli("train", "--out", trained, *TRAIN, *overwrite)
        assert result.exit_code == 2 and "holds other files than a model (notes.txt)" in result.output
    assert files(trained) == before


def test_a_killed_training_leaves_the_old_model_complete(trained, tmp_path):
    before = files(trained)
    killed = run(["train", "--out", trained, *TRAIN, "--seed", "1", "--overwrite"],
                 environment(tmp_path, **fault(tmp_path, "train-swap", "kill")))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert files(trained) == before
    load_encoder(f"customvit:{trained}")
    (left,) = [path for path in tmp_path.iterdir() if path.name.startswith(".model.")]  # the new model, complete
    assert sorted(files(left)) == ["config.json", "model.safetensors"]
    result = cli("train", "--out", trained, *TRAIN, "--seed", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert not left.exists()  # its process is gone: cleaned up
    assert json.loads((trained / "config.json").read_text())["training"]["seed"] == 1
