"""Drop p-values from paired bootstrap replicates, --bootstrap N, and significance against the interval."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from robustpath.tasks import metrics
from robustpath.cli.main import app
from robustpath.spec.run_spec import RunSpec
from robustpath.errors import UsageError
from robustpath.tasks.metrics import (
    MetricValue,
    bootstrap_index_blocks,
    bootstrap_indices,
    drop_is_significant,
    paired_drop_p_value,
)
from robustpath.tasks.outcomes import Outcomes, PairedScorer, load_outcomes
from robustpath.results.table import build_results_table, metric_rows, upgrade_results_table
from robustpath.variants import CLEAN_VARIANT, Variant

runner = CliRunner()


def _p_by_hand(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value, written out: the smaller tail share (+1 correction), doubled, at most 1."""
    b = len(differences)
    below = (1 + sum(1 for d in differences if d <= 0)) / (b + 1)
    above = (1 + sum(1 for d in differences if d >= 0)) / (b + 1)
    return min(1.0, 2 * min(below, above))


def _resampled_means(values: np.ndarray, seed: int, resamples: int) -> np.ndarray:
    """The documented resampling: one generator seeded with (seed, n), rows of n indices."""
    n = len(values)
    indices = np.random.default_rng([seed, n]).integers(0, n, size=(resamples, n))
    return values[indices].mean(axis=1)


@pytest.mark.parametrize("resamples", [1000, 4000])
def test_p_value_follows_from_the_paired_replicates(resamples):
    rng = np.random.default_rng(0)
    clean_hits = (rng.random(150) < 0.8).astype(float)
    variant_hits = np.where(rng.random(150) < 0.1, 1 - clean_hits, clean_hits)
    clean, variant = Outcomes(per_sample={"hit": clean_hits}), Outcomes(per_sample={"hit": variant_hits})
    value = PairedScorer(("hit",), seed=3, clean=clean, resamples=resamples).score(variant)["hit"]
    differences = _resampled_means(variant_hits, 3, resamples) - _resampled_means(clean_hits, 3, resamples)
    assert value.drop_p_value == pytest.approx(_p_by_hand(differences))
    assert (value.drop_ci_low, value.drop_ci_high) == pytest.approx(tuple(np.percentile(differences, [2.5, 97.5])))
    same = PairedScorer(("hit",), seed=3, clean=clean, resamples=resamples).score(clean)["hit"]
    assert same.drop_p_value == 1.0  # every difference is 0


def test_significance_is_p_below_five_percent_and_agrees_with_the_interval():
    """p < 0.05 ⇒ the 95% interval excludes 0; the converse fails only with exactly 25 of 1,000 on the far side."""
    rng = np.random.default_rng(1)
    disagreements = []
    for shift in np.linspace(0.0, 4.0, 400):
        differences = rng.normal(shift, 1.0, 1000).round(1)  # rounding makes ties at 0 common
        p = paired_drop_p_value(differences, np.zeros(1000))
        assert p == pytest.approx(_p_by_hand(differences))
        low, high = np.percentile(differences, [2.5, 97.5])
        excludes = low > 0 or high < 0
        if drop_is_significant(p) != excludes:
            disagreements.append(min((differences <= 0).sum(), (differences >= 0).sum()))
    assert set(disagreements) <= {25}
    assert not drop_is_significant(float("nan")) and np.isnan(paired_drop_p_value([np.nan], [0.0]))


def test_index_blocks_are_the_rows_of_one_seeded_stream(monkeypatch):
    full = bootstrap_indices(37, seed=5, resamples=300)
    assert np.array_equal(np.concatenate(list(bootstrap_index_blocks(37, 5, 300))), full)
    monkeypatch.setattr(metrics, "_CACHED_BYTES", 0)  # drawn block by block, 7 rows at a time
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 7 * 37)
    blocks = list(bootstrap_index_blocks(37, 5, 300))
    assert len(blocks) == 43 and np.array_equal(np.concatenate(blocks), full)
    assert np.array_equal(bootstrap_indices(37, seed=5, resamples=1000)[:300], full)  # more resamples extend the rows


