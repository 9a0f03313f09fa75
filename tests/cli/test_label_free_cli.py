"""Identity retrieval and detectability end to end: `robustpath eval` on demo-ihc with a tiny model.

The reported numbers are recomputed from the exported embeddings and predictions.csv
with numpy and scikit-learn, not with robustpath.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from engine_fixtures import cli, torch_threads
from safetensors.numpy import load_file
from sklearn.metrics import roc_auc_score

SWEEP = ["-c", "gaussian_blur", "-c", "hue", "-s", "1", "-s", "4", "--device", "cpu", "-b", "32", "--quiet",
         "--no-cache", "--save-embeddings"]
GRID = 2.0 ** -20
VARIANTS = [("none", 0, "none"), ("gaussian_blur", 4, "pre"), ("hue", 1, "pre")]


@pytest.fixture(scope="module")
def run(tiny_customvit_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("label-free") / "out"
    with torch_threads(1):
        result = cli("eval", tiny_customvit_dir, "--out", out, *SWEEP)  # default tasks
    assert result.exit_code == 0, result.output
    return out


def unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def saved(out, name: str) -> np.ndarray:
    return load_file(out / "embeddings" / name)["embeddings"]


def rows(frame: pd.DataFrame, task: str, corruption: str, severity: int, stage: str) -> pd.DataFrame:
    return frame[(frame.task == task) & (frame.corruption == corruption) & (frame.severity == severity)
                 & (frame.stage == stage)]


def test_new_rows_in_results_csv(run):
    table = pd.read_csv(run / "results.csv")
    expected = {"identity": {"identity_top1_accuracy", "identity_top10_accuracy", "identity_median_rank"},
                "detectability": {"ood_auroc"}}
    for task, metrics in expected.items():
        part = table[table.task == task]
        assert set(part.metric) == metrics
        assert len(part) == len(metrics) * (1 + 2 * 2 + 2)  # clean, 2 corruptions × 2 severities, blur post × 2
    higher = table.drop_duplicates("metric").set_index("metric").higher_is_better
    assert not higher["identity_median_rank"] and higher["identity_top1_accuracy"] and higher["ood_auroc"]
    clean_auroc = rows(table, "detectability", "none", 0, "none")
    assert clean_auroc.value.item() == 0.5
    record = json.loads((run / "run.json").read_text())
    chance = record["tasks"]["identity"]["chance"]
    assert chance["identity_top10_accuracy"]["value"] == pytest.approx(10 / 120)
    assert chance["identity_median_rank"]["value"] == pytest.approx(121 / 2)
    assert record["tasks"]["detectability"]["k"] == 10


def test_identity_ranks_and_metrics_follow_from_the_embeddings(run):
    samples = pd.read_csv(run / "embeddings" / "samples.csv", keep_default_na=False)
    test = (samples.split == "test").to_numpy()
    clean = saved(run, "clean.safetensors")[test]
    predictions = pd.read_csv(run / "predictions.csv")
    results = pd.read_csv(run / "results.csv")
    for corruption, severity, stage in VARIANTS:
        queries = clean if corruption == "none" else saved(run, f"{corruption}_{severity}_{stage}.safetensors")
        bins = np.floor(unit(queries) @ unit(clean).T / GRID)
        expected = [int(np.nonzero(np.lexsort((np.arange(len(row)), -row)) == i)[0][0]) + 1 for i, row in enumerate(bins)]
        exported = rows(predictions, "identity", corruption, severity, stage)
        assert exported.sample_id.tolist() == samples.sample_id[test].tolist()
        assert exported.identity_rank.astype(int).tolist() == expected
        reported = rows(results, "identity", corruption, severity, stage).set_index("metric").value
        assert reported["identity_top1_accuracy"] == pytest.approx(np.mean(np.array(expected) == 1))
        assert reported["identity_top10_accuracy"] == pytest.approx(np.mean(np.array(expected) <= 10))
        assert reported["identity_median_rank"] == pytest.approx(np.median(expected))


def test_detectability_scores_and_auroc_follow_from_the_embeddings(run):
    samples = pd.read_csv(run / "embeddings" / "samples.csv", keep_default_na=False)
    split = samples.split.to_numpy()
    embeddings = saved(run, "clean.safetensors")
    train, clean = embeddings[split == "train"], embeddings[split == "test"]
    predictions = pd.read_csv(run / "predictions.csv")
    results = pd.read_csv(run / "results.csv")
    clean_scores = rows(predictions, "detectability", "none", 0, "none").ood_score.to_numpy()
    for corruption, severity, stage in VARIANTS[1:]:
        queries = saved(run, f"{corruption}_{severity}_{stage}.safetensors")
        nearest = np.sort(unit(queries) @ unit(train).T, axis=1)[:, ::-1][:, :10]
        scores = rows(predictions, "detectability", corruption, severity, stage).ood_score.to_numpy()
        np.testing.assert_allclose(scores, (1 - nearest).mean(axis=1), rtol=0, atol=GRID + 1e-7)
        auroc = roc_auc_score(np.r_[np.zeros(len(clean)), np.ones(len(clean))], np.r_[clean_scores, scores])
        reported = rows(results, "detectability", corruption, severity, stage).value.item()
        assert reported == pytest.approx(auroc, abs=1e-7)  # predictions.csv rounds the scores to 8 digits


def test_report_sections_and_silent_failure_table(run):
    report = (run / "report.md").read_text()
    assert "## Embedding drift beside identity retrieval" in report
    assert "## Silent failures: harm against detectability" in report
    assert "identity · identity_top1_accuracy" in report and "detectability · ood_auroc" in report
    assert (run / "plots" / "detectability__demo-ihc.png").is_file()
    assert "![detectability](plots/detectability__demo-ihc.png)" in report
    silent = pd.read_csv(run / "robustness_silent_failures.csv")
    assert len(silent) == 6 and set(silent.task) == {"linear_probe"} and set(silent.metric) == {"accuracy"}
    results = pd.read_csv(run / "results.csv")
    auroc = results[(results.task == "detectability") & (results.corruption != "none")]
    merged = silent.merge(auroc, on=["corruption", "severity", "stage"])
    np.testing.assert_allclose(merged.ood_auroc, merged.value_y)
    assert (silent.silent_failure == (silent.harmful & (silent.ood_auroc < 0.7))).all()
    html = (run / "report.html").read_text()
    assert 'id="table-silent-failures"' in html and 'id="table-drift-identity"' in html
    assert "against detectability" in html
