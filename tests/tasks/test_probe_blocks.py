"""The linear probe predicts large test sets in blocks: the same outcomes as scikit-learn on the whole set."""
import numpy as np

from robustpath.tasks import TaskContext, linear_probe
from robustpath.tasks.linear_probe import LinearProbeTask


def test_block_predictions_equal_scikit_learn_on_the_whole_test_set(monkeypatch):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    labels = rng.integers(0, 3, 300)
    embeddings = (centres[labels] + rng.normal(0, 1.5, (300, 16))).astype(np.float32)
    context = TaskContext(train_embeddings=embeddings[:200], train_labels=labels[:200], test_labels=labels[200:],
                          class_names=("a", "b", "c"), seed=0, clean_test_embeddings=embeddings[200:])
    task = LinearProbeTask(regularisation=0.5)
    task.fit(context)
    monkeypatch.setattr(linear_probe, "PREDICT_ROWS", 7)
    outcome = task.outcomes(embeddings[200:])
    reference = task._pipeline  # the fitted scikit-learn pipeline, applied to all rows at once
    np.testing.assert_array_equal(outcome.predictions, reference.predict(embeddings[200:].astype(np.float64)))
    np.testing.assert_allclose(outcome.probabilities, reference.predict_proba(embeddings[200:].astype(np.float64)),
                               rtol=0, atol=1e-12)
    assert task.outcomes(embeddings[:0]).probabilities.shape == (0, 3)
