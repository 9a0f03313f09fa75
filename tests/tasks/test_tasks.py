"""Tasks against scikit-learn / scipy / numpy computed here, and a contract test over the registry."""
import json

import numpy as np
import pytest
from scipy.spatial.distance import cosine as cosine_distance
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from robustpath.errors import UsageError
from robustpath.tasks import TaskContext, create_task, create_tasks, list_tasks, parse_samples_per_class
from robustpath.tasks.retrieval import nearest_neighbours


def _blobs(rng, centres, n_per_class, spread=1.5):
    x = np.concatenate([c + rng.normal(0, spread, size=(n_per_class, centres.shape[1])) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(len(centres)), n_per_class)


@pytest.fixture(scope="module")
def context():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1.2, size=(3, 8))
    train_x, train_y = _blobs(rng, centres, 30)
    test_x, test_y = _blobs(rng, centres, 20)
    text = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    ctx = TaskContext(train_x, train_y, test_y, ("a", "b", "c"), seed=0, text_embeddings=text.astype(np.float32),
                      clean_test_embeddings=test_x)
    noisy = test_x + np.random.default_rng(2).normal(0, 2.5, test_x.shape).astype(np.float32)
    return ctx, test_x, noisy


def _reference_probe(train_x, train_y, c):
    """scikit-learn's optimum, converged far past the default tolerance (1e-4 stops 2e-3 short of it here)."""
    model = LogisticRegression(C=c, tol=1e-12, max_iter=100_000)
    return make_pipeline(StandardScaler(), model).fit(train_x.astype(np.float64), train_y)


def test_linear_probe_with_fixed_c_matches_sklearn(context):
    ctx, test_x, noisy = context
    task = create_task("linear_probe", regularisation=1.0)
    task.fit(ctx)
    reference = _reference_probe(ctx.train_embeddings, ctx.train_labels, 1.0)
    expected = accuracy_score(ctx.test_labels, reference.predict(test_x.astype(np.float64)))
    assert task.evaluate(test_x)["accuracy"].value == pytest.approx(expected)
    assert task.predict_proba(noisy) == pytest.approx(reference.predict_proba(noisy.astype(np.float64)), abs=1e-6)
    values = task.evaluate(noisy)
    flips = reference.predict(noisy.astype(np.float64)) != reference.predict(test_x.astype(np.float64))
    assert values["flip_rate"].value == pytest.approx(flips.mean())
    assert values["accuracy"].value < expected


def test_linear_probe_cross_validation_matches_a_hand_loop(context):
    """Noisy, high-dimensional blobs where the best C (0.1) is not scikit-learn's default."""
    from robustpath.tasks.linear_probe import C_GRID

    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1.0, size=(3, 30))
    train_x, train_y = _blobs(rng, centres, 20, spread=3.0)
    test_x, test_y = _blobs(rng, centres, 10, spread=3.0)
    ctx = TaskContext(train_x, train_y, test_y, ("a", "b", "c"), seed=0, clean_test_embeddings=test_x)

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    x, y = ctx.train_embeddings.astype(np.float64), ctx.train_labels
    scores = []
    with threadpool_limits(limits=1, user_api="blas"):  # speed only
        for c in C_GRID:
            losses = []
            for train, held_out in folds.split(x, y):
                model = _reference_probe(x[train], y[train], c)
                losses.append(-log_loss(y[held_out], model.predict_proba(x[held_out]), labels=[0, 1, 2]))
            scores.append(np.mean(losses))
    best = C_GRID[int(np.argmax(scores))]
    assert best != 1.0
    task = create_task("linear_probe")
    task.fit(ctx)
    assert task.describe()["C"] == best
    assert json.dumps(task.describe())  # recorded in run.json
    reference = _reference_probe(x, y, best)
    assert np.array_equal(task.predict(test_x), reference.predict(test_x.astype(np.float64)))


