"""Summaries near chance: retention and normalised AUC undefined, ranked last, the reason in every output."""
import json

import numpy as np
import pandas as pd
import pytest
from model_fixtures import tiny_open_clip  # noqa: F401  (fixture)
from report_fixtures import CONDITIONS, golden_rows, run_record
from typer.testing import CliRunner

from robustpath.cli.main import app
from robustpath.tasks.metrics import MetricValue
from robustpath.output.report.formats import table_csv
from robustpath.results.table import build_results_table, metric_rows
from robustpath.results.robustness import summarise_results
from robustpath.variants import CLEAN_VARIANT, Variant

THIRD = 1 / 3
COUNTS = {"train": {"a": 60, "b": 60, "c": 60}, "test": {"a": 30, "b": 30, "c": 30}}  # chance 1/3 for accuracy
# The case of the report: a random-weight model at 0.389 whose interval reaches chance, corrupted values a bit higher
RANDOM = {"clean": (0.389, 0.30, 0.48), ("gaussian_blur", "pre"): (0.42, 0.40), ("gaussian_blur", "post"): (0.41, 0.43),
          ("hue", "pre"): (0.40, 0.42)}


def _record(model: str, run_id: str) -> dict:
    return {**run_record(model, run_id), "dataset": {"name": "toy", "classes": ["a", "b", "c"], "counts": COUNTS}}


def _rows(model: str, run_id: str, clean: tuple, conditions: dict) -> list[dict]:
    value, low, high = clean
    rows = metric_rows(run_id, model, "toy", "linear_probe", CLEAN_VARIANT, {"accuracy": MetricValue(value, low, high, 90, 0, 0)})
    for corruption, stage in CONDITIONS:
        for severity, corrupted in enumerate(conditions[(corruption, stage)], start=1):
            drop = corrupted - value
            rows += metric_rows(run_id, model, "toy", "linear_probe", Variant(corruption, severity, stage),
                                {"accuracy": MetricValue(corrupted, corrupted - 0.09, corrupted + 0.09, 90, drop - 0.05, drop + 0.05)})
    return rows


def _tables():
    table = build_results_table(golden_rows("alpha", "run-a") + golden_rows("beta", "run-b")
                                + _rows("random", "run-r", RANDOM["clean"], RANDOM))
    return table, [_record("alpha", "run-a"), _record("beta", "run-b"), _record("random", "run-r")]


def _auc_by_hand(clean, values, chance=THIRD):
    y = [1.0] + [(v - chance) / (clean - chance) for v in values]
    return sum((y[i] + y[i + 1]) / 2 for i in range(len(values))) / len(values)


def test_a_model_at_chance_is_ranked_last_with_its_reason():
    table, records = _tables()
    summary = summarise_results(table, records)
    ranking = summary.ranking
    # by the plain formulas it would lead: normalised AUC above 1 and retention above 1
    plain_auc = np.mean([_auc_by_hand(0.389, RANDOM[c]) for c in CONDITIONS])
    alpha_auc = ranking.set_index("model").loc["alpha", "mean_normalised_auc"]
    assert plain_auc > 1.2 > alpha_auc
    assert list(ranking.model) == ["alpha", "beta", "random"] and list(ranking["rank"]) == [1, 2, 3]
    last = ranking.iloc[-1]
    assert last.chance == pytest.approx(THIRD)
    assert np.isnan(last.mean_retention) and np.isnan(last.mean_normalised_auc)
    assert last.summary_note.startswith("near chance") and "0.300" in last.summary_note
    assert (ranking.summary_note.iloc[:2] == "").all()
    conditions = summary.conditions[summary.conditions.model == "random"]
    assert conditions.mean_retention.isna().all() and conditions.normalised_auc.isna().all()
    assert (conditions.summary_note == last.summary_note).all()
    assert summary.blur_stages[summary.blur_stages.model == "random"].pre_retention.isna().all()
    assert summary.blur_stages[summary.blur_stages.model == "alpha"].pre_retention.notna().all()
    assert summary.worst[summary.worst.model == "random"].mean_retention.isna().all()


