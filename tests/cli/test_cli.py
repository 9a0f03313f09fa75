"""The command line end to end on demo-ihc with a tiny model (Typer's CliRunner)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from robustpath.cli.main import app
from robustpath.results.table import SCHEMA_COLUMNS

runner = CliRunner()


@pytest.fixture(scope="module")
def full_run(tiny_customvit_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, ["eval", str(tiny_customvit_dir), "--out", str(out), "--device", "cpu", "--quiet"])
    return result, out


def test_full_default_sweep_writes_every_variant(full_run):
    result, out = full_run
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "results.csv")
    assert list(table.columns[: len(SCHEMA_COLUMNS)]) == list(SCHEMA_COLUMNS)
    expected = {"brightness", "contrast", "gaussian_blur", "resolution", "saturation", "hue", "markup"}
    for task, metrics in {"linear_probe": 6, "retrieval": 7, "embedding_drift": 1}.items():
        rows = table[table.task == task]
        assert set(rows.corruption) - {"none"} == expected
        clean = rows[rows.corruption == "none"]
        assert len(clean) == metrics and set(clean.severity) == {0} and set(clean.stage) == {"none"}
        pre = rows[rows.stage == "pre"]
        assert len(pre) == 7 * 4 * metrics
        post = rows[rows.stage == "post"]
        assert set(post.corruption) == {"gaussian_blur"} and len(post) == 4 * metrics
    assert ((table.ci_low <= table.value + 1e-12) & (table.value <= table.ci_high + 1e-12)).all()
    record = json.loads((out / "run.json").read_text())
    assert record["completed"] is True and record["device"] == "cpu"
    assert record["versions"]["torch"] == torch.__version__.split("+")[0] or record["versions"]["torch"]
    assert (table.schema_version == 3).all() and set(table.samples_per_class) == {0}
    assert ((table.drop_ci_low <= table.drop_from_clean + 1e-12) & (table.drop_from_clean <= table.drop_ci_high + 1e-12)).all()
    report = (out / "report.md").read_text()
    assert "linear_probe · accuracy" in report and "retrieval · map_at_10" in report
    assert "## Robustness summary" in report and (out / "robustness_models.csv").is_file()
    assert all((out / line[line.index("(") + 1 : -1]).is_file() for line in report.splitlines() if line.startswith("!["))
    from robustpath.tasks.outcomes import load_outcomes

    outcomes = load_outcomes(out / "outcomes.npz")
    assert ("linear_probe", "none/0/none") in outcomes and ("retrieval", "gaussian_blur/4/post") in outcomes
    assert "linear_probe · accuracy" in result.stdout  # the terminal table


def test_clean_probe_accuracy_matches_independent_computation(full_run, tiny_customvit_dir):
    """Recompute the clean linear-probe accuracy with the raw network and scikit-learn."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from robustpath.data import load_dataset
    from robustpath.models.customvit import load_customvit

    _, out = full_run
    table = pd.read_csv(out / "results.csv")
    reported = table[(table.task == "linear_probe") & (table.metric == "accuracy") & (table.corruption == "none")]
    dataset = load_dataset("demo-ihc", seed=0)
    model = load_customvit(tiny_customvit_dir)
    mean = torch.tensor(model.config.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.std).view(1, 3, 1, 1)
    images = np.stack([dataset.read_image(i) for i in range(len(dataset))]).astype(np.float32) / 255.0
    with torch.inference_mode():
        x = (torch.from_numpy(images).permute(0, 3, 1, 2) - mean) / std
        features = model.forward_features(x).numpy().astype(np.float64)
    train, test = dataset.splits == "train", dataset.splits == "test"
    record = json.loads((out / "run.json").read_text())
    scaler = StandardScaler().fit(features[train])
    regularisation = record["tasks"]["linear_probe"]["C"]  # chosen by cross-validation (tested in test_tasks)
    classifier = LogisticRegression(C=regularisation, max_iter=2000).fit(scaler.transform(features[train]), dataset.labels[train])
    expected = (classifier.predict(scaler.transform(features[test])) == dataset.labels[test]).mean()
    assert reported.value.iloc[0] == pytest.approx(expected, abs=1e-6)


