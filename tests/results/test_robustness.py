"""Robustness summaries against numbers summed by hand (ImageNet-C CE / mCE, AUC, retention)."""
import numpy as np
import pandas as pd
import pytest
from report_fixtures import GOLDEN, golden_table, run_record, write_run_dir

from robustpath.errors import DataError, UsageError
from robustpath.results.table import RESULT_COLUMNS, SCHEMA_COLUMNS, load_results_table
from robustpath.tasks.chance import BALANCED_ASSUMED, FROM_COUNTS, RECORDED, UNKNOWN, recorded_chance
from robustpath.results.robustness import normalised_auc, summarise_results

THIRD = 1 / 3
RECORDS = [run_record("alpha", "run-a"), run_record("beta", "run-b")]


def _auc_by_hand(clean, values, chance=THIRD):
    """Severities 1, 2, ... one apart: trapezoids of (v − chance) / (clean − chance), divided by the last severity."""
    y = [1.0] + [(v - chance) / (clean - chance) for v in values]
    return sum((y[i] + y[i + 1]) / 2 for i in range(len(values))) / len(values)


def _errors(model, condition):
    return [1 - v for v in GOLDEN[model][condition]]


@pytest.fixture(scope="module")
def summary():
    return summarise_results(golden_table(), RECORDS, baseline="alpha")


def test_chance_comes_from_the_run_then_its_class_counts_then_its_class_names():
    counted = {**run_record("alpha", "run-a"),
               "dataset": {"classes": ["a", "b"], "counts": {"train": {"a": 30, "b": 10}, "test": {"a": 6, "b": 4}}}}
    recorded = {**counted, "tasks": {"retrieval": {"chance": {"top1_accuracy": {"value": 0.123}, "flip_rate": {"value": None}}}}}
    assert recorded_chance(recorded, "retrieval", "top1_accuracy") == (0.123, 1.0, RECORDED)
    assert np.isnan(recorded_chance(recorded, "retrieval", "flip_rate").value)
    # an older run.json: the same value from its per-split class counts (hand: 0.6 · 30/40 + 0.4 · 10/40)
    assert recorded_chance(counted, "retrieval", "top1_accuracy") == (pytest.approx(0.55), 1.0, FROM_COUNTS)
    assert recorded_chance(counted, "linear_probe", "accuracy") == (0.6, 1.0, FROM_COUNTS)  # the majority class
    # recall@10 cannot exceed 10 / R: 0.6 · 10/30 + 0.4 · 10/10
    assert recorded_chance(counted, "retrieval", "recall_at_10").best == pytest.approx(0.6 / 3 + 0.4)
    broken = {**counted, "tasks": {"retrieval": {"chance": {"top1_accuracy": {"value": "high"}}}}}
    assert recorded_chance(broken, "retrieval", "top1_accuracy").source == FROM_COUNTS  # malformed → ignored
    names_only = run_record("alpha", "run-a")
    assert recorded_chance(names_only, "linear_probe", "accuracy") == (pytest.approx(THIRD), 1.0, BALANCED_ASSUMED)
    assert np.isnan(recorded_chance(names_only, "retrieval", "top1_accuracy").value)
    assert recorded_chance({}, "embedding_drift", "cosine_similarity") == (0.0, 1.0, RECORDED)
    assert recorded_chance({"dataset": "x"}, "zeroshot", "accuracy").source == UNKNOWN
    notes = summarise_results(golden_table(), RECORDS).notes  # run.json without class counts: said once per run
    assert len(notes) == 2 and "chance levels are assumed for balanced classes" in notes[0] and "run-a" in notes[0]


def test_normalised_auc_is_one_without_loss_and_zero_at_chance():
    assert normalised_auc([1, 2, 3], [0.9, 0.9, 0.9], 0.9, 0.5) == pytest.approx(1.0)
    assert normalised_auc([1, 2], [0.5, 0.5], 0.9, 0.5) == pytest.approx(0.25)  # one half-trapezoid of width 1 over 2
    assert normalised_auc([2, 4], [0.7, 0.5], 0.9, 0.5) == pytest.approx((0.75 * 2 + 0.25 * 2) / 4)
    assert np.isnan(normalised_auc([1], [0.2], 0.3, 0.5))  # clean below chance: no headroom


def test_corruption_errors_follow_imagenet_c(summary):
    conditions = summary.conditions[summary.conditions.metric == "accuracy"].set_index(["model", "condition"])
    expected_ce = {}
    for (corruption, stage), label in zip(
        [("gaussian_blur", "pre"), ("gaussian_blur", "post"), ("hue", "pre")],
        ["gaussian_blur", "gaussian_blur (post-resize)", "hue"],
    ):
        own, base = _errors("beta", (corruption, stage)), _errors("alpha", (corruption, stage))
        expected_ce[label] = sum(own) / sum(base)
        relative = sum(e - (1 - GOLDEN["beta"]["clean"]) for e in own) / sum(e - (1 - GOLDEN["alpha"]["clean"]) for e in base)
        assert conditions.loc[("beta", label), "ce"] == pytest.approx(expected_ce[label])
        assert conditions.loc[("beta", label), "relative_ce"] == pytest.approx(relative)
        assert conditions.loc[("alpha", label), "ce"] == pytest.approx(1.0)
    assert expected_ce == pytest.approx({"gaussian_blur": 1.0, "gaussian_blur (post-resize)": 1.25, "hue": 2.0})
    models = summary.models.set_index(["model", "metric"])
    assert models.loc[("beta", "accuracy"), "mce"] == pytest.approx((1.0 + 1.25 + 2.0) / 3)
    assert models.loc[("beta", "accuracy"), "relative_mce"] == pytest.approx((0.5 + 1.0 + 2.0) / 3)
    assert np.isnan(models.loc[("beta", "flip_rate"), "mce"])  # lower-is-better metrics have no CE