def test_results_carry_the_p_value_and_older_tables_keep_their_interval_rule():
    rows = metric_rows("run", "m", "toy", "retrieval", CLEAN_VARIANT, {"top1_accuracy": MetricValue(0.9, 0.8, 1.0, 50, 0, 0, 1.0)})
    rows += metric_rows("run", "m", "toy", "retrieval", Variant("hue", 1, "pre"),
                        {"top1_accuracy": MetricValue(0.85, 0.75, 0.95, 50, -0.1, -0.001, 0.06)})
    table = build_results_table(rows)
    assert list(table.columns[table.columns.get_loc("drop_ci_high") + 1 :][:2]) == ["drop_p_value", "drop_significant"]
    assert table.drop_p_value.tolist() == [1.0, 0.06]
    assert not table.drop_significant.any()  # p ≥ 0.05 although the interval just excludes 0
    version_2 = table.drop(columns=["drop_p_value"]).assign(schema_version=2)
    upgraded = upgrade_results_table(version_2)
    assert upgraded.drop_p_value.isna().all() and upgraded.drop_significant.tolist() == [False, True]
    assert (upgraded.schema_version == 3).all()


def test_bootstrap_option_is_validated_everywhere(tmp_path):
    with pytest.raises(UsageError, match="--bootstrap must be a whole number of at least 40"):
        RunSpec(model="customvit-demo", bootstrap=39)
    with pytest.raises(UsageError, match="--bootstrap"):
        RunSpec(model="customvit-demo", bootstrap="1000")
    result = runner.invoke(app, ["eval", "--bootstrap", "10", "--out", str(tmp_path / "x"), "--dry-run"])
    assert result.exit_code == 2 and "at least 40" in result.output and "Traceback" not in result.output
    config = tmp_path / "sweep.toml"
    config.write_text('models = ["customvit-demo"]\nbootstrap = 5\n')
    result = runner.invoke(app, ["eval", "--config", str(config), "--dry-run", "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "--bootstrap" in result.output


def test_the_run_id_changes_with_the_resamples_but_not_for_the_default():
    from robustpath.run.runner import make_run_id

    facts = dict(model={"name": "m"}, dataset={"name": "d"}, preset={"name": "p"}, prompts=None, device="cpu",
                 precision="fp32", versions={})
    spec = RunSpec(model="customvit-demo")

    class EarlierSpec:  # a spec from before --bootstrap existed
        def to_dict(self):
            return {k: v for k, v in spec.to_dict().items() if k != "bootstrap"}

    assert make_run_id(spec, **facts) == make_run_id(EarlierSpec(), **facts)
    assert make_run_id(dataclasses.replace(spec, bootstrap=10_000), **facts) != make_run_id(spec, **facts)


def test_the_borderline_drop_of_the_demo_is_significant_with_1000_resamples_only(tmp_path, monkeypatch):
    """demo-ihc, retrieval top-1, hue severity 1: 2.2% of 1,000 paired replicates ≥ 0 (p = 2·23/1001), but
    not with 10,000; both p-values recomputed here from the per-image hits in outcomes.npz."""
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    found = {}
    for resamples in (1000, 10_000):
        out = tmp_path / str(resamples)
        command = ["eval", "--out", str(out), "-c", "hue", "-s", "1", "-t", "retrieval", "--device", "cpu", "--quiet"]
        result = runner.invoke(app, [*command, "--bootstrap", str(resamples)])
        assert result.exit_code == 0, result.output
        table = pd.read_csv(out / "results.csv")
        row = table[(table.metric == "top1_accuracy") & (table.corruption == "hue")].iloc[0]
        outcomes = load_outcomes(out / "outcomes.npz")
        clean = outcomes[("retrieval", "none/0/none")].per_sample["top1_accuracy"]
        hue = outcomes[("retrieval", "hue/1/pre")].per_sample["top1_accuracy"]
        seed = json.loads((out / "run.json").read_text())["spec"]["seed"]
        differences = _resampled_means(hue, seed, resamples) - _resampled_means(clean, seed, resamples)
        assert row.drop_p_value == pytest.approx(_p_by_hand(differences), abs=1e-9)
        found[resamples] = (row.drop_p_value, bool(row.drop_significant), json.loads((out / "run.json").read_text())["run_id"])
    assert found[1000][0] < 0.05 and found[1000][1]
    assert found[10_000][0] > 0.05 and not found[10_000][1]
    assert found[1000][2] != found[10_000][2]  # the resamples are part of what a run measures