def test_selection_options_limit_the_sweep(tiny_customvit_dir, tmp_path):
    result = runner.invoke(
        app,
        ["eval", str(tiny_customvit_dir), "-c", "hue", "-c", "gaussian_blur", "-s", "1", "-s", "4",
         "--stage", "both", "--task", "retrieval", "--out", str(tmp_path), "--quiet", "--batch-size", "16"],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "results.csv")
    corrupted = table[table.corruption != "none"]
    assert set(corrupted.task) == {"retrieval"}
    assert set(zip(corrupted.corruption, corrupted.severity, corrupted.stage)) == {
        (c, s, st) for c in ("hue", "gaussian_blur") for s in (1, 4) for st in ("pre", "post")
    }


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["eval", "customvit-dmeo"], 2, "did you mean 'customvit-demo'"),
        (["eval", "-c", "gausian_blur"], 2, "gaussian_blur"),
        (["eval", "-s", "9"], 2, "out of range"),
        (["eval", "-t", "retreival"], 2, "did you mean 'retrieval'"),
        (["eval", "--data", "/nonexistent/folder"], None, "/nonexistent/folder"),
    ],
)
def test_bad_input_gives_one_line_error(args, code, message, tmp_path):
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code != 0 and (code is None or result.exit_code == code)
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message.lower() in error_lines[0].lower()
    assert not (tmp_path / "out" / "results.csv").exists()


def test_train_then_eval_round_trip(tmp_path):
    out = tmp_path / "model"
    result = runner.invoke(
        app, ["train", "--out", str(out), "--epochs", "1", "--width", "16", "--depth", "1", "--heads", "2",
              "--patch-size", "8", "--samples-per-class", "8", "--quiet", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["train_samples"] == 8 * len(config["class_names"])
    result = runner.invoke(
        app, ["eval", f"customvit:{out}", "-c", "hue", "-s", "1", "--out", str(tmp_path / "run"), "--quiet"]
    )
    assert result.exit_code == 0, result.output


def test_data_scale_sweep_and_corrupted_gallery(tiny_customvit_dir, tmp_path):
    result = runner.invoke(
        app,
        ["eval", str(tiny_customvit_dir), "-c", "gaussian_blur", "-s", "2", "--task", "linear_probe", "--task", "retrieval",
         "--samples-per-class", "8,16", "--repeats", "2", "--gallery", "corrupted", "--format", "json",
         "--out", str(tmp_path), "--quiet", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "results.csv")
    probe = table[(table.task == "linear_probe") & (table.metric == "accuracy") & (table.corruption == "none")]
    assert sorted(zip(probe.samples_per_class, probe.repeat)) == [(0, 0), (8, 0), (8, 1), (16, 0), (16, 1)]
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["schema_version"] == 3 and document["tables"]["robustness_data_scale_overview"]
    record = json.loads((tmp_path / "run.json").read_text())
    assert "equally corrupted" in record["tasks"]["retrieval"]["gallery"]
    assert not (tmp_path / "report.md").exists()


def test_report_command_merges_two_runs(full_run, tmp_path):
    _, out = full_run
    other = tmp_path / "other"
    result = runner.invoke(app, ["eval", "customvit-demo", "-c", "gaussian_blur", "--out", str(other), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", str(out), str(other), "--out", str(tmp_path / "merged"), "--baseline", "customvit-demo"])
    assert result.exit_code == 0, result.output
    models = pd.read_csv(tmp_path / "merged" / "robustness_models.csv")
    assert set(models.model) >= {"customvit-demo"} and len(set(models.run_id)) == 2
    assert "## Robustness ranking" in (tmp_path / "merged" / "report.md").read_text()