def test_data_scale_probe_uses_a_seeded_class_balanced_subsample(context):
    ctx, test_x, _ = context
    from robustpath.tasks.linear_probe import class_balanced_subsample

    rows = class_balanced_subsample(ctx.train_labels, 8, seed=0, repeat=1)
    assert np.bincount(ctx.train_labels[rows]).tolist() == [8, 8, 8]
    assert np.array_equal(rows, class_balanced_subsample(ctx.train_labels, 8, seed=0, repeat=1))
    assert not np.array_equal(rows, class_balanced_subsample(ctx.train_labels, 8, seed=0, repeat=2))
    tasks = create_tasks("linear_probe", samples_per_class=(8, 64), repeats=2)
    assert [t.row_fields for t in tasks] == [
        {"samples_per_class": 0, "repeat": 0}, {"samples_per_class": 8, "repeat": 0}, {"samples_per_class": 8, "repeat": 1},
        {"samples_per_class": 64, "repeat": 0}, {"samples_per_class": 64, "repeat": 1},
    ]
    assert len({t.key for t in tasks}) == 5
    tasks[1].fit(ctx)
    assert tasks[1].describe()["training_images_per_class"] == {"a": 8, "b": 8, "c": 8}
    tasks[3].fit(ctx)  # more than a class has: all of it
    assert tasks[3].describe()["training_images_per_class"] == {"a": 30, "b": 30, "c": 30}


def test_samples_per_class_parsing():
    assert parse_samples_per_class("16,64, 256") == (16, 64, 256)
    assert parse_samples_per_class(["16", "64,16"]) == (16, 64)
    with pytest.raises(UsageError, match="'x'"):
        parse_samples_per_class("16,x")


def _reference_retrieval(queries, query_labels, gallery, gallery_labels, k=10):
    """Loops over queries, cosine similarity written out."""
    hits = {1: [], 3: [], 5: []}
    ap, recall = [], []
    for q, label in zip(queries, query_labels):
        sims = np.array([q @ g / (np.linalg.norm(q) * np.linalg.norm(g)) for g in gallery])
        order = sorted(range(len(gallery)), key=lambda i: (-sims[i], i))
        rel = [gallery_labels[i] == label for i in order]
        for top in hits:
            hits[top].append(any(rel[:top]))
        found, total = 0, 0.0
        for rank, r in enumerate(rel[:k], start=1):
            if r:
                found += 1
                total += found / rank
        n_relevant = sum(gallery_labels == label)
        ap.append(total / min(k, n_relevant))
        recall.append(found / n_relevant)
    return {f"top{top}_accuracy": np.mean(v) for top, v in hits.items()} | {"map_at_10": np.mean(ap), "recall_at_10": np.mean(recall)}


def test_retrieval_matches_hand_computation_and_sklearn_knn(context):
    ctx, _, noisy = context
    task = create_task("retrieval")
    task.fit(ctx)
    values = task.evaluate(noisy)
    expected = _reference_retrieval(noisy, ctx.test_labels, ctx.train_embeddings, ctx.train_labels)
    for name, value in expected.items():
        assert values[name].value == pytest.approx(value), name
    knn = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute").fit(ctx.train_embeddings, ctx.train_labels)
    assert values["majority5_accuracy"].value == pytest.approx(accuracy_score(ctx.test_labels, knn.predict(noisy)))
    flips = knn.predict(noisy) != knn.predict(ctx.clean_test_embeddings)
    assert values["flip_rate"].value == pytest.approx(flips.mean())


def test_retrieval_with_a_corrupted_gallery_uses_the_given_training_embeddings(context):
    ctx, test_x, noisy = context
    task = create_tasks("retrieval", gallery="corrupted")[0]
    assert task.needs_corrupted_training
    task.fit(ctx)
    with pytest.raises(ValueError, match="training embeddings"):
        task.evaluate(noisy)
    corrupted_gallery = ctx.train_embeddings + np.random.default_rng(5).normal(0, 2.5, ctx.train_embeddings.shape)
    values = task.evaluate(noisy, corrupted_gallery.astype(np.float32))
    expected = _reference_retrieval(noisy, ctx.test_labels, corrupted_gallery, ctx.train_labels)
    assert values["top1_accuracy"].value == pytest.approx(expected["top1_accuracy"])
    assert task.evaluate(test_x, ctx.train_embeddings)["top1_accuracy"].drop_ci_high == 0
    with pytest.raises(UsageError, match="unknown gallery 'dirty'"):
        create_tasks("retrieval", gallery="dirty")


