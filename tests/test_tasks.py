"""Linear probe and retrieval against scikit-learn / numpy computed here."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score
from sklearn.preprocessing import StandardScaler

from robustpath.tasks import TaskContext, create_task
from robustpath.tasks.retrieval import nearest_neighbours


def _blobs(seed, n_per_class=30, dim=8, classes=3, spread=1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, size=(classes, dim))
    x = np.concatenate([centres[c] + rng.normal(0, spread, size=(n_per_class, dim)) for c in range(classes)])
    y = np.repeat(np.arange(classes), n_per_class)
    return x.astype(np.float32), y


@pytest.fixture()
def context():
    train_x, train_y = _blobs(0)
    test_x, test_y = _blobs(1)
    return TaskContext(train_x, train_y, test_y, ("a", "b", "c"), seed=0), test_x


def test_linear_probe_matches_sklearn(context):
    ctx, test_x = context
    task = create_task("linear_probe")
    task.fit(ctx)
    scaler = StandardScaler().fit(ctx.train_embeddings.astype(np.float64))
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(
        scaler.transform(ctx.train_embeddings.astype(np.float64)), ctx.train_labels
    )
    expected = accuracy_score(ctx.test_labels, reference.predict(scaler.transform(test_x.astype(np.float64))))
    assert task.evaluate(test_x)["accuracy"].value == pytest.approx(expected)
    noisy = test_x + np.random.default_rng(2).normal(0, 6, test_x.shape).astype(np.float32)
    assert task.evaluate(noisy)["accuracy"].value < expected


def _reference_retrieval(queries, query_labels, gallery, gallery_labels, k_map=10):
    """Loops over queries, cosine similarity written out."""
    top1, top5, ap = [], [], []
    for q, label in zip(queries, query_labels):
        sims = np.array([q @ g / (np.linalg.norm(q) * np.linalg.norm(g)) for g in gallery])
        order = sorted(range(len(gallery)), key=lambda i: (-sims[i], i))
        rel = [gallery_labels[i] == label for i in order]
        top1.append(rel[0])
        top5.append(any(rel[:5]))
        hits, total = 0, 0.0
        for rank, r in enumerate(rel[:k_map], start=1):
            if r:
                hits += 1
                total += hits / rank
        ap.append(total / min(k_map, sum(gallery_labels == label)))
    return np.mean(top1), np.mean(top5), np.mean(ap)


def test_retrieval_matches_hand_computation(context):
    ctx, test_x = context
    task = create_task("retrieval")
    task.fit(ctx)
    values = task.evaluate(test_x)
    top1, top5, map10 = _reference_retrieval(test_x, ctx.test_labels, ctx.train_embeddings, ctx.train_labels)
    assert values["top1_accuracy"].value == pytest.approx(top1)
    assert values["top5_accuracy"].value == pytest.approx(top5)
    assert values["map_at_10"].value == pytest.approx(map10)


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