def test_retention_auc_ranking_and_worst_conditions(summary):
    models = summary.models.set_index(["model", "metric"])
    beta = GOLDEN["beta"]
    retention = np.mean([np.mean(beta[c]) / beta["clean"] for c in beta if c != "clean"])
    assert models.loc[("beta", "accuracy"), "mean_retention"] == pytest.approx(retention)
    for model in ("alpha", "beta"):
        values = GOLDEN[model]
        auc = np.mean([_auc_by_hand(values["clean"], values[c]) for c in values if c != "clean"])
        assert models.loc[(model, "accuracy"), "mean_normalised_auc"] == pytest.approx(auc)
        assert models.loc[(model, "accuracy"), "worst_condition"] == "gaussian_blur (post-resize)"
    assert models.loc[("alpha", "accuracy"), "significant_drops"] == 5  # hue severity 1 does not drop
    assert list(summary.ranking.model) == ["alpha", "beta"] and list(summary.ranking["rank"]) == [1, 2]
    worst = summary.worst[summary.worst.model == "beta"]
    assert len(worst) == 3 and worst.mean_drop.iloc[0] == pytest.approx(0.5 - 0.8)


def test_blur_before_and_after_the_resize(summary):
    blur = summary.blur_stages.set_index(["model", "severity"])
    assert blur.loc[("beta", 2), "pre_value"] == pytest.approx(0.7)
    assert blur.loc[("beta", 2), "post_value"] == pytest.approx(0.4)
    assert blur.loc[("beta", 2), "post_minus_pre"] == pytest.approx(-0.3)
    assert blur.loc[("alpha", 1), "post_retention"] == pytest.approx(0.7 / 0.9)


def test_data_scale_mean_and_sd_over_repeats():
    table = golden_table()
    sweep = []
    for repeat, accuracy in enumerate([0.5, 0.6, 0.8]):
        part = table[(table.model == "alpha") & (table.metric == "accuracy")].copy()
        part["samples_per_class"], part["repeat"] = 16, repeat
        part["value"] = np.where(part.corruption == "none", accuracy, accuracy - 0.1)
        sweep.append(part)
    merged = pd.concat([table, *sweep], ignore_index=True)
    summary = summarise_results(merged, RECORDS)
    overview = summary.data_scale_overview.set_index(["model", "samples_per_class"])
    assert overview.loc[("alpha", 16), "clean_mean"] == pytest.approx(np.mean([0.5, 0.6, 0.8]))
    assert overview.loc[("alpha", 16), "clean_sd"] == pytest.approx(np.std([0.5, 0.6, 0.8], ddof=1))
    assert overview.loc[("alpha", 16), "corrupted_mean"] == pytest.approx(np.mean([0.4, 0.5, 0.7]))
    assert overview.loc[("alpha", 16), "repeats"] == 3
    per_variant = summary.data_scale
    row = per_variant[(per_variant.samples_per_class == 16) & (per_variant.corruption == "hue") & (per_variant.severity == 2)]
    assert row["mean"].iloc[0] == pytest.approx(np.mean([0.4, 0.5, 0.7]))
    # the main tables only use the probe on all training images
    assert len(summary.models[summary.models.model == "alpha"]) == 2


def test_unknown_baseline_suggests_a_model():
    with pytest.raises(UsageError, match="Did you mean 'alpha'"):
        summarise_results(golden_table(), RECORDS, baseline="alpah")


def test_results_table_columns_and_version_1_upgrade(tmp_path):
    table = golden_table()
    assert tuple(table.columns) == RESULT_COLUMNS and tuple(table.columns[: len(SCHEMA_COLUMNS)]) == SCHEMA_COLUMNS
    assert (table.schema_version == 3).all()
    clean = table[table.corruption == "none"]
    assert (clean.drop_from_clean == 0).all() and not clean.drop_significant.any()
    folder = write_run_dir(tmp_path / "old", "beta", "run-old", schema_version=1)
    upgraded = load_results_table(folder / "results.csv")
    assert tuple(upgraded.columns) == RESULT_COLUMNS
    assert (upgraded.samples_per_class == 0).all() and upgraded.drop_ci_low.isna().all()
    assert not upgraded.drop_significant.any()
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="missing columns"):
        load_results_table(tmp_path / "bad.csv")
