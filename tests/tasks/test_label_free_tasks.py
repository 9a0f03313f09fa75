"""Identity retrieval and detectability against hand computations, numpy brute force and scikit-learn."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from robustpath.tasks.metrics import bootstrap_indices, paired_auroc, percentile_interval
from robustpath.tasks import TaskContext, create_task
from robustpath.tasks.detectability import knn_distance
from robustpath.tasks.identity import identity_ranks

GRID = 2.0 ** -20


def make_context(train: np.ndarray, clean_test: np.ndarray, seed: int = 0) -> TaskContext:
    return TaskContext(
        train_embeddings=np.asarray(train, np.float32), train_labels=np.zeros(len(train), np.int64),
        test_labels=np.zeros(len(clean_test), np.int64), class_names=("a",), seed=seed,
        clean_test_embeddings=np.asarray(clean_test, np.float32),
    )


def brute_force_ranks(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Rank of gallery row i for query i: sort every gallery row by (descending floor(cos / 2^-20), index)."""
    q = queries.astype(np.float64) / np.linalg.norm(queries.astype(np.float64), axis=1, keepdims=True)
    g = gallery.astype(np.float64) / np.linalg.norm(gallery.astype(np.float64), axis=1, keepdims=True)
    bins = np.floor((q @ g.T) / GRID)
    ranks = []
    for i, row in enumerate(bins):
        order = np.lexsort((np.arange(len(row)), -row))  # last key first: bin descending, then index
        ranks.append(int(np.nonzero(order == i)[0][0]) + 1)
    return np.array(ranks)


def test_identity_ranks_by_hand_with_exact_ties():
    # gallery: e0 = (1, 0), e1 = (0, 1), e2 = (1, 0) (a duplicate of e0), e3 = (-1, 0)
    clean = np.array([[1, 0], [0, 1], [1, 0], [-1, 0]], np.float32)
    queries = np.array([
        [2, 0],   # cos 1, 0, 1, -1: e0 first (tie with e2, lower index) → rank 1
        [1, 1],   # cos .71, .71, .71, -.71: e0, e1, e2 tie → e1 is second
        [1, 0],   # its own e2 ties with e0, which comes first → rank 2
        [0, 1],   # cos 0, 1, 0, -1: e1, e0, e2, then its own e3 → rank 4
    ], np.float32)
    assert identity_ranks(queries, clean).tolist() == [1, 2, 2, 4]


def unit_at(cosine: float) -> list[float]:
    return [cosine, float(np.sqrt(1.0 - cosine**2))]


def test_identity_near_ties_below_the_grid_go_by_index():
    # cos 0.6 and 0.6 + 1e-9 fall in one bin of the 2^-20 grid (0.6 · 2^20 = 629145.6): a tie, by index
    query = [1.0, 0.0]
    clean = np.array([unit_at(0.6), unit_at(0.6 + 1e-9)])
    assert identity_ranks(np.array([query, query]), clean).tolist() == [1, 2]
    # a real gap (0.6 vs 0.61) ranks by similarity, whatever the index
    clean = np.array([unit_at(0.6), unit_at(0.61)])
    assert identity_ranks(np.array([query, query]), clean).tolist() == [2, 1]


def test_identity_ranks_match_numpy_brute_force():
    rng = np.random.default_rng(3)
    clean = rng.normal(size=(150, 16)).astype(np.float32)
    clean[10] = clean[4]  # an exact duplicate
    corrupted = (clean + 0.6 * rng.normal(size=clean.shape)).astype(np.float32)
    np.testing.assert_array_equal(identity_ranks(corrupted, clean), brute_force_ranks(corrupted, clean))


def test_identity_task_metrics_and_chance():
    rng = np.random.default_rng(5)
    clean = rng.normal(size=(60, 8))
    corrupted = clean + 0.8 * rng.normal(size=clean.shape)
    task = create_task("identity")
    task.fit(make_context(rng.normal(size=(20, 8)), clean, seed=7))
    values = task.evaluate(corrupted.astype(np.float32))
    ranks = brute_force_ranks(corrupted.astype(np.float32), clean.astype(np.float32))
    assert values["identity_top1_accuracy"].value == pytest.approx(np.mean(ranks <= 1))
    assert values["identity_top10_accuracy"].value == pytest.approx(np.mean(ranks <= 10))
    assert values["identity_median_rank"].value == pytest.approx(np.median(ranks))
    low, high = percentile_interval(np.median(ranks[bootstrap_indices(60, 7)], axis=1))
    assert (values["identity_median_rank"].ci_low, values["identity_median_rank"].ci_high) == pytest.approx((low, high))
    chance = task.chance_levels()
    assert chance["identity_top1_accuracy"]["value"] == pytest.approx(1 / 60)
    assert chance["identity_top10_accuracy"]["value"] == pytest.approx(10 / 60)
    assert chance["identity_median_rank"]["value"] == pytest.approx(61 / 2)
    clean_values = task.evaluate(clean.astype(np.float32))
    assert clean_values["identity_top1_accuracy"].value == 1.0 and clean_values["identity_median_rank"].value == 1.0


