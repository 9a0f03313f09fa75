"""Chance levels against Monte-Carlo simulations of the null models (seeded numpy) and scikit-learn."""
import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from robustpath.tasks.chance import best_value, chance_level, chance_record, majority_vote_distribution

GALLERY = np.array([5, 14, 9, 2])  # gallery images per class: imbalanced, one class smaller than k = 5
QUERIES = np.array([7, 3, 6, 4])  # queries per class
DRAWS = 200_000


def _random_rankings(rng, labels: np.ndarray, draws: int) -> np.ndarray:
    """(draws, G) gallery labels in uniformly random order."""
    return labels[np.argsort(rng.random((draws, len(labels))), axis=1)]


def _simulated_retrieval(query_class: int, ranked: np.ndarray, k: int, vote_k: int) -> dict[str, np.ndarray]:
    """Per draw: the retrieval metrics written out from their definitions."""
    relevant = ranked[:, :k] == query_class
    n_relevant = (ranked[0] == query_class).sum()
    hits = relevant.cumsum(axis=1)
    precision_sum = (hits / np.arange(1, k + 1) * relevant).sum(axis=1)
    votes = np.stack([(ranked[:, :vote_k] == c).sum(axis=1) for c in range(len(GALLERY))], axis=1)
    winner = votes.argmax(axis=1)  # first maximum: ties go to the smallest class index
    return {
        "top1_accuracy": relevant[:, :1].any(axis=1), "top3_accuracy": relevant[:, :3].any(axis=1),
        "top5_accuracy": relevant[:, :5].any(axis=1), "majority5_accuracy": winner == query_class,
        "map_at_10": precision_sum / min(k, n_relevant), "recall_at_10": hits[:, -1] / n_relevant,
    }


def test_retrieval_chance_levels_match_random_rankings():
    rng = np.random.default_rng(2024)
    labels = np.repeat(np.arange(len(GALLERY)), GALLERY)
    ranked = _random_rankings(rng, labels, DRAWS)
    simulated: dict[str, float] = {}
    for query_class, weight in enumerate(QUERIES / QUERIES.sum()):
        for name, values in _simulated_retrieval(query_class, ranked, 10, 5).items():
            simulated[name] = simulated.get(name, 0.0) + weight * values.mean()
    recall_ceiling = sum(q * min(10, r) / r for q, r in zip(QUERIES / QUERIES.sum(), GALLERY))
    assert best_value("recall_at_10", QUERIES, GALLERY) == pytest.approx(recall_ceiling)
    assert best_value("top5_accuracy", QUERIES, GALLERY) == 1.0
    for name, value in simulated.items():
        expected = chance_level(name, QUERIES, GALLERY)
        # standard error of a mean of values in [0, 1] over DRAWS draws is at most 0.5 / sqrt(DRAWS) ≈ 0.0011
        assert expected == pytest.approx(value, abs=4 * 0.5 / np.sqrt(DRAWS)), name


def test_top_k_chance_counts_repeated_labels_among_the_neighbours():
    """Ten balanced classes, a large gallery: top-5 chance is 1 − 0.9^5 ≈ 0.41, not 5/10."""
    assert chance_level("top5_accuracy", [100] * 10, [10_000] * 10) == pytest.approx(1 - 0.9**5, abs=1e-4)
    assert chance_level("top5_accuracy", [50, 50], [500, 500]) == pytest.approx(1 - 0.5**5, abs=1e-3)  # < 1 with K < k


def test_majority_vote_distribution_matches_random_subsets():
    rng = np.random.default_rng(5)
    counts = np.array([4, 1, 6, 3])
    labels = np.repeat(np.arange(len(counts)), counts)
    subsets = _random_rankings(rng, labels, DRAWS)[:, :5]
    votes = np.stack([(subsets == c).sum(axis=1) for c in range(len(counts))], axis=1)
    frequency = np.bincount(votes.argmax(axis=1), minlength=len(counts)) / DRAWS
    assert majority_vote_distribution(counts, 5) == pytest.approx(frequency, abs=0.004)
    assert majority_vote_distribution(counts, 5).sum() == pytest.approx(1.0)
    assert majority_vote_distribution([2, 1], 5) == pytest.approx([1.0, 0.0])  # k above the gallery size: all of it


def test_classification_chance_levels_match_guessing_and_the_majority_class():
    rng = np.random.default_rng(9)
    counts = np.array([6_000, 3_000, 1_000])
    truth = np.repeat(np.arange(3), counts)
    records = chance_record(("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "flip_rate"), counts)
    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(truth), 1)), truth)
    assert records["accuracy"]["value"] == pytest.approx(accuracy_score(truth, dummy.predict(np.zeros((len(truth), 1)))))
    guesses = [rng.integers(0, 3, len(truth)) for _ in range(40)]
    assert records["balanced_accuracy"]["value"] == pytest.approx(
        np.mean([balanced_accuracy_score(truth, g) for g in guesses]), abs=0.003
    )
    for name, average in (("macro_f1", "macro"), ("weighted_f1", "weighted")):
        simulated = np.mean([f1_score(truth, g, average=average) for g in guesses])
        assert records[name]["value"] == pytest.approx(simulated, abs=0.003), name
    assert records["flip_rate"]["value"] is None and "none" in records["flip_rate"]["definition"]
    assert chance_level("accuracy", [5, 5, 5, 5]) == 0.25 and chance_level("cosine_similarity", [1, 1]) == 0.0
