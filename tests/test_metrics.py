"""Metrics against scikit-learn and numpy written out here."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from robustpath.metrics import bootstrap_indices, classification_metrics, mean_metric


@pytest.mark.parametrize("n_classes, missing_class", [(2, False), (4, True)])
def test_classification_metrics_match_sklearn(n_classes, missing_class):
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, n_classes, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, n_classes, 200))
    if missing_class:  # a class predicted but absent from the truth, as sklearn handles it
        y_true[y_true == n_classes - 1] = 0
    values = classification_metrics(y_true, y_pred, n_classes, seed=0)
    assert values["accuracy"].value == pytest.approx(accuracy_score(y_true, y_pred))
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected_balanced = balanced_accuracy_score(y_true, y_pred)
    assert values["balanced_accuracy"].value == pytest.approx(expected_balanced)
    assert values["macro_f1"].value == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert values["weighted_f1"].value == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    for value in values.values():
        assert value.ci_low <= value.value <= value.ci_high
        assert value.n == 200


def test_bootstrap_replicates_match_sklearn_on_resampled_data():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 3, 60)
    y_pred = np.where(rng.random(60) < 0.6, y_true, rng.integers(0, 3, 60))
    indices = bootstrap_indices(60, seed=1, resamples=200)
    expected = [f1_score(y_true[i], y_pred[i], average="macro") for i in indices]
    low, high = np.percentile(expected, [2.5, 97.5])
    values = classification_metrics(y_true, y_pred, 3, seed=1)
    # the module uses 1000 replicates; 200 hand-computed ones land close to the same interval
    assert values["macro_f1"].ci_low == pytest.approx(low, abs=0.05)
    assert values["macro_f1"].ci_high == pytest.approx(high, abs=0.05)


def test_bootstrap_is_seeded_and_paired():
    a = bootstrap_indices(50, seed=7)
    assert np.array_equal(a, bootstrap_indices(50, seed=7))
    assert not np.array_equal(a, bootstrap_indices(50, seed=8))


def test_mean_metric_interval_by_hand():
    values = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=float)
    result = mean_metric(values, seed=0)
    indices = bootstrap_indices(10, seed=0)
    replicates = values[indices].mean(axis=1)
    assert result.value == pytest.approx(0.7)
    assert result.ci_low == pytest.approx(np.percentile(replicates, 2.5))
    assert result.ci_high == pytest.approx(np.percentile(replicates, 97.5))