def test_paired_auroc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(11)
    negatives = np.round(rng.normal(size=50), 1)  # rounded: many ties
    positives = np.round(rng.normal(0.4, size=50), 1)
    indices = np.vstack([np.arange(50), rng.integers(0, 50, size=(6, 50))])
    expected = [roc_auc_score(np.r_[np.zeros(50), np.ones(50)], np.r_[negatives[row], positives[row]]) for row in indices]
    np.testing.assert_allclose(paired_auroc(negatives, positives, indices), expected, rtol=0, atol=1e-12)
    assert paired_auroc(negatives, negatives, indices).tolist() == [0.5] * len(indices)


def test_knn_distance_matches_numpy_brute_force():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(90, 12)).astype(np.float32)
    queries = rng.normal(size=(30, 12)).astype(np.float32)
    unit = lambda x: x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)  # noqa: E731
    similarity = np.sort(unit(queries) @ unit(reference).T, axis=1)[:, ::-1][:, :10]
    expected = (1.0 - similarity).mean(axis=1)
    distance = knn_distance(queries, reference, k=10)
    assert np.all(np.abs(distance - expected) <= GRID + 1e-12)  # each similarity floored to the 2^-20 grid
    assert np.all(distance >= expected - 1e-12)
    assert knn_distance(queries, reference[:3], k=10) == pytest.approx(
        (1.0 - np.sort(unit(queries) @ unit(reference[:3]).T, axis=1)).mean(axis=1), abs=GRID)


def clustered(rng, n: int, dim: int = 16) -> np.ndarray:
    direction = np.zeros(dim)
    direction[0] = 5.0
    return direction + rng.normal(size=(n, dim))


def test_a_shift_away_from_the_training_data_is_perfectly_detectable():
    rng = np.random.default_rng(0)
    train, clean = clustered(rng, 300), clustered(rng, 80)
    shifted = clean.copy()
    shifted[:, 0] = -5.0  # the other side of the origin: far from every training image
    task = create_task("detectability")
    task.fit(make_context(train, clean))
    value = task.evaluate(shifted.astype(np.float32))["ood_auroc"]
    assert value.value == 1.0 and value.ci_low == 1.0 and value.drop_p_value < 0.05
    assert task.evaluate(clean.astype(np.float32))["ood_auroc"].value == 0.5
    assert task.chance_levels()["ood_auroc"]["value"] == 0.5


def test_shifts_that_keep_the_distribution_are_undetectable():
    rng = np.random.default_rng(1)
    train, clean = clustered(rng, 300), clustered(rng, 200)
    task = create_task("detectability")
    task.fit(make_context(train, clean))
    # cosine ignores the scale; a power of two rescales exactly, so every score is the same bits
    scaled = task.evaluate((4.0 * clean).astype(np.float32))["ood_auroc"]
    assert scaled.value == 0.5
    redrawn = task.evaluate(clustered(rng, 200).astype(np.float32))["ood_auroc"]  # other images, same distribution
    assert redrawn.value == pytest.approx(0.5, abs=0.08) and redrawn.ci_low < 0.5 < redrawn.ci_high


def results_rows(metric_values: dict, task: str, metric: str) -> list[dict]:
    from robustpath.tasks.metrics import MetricValue
    from robustpath.results.table import metric_rows
    from robustpath.variants import CLEAN_VARIANT, Variant

    rows = []
    for (corruption, severity), (value, p_value) in metric_values.items():
        variant = CLEAN_VARIANT if corruption == "none" else Variant(corruption, severity, "pre")
        rows += metric_rows("run", "model", "data", task, variant,
                            {metric: MetricValue(value, value - 0.05, value + 0.05, 100, drop_p_value=p_value)})
    return rows


def test_silent_failures_flag_harmful_variants_that_are_hard_to_detect():
    from robustpath.results.table import build_results_table
    from robustpath.results.robustness import summarise_results

    harm = {("none", 0): (0.9, 1.0), ("blur", 1): (0.6, 0.001), ("blur", 2): (0.5, 0.001), ("hue", 1): (0.88, 0.4)}
    detection = {("none", 0): (0.5, 1.0), ("blur", 1): (0.6, 0.001), ("blur", 2): (0.95, 0.001), ("hue", 1): (0.52, 0.3)}
    table = build_results_table(results_rows(harm, "linear_probe", "accuracy")
                                + results_rows(detection, "detectability", "ood_auroc"))
    summary = summarise_results(table)
    silent = summary.silent_failures.set_index(["corruption", "severity"])
    assert silent.harmful.to_dict() == {("blur", 1): True, ("blur", 2): True, ("hue", 1): False}
    assert silent.silent_failure.to_dict() == {("blur", 1): True, ("blur", 2): False, ("hue", 1): False}
    assert silent.drop_from_clean[("blur", 1)] == pytest.approx(-0.3)
    assert "detectability" not in set(summary.conditions.task) | set(summary.ranking.task)
    assert isinstance(summary.tables()["silent_failures"], pd.DataFrame)