def test_average_precision_over_whole_gallery_equals_sklearn():
    from robustpath.tasks.retrieval import average_precision_at_k

    rng = np.random.default_rng(4)
    gallery, gallery_labels = rng.normal(size=(12, 5)), rng.integers(0, 2, 12)
    query, label = rng.normal(size=(1, 5)), 1
    order = nearest_neighbours(query, gallery, 12)[0]
    relevant = (gallery_labels[order] == label)[None, :]
    ours = average_precision_at_k(relevant, np.array([relevant.sum()]), 12)[0]
    scores = (gallery / np.linalg.norm(gallery, axis=1, keepdims=True)) @ (query[0] / np.linalg.norm(query[0]))
    assert ours == pytest.approx(average_precision_score(gallery_labels == label, scores))


def test_zeroshot_probabilities_are_softmax_of_100_cosine(context):
    ctx, _, noisy = context
    from robustpath.tasks.zeroshot import zero_shot_probabilities

    cosine = np.array([[1 - cosine_distance(x, t) for t in ctx.text_embeddings] for x in noisy])
    expected = softmax(100.0 * cosine, axis=1)
    # the task takes the class embeddings as unit vectors; float32 rounding of their norm × 100 ≈ 1e-5
    assert zero_shot_probabilities(noisy, ctx.text_embeddings) == pytest.approx(expected, abs=1e-5)
    task = create_task("zeroshot")
    task.fit(ctx)
    values = task.evaluate(noisy)
    assert values["accuracy"].value == pytest.approx(accuracy_score(ctx.test_labels, cosine.argmax(axis=1)))
    confidence, correct = expected.max(axis=1), expected.argmax(axis=1) == ctx.test_labels
    bins = np.clip(np.ceil(confidence * 15) - 1, 0, 14)
    ece = sum(abs(correct[bins == b].sum() - confidence[bins == b].sum()) for b in range(15)) / len(correct)
    assert values["expected_calibration_error"].value == pytest.approx(ece)


def test_embedding_drift_is_cosine_similarity_to_clean(context):
    ctx, test_x, noisy = context
    task = create_task("embedding_drift")
    task.fit(ctx)
    centre = ctx.train_embeddings.astype(np.float64).mean(axis=0)
    expected = np.mean([1 - cosine_distance(a - centre, b - centre) for a, b in zip(test_x, noisy)])
    assert task.evaluate(noisy)["cosine_similarity"].value == pytest.approx(expected)
    assert task.evaluate(test_x)["cosine_similarity"].value == pytest.approx(1.0)


@pytest.mark.parametrize("name", list_tasks())
def test_task_contract(name, context):
    """Every registered task: fit once, outcomes per variant, the declared metrics, paired drops."""
    ctx, test_x, noisy = context
    task = create_task(name)
    task.fit(ctx)
    outcomes = task.outcomes(noisy)
    assert outcomes.n == len(test_x)
    values = task.score(outcomes)
    assert tuple(values) == task.metrics
    for metric, value in values.items():
        assert np.isfinite([value.value, value.ci_low, value.ci_high, value.drop_ci_low, value.drop_ci_high]).all(), metric
        assert value.ci_low - 1e-12 <= value.value <= value.ci_high + 1e-12
        assert value.n == len(test_x)
    clean = task.evaluate(test_x)
    assert all(v.drop_ci_low == 0 and v.drop_ci_high == 0 for v in clean.values())
    assert task.key == name and task.row_fields == {"samples_per_class": 0, "repeat": 0}
    json.dumps(task.describe())