@pytest.mark.parametrize("clean, defined", [((0.38, 0.37, 0.39), False), ((0.41, 0.40, 0.42), True)])
def test_a_clean_value_must_lie_ten_percent_of_the_way_from_chance_to_one(clean, defined):
    """Margin 0.1 · (1 − 1/3) ≈ 0.067: 0.38 is too close even with a tight interval, 0.41 is not."""
    table = build_results_table(_rows("random", "run-r", clean, RANDOM))
    row = summarise_results(table, [_record("random", "run-r")]).ranking.iloc[0]
    assert (row.summary_note == "") == defined
    assert np.isfinite(row.mean_normalised_auc) == defined
    if not defined:
        assert "0.047 above chance 0.333, under the margin 0.067" in row.summary_note


def test_robustpath_report_shows_the_reason_in_every_output(tmp_path):
    table, records = _tables()
    folders = []
    for record in records:
        folder = tmp_path / record["run_id"]
        folder.mkdir()
        (folder / "results.csv").write_text(table_csv(table[table.run_id == record["run_id"]]))
        (folder / "run.json").write_text(json.dumps(record))
        folders.append(str(folder))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", *folders, "--out", str(out), "-f", "csv", "-f", "json", "-f", "markdown",
                                      "--no-plots"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    printed = [line for line in result.stdout.splitlines() if "random" in line or "alpha" in line]
    assert printed[0].split("│")[1].strip() == "1" and "near chance" in printed[-1] and "random" in printed[-1]
    ranking = pd.read_csv(out / "robustness_ranking.csv", keep_default_na=False)
    assert ranking.model.tolist()[-1] == "random" and ranking.summary_note.iloc[-1].startswith("near chance")
    document = json.loads((out / "report.json").read_text())
    assert document["tables"]["robustness_ranking"][-1]["summary_note"].startswith("near chance")
    assert document["tables"]["robustness_ranking"][-1]["mean_normalised_auc"] is None
    assert any(note.startswith("random on toy · linear_probe · accuracy") for note in document["notes"])
    markdown = (out / "report.md").read_text()
    random_row = next(line for line in markdown.splitlines() if line.startswith("| 3 | random"))
    assert "near chance" in random_row and "| — | — |" in random_row


def test_a_random_weight_clip_at_chance_in_zero_shot_gets_a_note(tiny_open_clip, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "--model", f"open_clip:local-dir:{tiny_open_clip.extra['local_dir']}",
                                      "--out", str(out), "-c", "hue", "-s", "1", "-t", "zeroshot", "--device", "cpu",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    test_counts = list(record["dataset"]["counts"]["test"].values())
    chance = record["tasks"]["zeroshot"]["chance"]
    assert chance["accuracy"]["value"] == pytest.approx(max(test_counts) / sum(test_counts))
    assert chance["balanced_accuracy"]["value"] == pytest.approx(THIRD)
    ranking = pd.read_csv(out / "robustness_ranking.csv", keep_default_na=False)
    clean = ranking.iloc[0]
    # the random model predicts (nearly) one class: its clean interval reaches the majority-class rate
    assert clean.summary_note.startswith("near chance") and clean.mean_normalised_auc == ""
    assert any("zeroshot · accuracy: retention and normalised AUC undefined" in note for note in record["notes"])
    assert "retention and normalised AUC undefined" in " ".join(result.output.split())  # printed as a note


def test_recall_at_its_ceiling_is_not_near_chance():
    """recall@10 cannot exceed 10 / R = 0.1 here (chance 10 / G = 0.033): the margin is 10% of 0.1 − 0.033."""
    counts = {"train": {"a": 100, "b": 100, "c": 100}, "test": {"a": 30, "b": 30, "c": 30}}
    record = {**run_record("m", "run-r"), "dataset": {"name": "toy", "classes": ["a", "b", "c"], "counts": counts}}
    rows = metric_rows("run-r", "m", "toy", "retrieval", CLEAN_VARIANT, {"recall_at_10": MetricValue(0.1, 0.095, 0.1, 90, 0, 0)})
    rows += metric_rows("run-r", "m", "toy", "retrieval", Variant("hue", 1, "pre"),
                        {"recall_at_10": MetricValue(0.08, 0.07, 0.09, 90, -0.03, -0.01)})
    models = summarise_results(build_results_table(rows), [record]).models.iloc[0]
    assert models.chance == pytest.approx(10 / 300) and models.summary_note == ""
    assert models.mean_normalised_auc == pytest.approx((1 + (0.08 - 1 / 30) / (0.1 - 1 / 30)) / 2)
