"""predictions.csv / misclassified.csv written piece by piece: the same bytes as one pandas table.

Reference: the whole table built at once (exports.predictions_frame, pandas to_csv) and
misclassified rows found with a pandas merge by hand; gzip files compared after gzip.decompress.
"""
import gzip

import numpy as np
import pandas as pd
import pytest

from robustpath.errors import OutputError
from robustpath.output.exports import FLOAT_FORMAT, RunExports, SampleTable, misclassified_frame, predictions_frame
from robustpath.tasks.outcomes import Outcomes
from robustpath.output.prediction_files import write_predictions
from robustpath.variants import CLEAN_VARIANT, Variant

VARIANTS = [CLEAN_VARIANT, Variant("hue", 2, "pre"), Variant("gaussian_blur", 1, "post")]


def _run(seed: int = 0):
    rng = np.random.default_rng(seed)
    n, classes = 60, ("tumour", "stroma", "immune")
    samples = SampleTable(tuple(f"img{i:03d}" for i in range(n)), tuple(f"/data/img{i:03d}.png" for i in range(n)),
                          rng.integers(0, 3, n), np.array(["train"] * 35 + ["test"] * 25), classes)
    test, train = np.arange(35, 60), np.arange(35)
    labels = samples.labels[test]
    outcomes = {}
    for variant in VARIANTS:
        probabilities = rng.dirichlet(np.ones(3), 25)
        outcomes[("linear_probe", variant.key)] = Outcomes(3, labels, probabilities.argmax(axis=1), probabilities)
        neighbours = rng.integers(0, 35, (25, 10))
        outcomes[("retrieval", variant.key)] = Outcomes(3, labels, samples.labels[train][neighbours[:, 0]],
                                                        per_sample={"top1_accuracy": rng.random(25)},
                                                        neighbours=neighbours)
        outcomes[("embedding_drift", variant.key)] = Outcomes(per_sample={"cosine_similarity": rng.random(25)})
    return RunExports(samples=samples, test_indices=test, train_indices=train, variants=VARIANTS), outcomes


def test_all_rows_are_the_bytes_of_one_table(tmp_path):
    exports, outcomes = _run()
    written = write_predictions(exports, outcomes, tmp_path)
    whole = predictions_frame(exports, outcomes)
    assert written["predictions"].read_bytes() == whole.to_csv(index=False, float_format=FLOAT_FORMAT).encode()
    assert written["misclassified"].read_bytes() == misclassified_frame(whole, exports.samples).to_csv(index=False).encode()
    packed = write_predictions(exports, outcomes, tmp_path / "gz", compress=True)
    assert packed["predictions"].name == "predictions.csv.gz"
    assert gzip.decompress(packed["predictions"].read_bytes()) == written["predictions"].read_bytes()
    assert gzip.decompress(packed["misclassified"].read_bytes()) == written["misclassified"].read_bytes()


def test_changed_keeps_the_predictions_that_differ_from_clean(tmp_path):
    exports, outcomes = _run(1)
    written = write_predictions(exports, outcomes, tmp_path, mode="changed")
    found = pd.read_csv(written["predictions"])
    whole = pd.read_csv(write_predictions(exports, outcomes, tmp_path / "all")["predictions"])
    predicted = whole[whole.predicted_label.notna()]
    clean = predicted[predicted.corruption == "none"][["task", "sample_id", "predicted_label"]]
    merged = predicted.merge(clean, on=["task", "sample_id"], suffixes=("", "_clean"))
    expected = merged[merged.predicted_label != merged.predicted_label_clean].drop(columns="predicted_label_clean")
    assert len(expected) > 10
    pd.testing.assert_frame_equal(found.reset_index(drop=True), expected.reset_index(drop=True))
    assert write_predictions(exports, outcomes, tmp_path / "none", mode="none") == {}
    assert not (tmp_path / "none").exists()


def test_a_failed_write_leaves_nothing(tmp_path):
    exports, outcomes = _run()
    (tmp_path / "predictions.csv").mkdir()  # the final name is taken by a folder
    with pytest.raises(OutputError, match="predictions.csv"):
        write_predictions(exports, outcomes, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]


def test_the_options_reach_the_run_folder_and_the_dry_run(tiny_customvit_dir, tmp_path, monkeypatch):
    import json

    from engine_fixtures import cli

    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    sweep = ["-c", "hue", "-s", "4", "--device", "cpu", "-b", "16", "--quiet", "-t", "linear_probe", "-f", "csv"]
    plan = cli("eval", tiny_customvit_dir, "--out", tmp_path / "plan", *sweep, "--predictions", "changed",
               "--compress-exports", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["exports"] == ["predictions.csv.gz (changed rows only)", "misclassified.csv.gz"]
    bad = cli("eval", tiny_customvit_dir, "--out", tmp_path / "bad", *sweep, "--predictions", "some")
    assert bad.exit_code == 2 and "predictions mode" in bad.output and not (tmp_path / "bad").exists()
    out = tmp_path / "out"
    assert cli("eval", tiny_customvit_dir, "--out", out, *sweep, "--predictions", "changed", "--compress-exports").exit_code == 0
    record = json.loads((out / "run.json").read_text())
    assert record["exports"]["predictions"] == "predictions.csv.gz" and not (out / "predictions.csv").exists()
    changed = pd.read_csv(out / "predictions.csv.gz")
    assert (changed.corruption == "hue").all()
    none = tmp_path / "none"
    assert cli("eval", tiny_customvit_dir, "--out", none, *sweep, "--predictions", "none").exit_code == 0
    assert not list(none.glob("predictions.csv*")) and not list(none.glob("misclassified.csv*"))
    assert (none / "results.csv").read_bytes() == (out / "results.csv").read_bytes()
