"""Embedding drift and zero-shot convert test embeddings to float64 in row blocks: the same
outcomes as the definitions computed by hand with numpy on the whole test set at once."""
import numpy as np
import pytest

from robustpath.tasks import TaskContext, embedding_drift, zeroshot
from robustpath.tasks.embedding_drift import EmbeddingDriftTask
from robustpath.tasks.zeroshot import ZeroShotTask


def _context(rng, test: int = 53, dim: int = 24):
    labels = rng.integers(0, 3, 80 + test)
    embeddings = (rng.normal(size=(3, dim))[labels] + rng.normal(0, 1.0, (80 + test, dim)) + 4.0).astype(np.float32)
    embeddings[80] = 0.0  # a zero row: its norm is clipped at 1e-12
    text = rng.normal(size=(3, dim))
    text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
    return TaskContext(train_embeddings=embeddings[:80], train_labels=labels[:80], test_labels=labels[80:],
                       class_names=("a", "b", "c"), seed=0, text_embeddings=text,
                       clean_test_embeddings=embeddings[80:])


def _drift_by_hand(context, corrupted):
    centre = context.train_embeddings.astype(np.float64).sum(axis=0) / len(context.train_embeddings)
    a = context.clean_test_embeddings.astype(np.float64) - centre
    b = corrupted.astype(np.float64) - centre
    dots = np.array([sum(x * y for x, y in zip(row_a, row_b)) for row_a, row_b in zip(a, b)])
    norms = np.maximum(np.sqrt((a * a).sum(axis=1)), 1e-12) * np.maximum(np.sqrt((b * b).sum(axis=1)), 1e-12)
    return dots / norms


@pytest.mark.parametrize("rows", [1, 7, 8192])
def test_drift_in_blocks_equals_the_definition_by_hand(monkeypatch, rows):
    rng = np.random.default_rng(0)
    context = _context(rng)
    monkeypatch.setattr(embedding_drift, "FLOAT64_ROWS", rows)
    task = EmbeddingDriftTask()
    task.fit(context)
    corrupted = (context.clean_test_embeddings + rng.normal(0, 0.7, context.clean_test_embeddings.shape)).astype(np.float32)
    found = task.outcomes(corrupted).per_sample["cosine_similarity"]
    np.testing.assert_allclose(found, _drift_by_hand(context, corrupted), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="53 test embeddings"):
        task.outcomes(corrupted[:10])


def test_drift_is_the_same_for_every_block_size(monkeypatch):
    rng = np.random.default_rng(1)
    context = _context(rng, test=40)
    corrupted = (context.clean_test_embeddings * 1.3 + rng.normal(0, 0.5, (40, 24))).astype(np.float32)
    found = []
    for rows in (1, 6, 40):
        monkeypatch.setattr(embedding_drift, "FLOAT64_ROWS", rows)
        task = EmbeddingDriftTask()
        task.fit(context)
        found.append(task.outcomes(corrupted).per_sample["cosine_similarity"])
    assert np.array_equal(found[0], found[1]) and np.array_equal(found[0], found[2])  # per-row arithmetic only


@pytest.mark.parametrize("rows", [1, 7, 8192])
def test_zero_shot_in_blocks_equals_the_definition_by_hand(monkeypatch, rows):
    rng = np.random.default_rng(2)
    context = _context(rng)
    monkeypatch.setattr(zeroshot, "FLOAT64_ROWS", rows)
    task = ZeroShotTask()
    task.fit(context)
    images = context.clean_test_embeddings.astype(np.float64)
    text = context.text_embeddings.astype(np.float64)
    cosine = images @ text.T / np.maximum(np.sqrt((images ** 2).sum(axis=1)), 1e-12)[:, None]
    weights = np.exp(100.0 * cosine - (100.0 * cosine).max(axis=1, keepdims=True))
    outcome = task.outcomes(context.clean_test_embeddings)
    np.testing.assert_array_equal(outcome.predictions, cosine.argmax(axis=1))
    np.testing.assert_allclose(outcome.probabilities, weights / weights.sum(axis=1, keepdims=True), rtol=0, atol=1e-12)
    assert outcome.predictions.dtype == np.int64 and outcome.probabilities.shape == (53, 3)
    assert task.outcomes(context.clean_test_embeddings[:0]).probabilities.shape == (0, 3)
