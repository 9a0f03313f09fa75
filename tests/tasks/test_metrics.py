"""Metrics against scikit-learn and numpy written out here."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from robustpath.tasks.metrics import bootstrap_indices, classification_metrics, mean_metric


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


def _reference_ece(probabilities, labels, bins=15):
    """Guo et al. (2017), written out with a loop over bins ((b-1)/B, b/B]."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    total = 0.0
    for b in range(1, bins + 1):
        low, high = (b - 1) / bins, b / bins
        members = (confidence > low) & (confidence <= high) if b > 1 else (confidence <= high)
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return total


def _random_outcomes(seed, n=120, classes=3, noise=0.6):
    from robustpath.tasks.outcomes import Outcomes

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes)) + 2.0 * np.eye(classes)[labels] * (rng.random(n) > noise)[:, None]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Outcomes(n_classes=classes, labels=labels, predictions=probabilities.argmax(axis=1),
                    probabilities=probabilities, per_sample={"hit": (probabilities.argmax(axis=1) == labels).astype(float)})


def test_expected_calibration_error_matches_loop_over_bins():
    from robustpath.tasks.metrics import expected_calibration_error

    outcomes = _random_outcomes(0)
    p, y = outcomes.probabilities, outcomes.labels
    ours = expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == y, np.arange(len(y))[None, :])[0]
    assert ours == pytest.approx(_reference_ece(p, y))
    indices = bootstrap_indices(len(y), seed=3, resamples=5)
    replicates = expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == y, indices)
    assert replicates == pytest.approx([_reference_ece(p[i], y[i]) for i in indices])
    perfect = np.eye(3)[y]  # confident and always right → 0
    assert expected_calibration_error(perfect.max(axis=1), perfect.argmax(axis=1) == y, np.arange(len(y))[None])[0] == 0


def test_paired_bootstrap_drop_by_hand():
    """Same resampled images for clean and variant; interval of the differences."""
    from robustpath.tasks.outcomes import PairedScorer

    clean, variant = _random_outcomes(1, noise=0.2), _random_outcomes(1, noise=0.6)
    scorer = PairedScorer(("accuracy", "hit", "expected_calibration_error", "flip_rate"), seed=4, clean=clean)
    values = scorer.score(variant)
    indices = bootstrap_indices(len(clean.labels), seed=4)
    clean_hits = (clean.predictions == clean.labels).astype(float)
    variant_hits = (variant.predictions == variant.labels).astype(float)
    differences = variant_hits[indices].mean(axis=1) - clean_hits[indices].mean(axis=1)
    low, high = np.percentile(differences, [2.5, 97.5])
    for name in ("accuracy", "hit"):
        assert values[name].value == pytest.approx(variant_hits.mean())
        assert (values[name].drop_ci_low, values[name].drop_ci_high) == pytest.approx((low, high))
    flips = (variant.predictions != clean.predictions).astype(float)
    assert values["flip_rate"].value == pytest.approx(flips.mean())
    assert values["flip_rate"].ci_low == pytest.approx(np.percentile(flips[indices].mean(axis=1), 2.5))
    assert values["expected_calibration_error"].value == pytest.approx(_reference_ece(variant.probabilities, variant.labels))
    same = scorer.score(clean)
    assert all(v.drop_ci_low == 0 and v.drop_ci_high == 0 for v in same.values())
    assert same["flip_rate"].value == 0


def test_outcomes_round_trip_through_npz(tmp_path):
    from robustpath.tasks.outcomes import load_outcomes, save_outcomes

    outcomes = {("linear_probe", "none/0/none"): _random_outcomes(2), ("retrieval", "hue/1/pre"): _random_outcomes(3)}
    loaded = load_outcomes(save_outcomes(tmp_path / "outcomes.npz", outcomes))
    assert set(loaded) == set(outcomes)
    for key, item in outcomes.items():
        assert np.array_equal(loaded[key].labels, item.labels)
        assert np.allclose(loaded[key].probabilities, item.probabilities)
        assert np.array_equal(loaded[key].per_sample["hit"], item.per_sample["hit"])
        assert loaded[key].n_classes == 3
