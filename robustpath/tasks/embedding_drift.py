"""Embedding drift: how far corruption moves each image's embedding (label-free).

Per test image: the cosine similarity between its clean and its corrupted
embedding (1 = unchanged; higher is better), both centred on the mean clean
training embedding.  Centring removes the component every image shares (large
in CLIP-style and in untrained encoders), which would otherwise make any
corruption look harmless.  Needs no labels, no classifier and no text encoder,
so it runs for every model; it is reported as the pseudo-task
``embedding_drift`` with the metric ``cosine_similarity``.
"""
from __future__ import annotations

import numpy as np

from robustpath.tasks.outcomes import Outcomes
from robustpath.tasks.base import OutcomeTask, TaskContext
from robustpath.tasks.chance import chance_record
from robustpath.tasks.registry import MetricInfo, TaskInfo, register_task


def paired_cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (N, D) → (N,) cosine similarity of each row of ``a`` with the same row of ``b``."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    norms = np.maximum(np.linalg.norm(a, axis=1), 1e-12) * np.maximum(np.linalg.norm(b, axis=1), 1e-12)
    return np.einsum("nd,nd->n", a, b) / norms


INFO = register_task(TaskInfo(
    name="embedding_drift", order=50, default=True,
    description="cosine similarity of each image's corrupted embedding with its clean embedding",
    metrics=(MetricInfo("cosine_similarity"),), primary="cosine_similarity", chance=chance_record,
    definitions=(
        "- **embedding_drift · cosine_similarity**: per-image cosine similarity of the corrupted and the clean embedding,\n"
        "  both centred on the mean clean training embedding.",
    ),
    export_columns=("cosine_similarity",),
    run_note="Embedding drift: cosine similarity of each test image's corrupted and clean embedding (no labels).",
    factory="robustpath.tasks.embedding_drift:EmbeddingDriftTask",
))

class EmbeddingDriftTask(OutcomeTask):
    name = INFO.name
    description = INFO.description
    metrics = INFO.metric_names

    def _fit(self, context: TaskContext) -> None:
        if context.clean_test_embeddings is None:
            raise ValueError("embedding drift needs the clean test embeddings (TaskContext.clean_test_embeddings)")
        self._centre = context.train_embeddings.astype(np.float64).mean(axis=0)

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        clean = self.context.clean_test_embeddings.astype(np.float64) - self._centre
        similarity = paired_cosine_similarity(clean, test_embeddings.astype(np.float64) - self._centre)
        return Outcomes(per_sample={"cosine_similarity": similarity})

    def describe(self) -> dict:
        return {
            "measure": "per-image cosine similarity between clean and corrupted embeddings",
            "centred_on": "the mean clean training embedding",
            "labels": "not used",
        }
