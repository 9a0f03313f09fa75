"""Embedding drift: how far corruption moves each image's embedding (label-free).

Per test image: the cosine similarity between its clean and its corrupted
embedding (1 = unchanged; higher is better), both centred on the mean clean
training embedding.  Centring removes the component every image shares (large
in CLIP-style and in untrained encoders), which would otherwise make any
corruption look harmless.  Needs no labels, no classifier and no text encoder,
so it runs for every model; it is reported as the pseudo-task
``embedding_drift`` with the metric ``cosine_similarity``.

Test embeddings are converted to float64 in blocks of FLOAT64_ROWS rows; every
operation is per row (the same values for any blocking), and the norms of the
centred clean embeddings are computed once, in ``fit``, for every variant.
"""
from __future__ import annotations

import numpy as np

from robustpath.tasks.outcomes import Outcomes
from robustpath.tasks.base import OutcomeTask, TaskContext
from robustpath.tasks.chance import chance_record
from robustpath.tasks.registry import MetricInfo, TaskInfo, register_task


FLOAT64_ROWS = 8192  # test images converted to float64 at once


def clipped_norms(vectors: np.ndarray) -> np.ndarray:
    """(N, D) float64 → (N,) max(|row|, 1e-12)."""
    return np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)


def paired_cosine_similarity(a: np.ndarray, b: np.ndarray, a_norms: np.ndarray | None = None) -> np.ndarray:
    """(N, D), (N, D) → (N,) cosine similarity of each row of ``a`` with the same row of ``b``;
    ``a_norms``: clipped_norms(a) when already known."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = (clipped_norms(a) if a_norms is None else a_norms) * clipped_norms(b)
    return np.einsum("nd,nd->n", a, b) / norms


def centred_rows(embeddings: np.ndarray, rows: slice, centre: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of (N, D) float32 embeddings in float64, minus ``centre`` (D,) float64."""
    return embeddings[rows].astype(np.float64) - centre


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
        clean = context.clean_test_embeddings
        self._clean_norms = np.zeros(len(clean))
        for start in range(0, len(clean), FLOAT64_ROWS):
            rows = slice(start, start + FLOAT64_ROWS)
            self._clean_norms[rows] = clipped_norms(centred_rows(clean, rows, self._centre))

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        """(N, D) float32 corrupted test embeddings → per image the cosine with its clean embedding,
        both centred; in blocks of FLOAT64_ROWS rows."""
        clean = self.context.clean_test_embeddings
        if len(test_embeddings) != len(clean):
            raise ValueError(f"expected {len(clean)} test embeddings (one per clean one), got {len(test_embeddings)}")
        similarity = np.zeros(len(clean))
        for start in range(0, len(clean), FLOAT64_ROWS):
            rows = slice(start, start + FLOAT64_ROWS)
            similarity[rows] = paired_cosine_similarity(
                centred_rows(clean, rows, self._centre), centred_rows(test_embeddings, rows, self._centre),
                self._clean_norms[rows],
            )
        return Outcomes(per_sample={"cosine_similarity": similarity})

    def describe(self) -> dict:
        return {
            "measure": "per-image cosine similarity between clean and corrupted embeddings",
            "centred_on": "the mean clean training embedding",
            "labels": "not used",
        }
