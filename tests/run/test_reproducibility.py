"""Same inputs and seed → byte-identical results.csv on CPU; --deterministic is accepted and recorded.

Markup strokes being bit-identical whatever the batch size (and every other corruption
agreeing within 1e-6) is tested at the corruption level in test_corruptions_contract.py,
embeddings agreeing within 1e-6 across batch sizes in test_engine.py; results.csv is not
claimed to be byte-identical across batch sizes.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from robustpath.cli.main import app
from robustpath.spec.run_spec import RunSpec
from robustpath.run.runner import make_run_id

runner = CliRunner()
SELECTION = ["-c", "markup", "-c", "hue", "-s", "2", "-t", "retrieval", "-t", "linear_probe",
             "--device", "cpu", "--no-cache", "--quiet"]


def evaluate(model_dir, out, *extra):
    result = runner.invoke(app, ["eval", str(model_dir), "--out", str(out), *SELECTION, *map(str, extra)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return out


@pytest.fixture(scope="module")
def first_run(tiny_customvit_dir, tmp_path_factory):
    return evaluate(tiny_customvit_dir, tmp_path_factory.mktemp("first") / "out")


def test_two_runs_write_byte_identical_results(first_run, tiny_customvit_dir, tmp_path):
    second = evaluate(tiny_customvit_dir, tmp_path / "elsewhere" / "second")
    assert (second / "results.csv").read_bytes() == (first_run / "results.csv").read_bytes()
    for name in ("robustness_conditions.csv", "robustness_models.csv", "plots/corruption_gallery.png"):
        assert (second / name).read_bytes() == (first_run / name).read_bytes()
    one, two = (json.loads((folder / "run.json").read_text()) for folder in (first_run, second))
    assert one["run_id"] == two["run_id"] and len(one["run_id"]) == 16
    assert one["started"]  # the start time stays in run.json (not in the id)
    assert one["run_id"] not in one["started"].replace("-", "").replace(":", "")


def test_another_seed_is_another_run(first_run, tiny_customvit_dir, tmp_path):
    other = evaluate(tiny_customvit_dir, tmp_path / "seed1", "--seed", "1")
    ids = [json.loads((folder / "run.json").read_text())["run_id"] for folder in (first_run, other)]
    assert ids[0] != ids[1]


def test_deterministic_flag_is_recorded_and_changes_nothing_on_cpu(first_run, tiny_customvit_dir, tmp_path):
    out = evaluate(tiny_customvit_dir, tmp_path / "det", "--deterministic", "--compile")
    assert (out / "results.csv").read_bytes() == (first_run / "results.csv").read_bytes()
    record = json.loads((out / "run.json").read_text())
    assert record["deterministic"] is True and record["spec"]["deterministic"] is True
    assert record["precision"] == "fp32" and record["embedding"]["compiled"] is False
    settings = record["deterministic_settings"]
    assert settings["use_deterministic_algorithms"] is True and settings["cudnn_benchmark"] is False
    assert settings["CUBLAS_WORKSPACE_CONFIG"] and settings["torch_seed"] == 0
    assert any("--compile was ignored" in note for note in record["notes"])
    assert json.loads((first_run / "run.json").read_text())["deterministic"] is False
    # the process-wide torch settings are put back after the run
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


def test_the_run_id_ignores_how_a_run_executes_but_not_what_it_measures(tmp_path):
    facts = dict(model={"weights_sha256": "a"}, dataset={"name": "d", "content_sha256": "b"},
                 preset={"name": "pathology", "variants": []}, prompts=None, device="cpu", precision="fp32")
    spec = RunSpec(model="customvit:/one/place", data="/data/x", out=tmp_path / "a")
    same = dataclasses.replace(spec, model="customvit:/other/place", data="/moved/x", out=tmp_path / "b",
                               batch_size=3, num_workers=2, no_cache=True, compile=True, deterministic=True,
                               save_embeddings=True, embeddings_dtype="float16",  # exports: results unchanged
                               device="cpu")  # the resolved device type is what counts
    assert make_run_id(spec, **facts) == make_run_id(same, **facts)
    assert make_run_id(dataclasses.replace(spec, seed=1), **facts) != make_run_id(spec, **facts)
    newer = {"robustpath": "9.9"}
    assert make_run_id(spec, **facts, versions=newer) != make_run_id(spec, **facts)  # another version, another run
    assert make_run_id(dataclasses.replace(spec, test_fraction=0.5), **facts) != make_run_id(spec, **facts)
    for key, value in {"model": {"weights_sha256": "c"}, "dataset": {"name": "d", "content_sha256": "c"},
                       "precision": "bf16", "device": "cuda"}.items():
        assert make_run_id(spec, **{**facts, key: value}) != make_run_id(spec, **facts), key
