"""Linear probe: logistic regression fitted once on clean training embeddings.

The probe never sees corrupted images: it is trained on the clean training
split and scored on each variant of the test split, so a drop measures how far
corruption moves embeddings away from what a clean-trained classifier expects.
"""
from __future__ import annotations

import numpy as np

from robustpath.metrics import MetricValue, classification_metrics
from robustpath.tasks.base import TaskContext

DEFAULT_C = 1.0
MAX_ITER = 2000


class LinearProbeTask:
    name = "linear_probe"
    description = "logistic regression on standardised clean training embeddings"
    metrics = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")

    def __init__(self, regularisation: float = DEFAULT_C) -> None:
        self.regularisation = regularisation
        self._pipeline = None
        self._context: TaskContext | None = None

    def fit(self, context: TaskContext) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self._context = context
        self._pipeline = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=self.regularisation, max_iter=MAX_ITER, random_state=context.seed),
        )
        self._pipeline.fit(context.train_embeddings.astype(np.float64), context.train_labels)

    def predict(self, test_embeddings: np.ndarray) -> np.ndarray:
        """(N_test, D) → (N_test,) predicted class indices."""
        if self._pipeline is None:
            raise RuntimeError("fit() must be called before predict()")
        return self._pipeline.predict(test_embeddings.astype(np.float64))

    def evaluate(self, test_embeddings: np.ndarray) -> dict[str, MetricValue]:
        context = self._context
        predictions = self.predict(test_embeddings)
        return classification_metrics(
            context.test_labels, predictions, len(context.class_names), seed=context.seed
        )

    def describe(self) -> dict:
        return {
            "classifier": "sklearn LogisticRegression (lbfgs) after StandardScaler",
            "C": self.regularisation,
            "max_iter": MAX_ITER,
            "trained_on": "clean training embeddings",
        }
