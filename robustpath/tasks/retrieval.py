"""Image-to-image retrieval: corrupted test queries against the clean training gallery.

Neighbours are ranked by cosine similarity (ties broken by gallery order).
Per query: top-k accuracy is 1 when any of the k nearest gallery images has the
query's label; AP@k = (1 / min(k, R)) · Σ_{i≤k} precision@i · relevant_i, where R
is the number of gallery images with the query's label; mAP@k is its mean.
"""
from __future__ import annotations

import numpy as np

from robustpath.metrics import MetricValue, mean_metric
from robustpath.tasks.base import TaskContext

TOP_K = (1, 5)
MAP_K = 10


def nearest_neighbours(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """(Q, D), (G, D) → (Q, min(k, G)) gallery indices, most similar first."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    similarity = q.astype(np.float64) @ g.astype(np.float64).T
    order = np.argsort(-similarity, axis=1, kind="stable")
    return order[:, : min(k, gallery.shape[0])]


def average_precision_at_k(relevant: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """relevant: (Q, ≥k) bool ranking; n_relevant: (Q,) → (Q,) AP@k in [0, 1]."""
    hits = relevant[:, :k].astype(float)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    denominator = np.minimum(k, n_relevant).astype(float)
    return np.divide((precision * hits).sum(axis=1), denominator, out=np.zeros(len(hits)), where=denominator > 0)


class RetrievalTask:
    name = "retrieval"
    description = "cosine nearest neighbours of corrupted test queries in the clean training gallery"
    metrics = tuple(f"top{k}_accuracy" for k in TOP_K) + (f"map_at_{MAP_K}",)

    def __init__(self) -> None:
        self._context: TaskContext | None = None

    def fit(self, context: TaskContext) -> None:
        self._context = context

    def evaluate(self, test_embeddings: np.ndarray) -> dict[str, MetricValue]:
        context = self._context
        gallery_labels = context.train_labels
        depth = max(max(TOP_K), MAP_K)
        neighbours = nearest_neighbours(test_embeddings, context.train_embeddings, depth)
        relevant = gallery_labels[neighbours] == context.test_labels[:, None]
        n_relevant = (gallery_labels[None, :] == context.test_labels[:, None]).sum(axis=1)
        results = {
            f"top{k}_accuracy": mean_metric(relevant[:, :k].any(axis=1), seed=context.seed) for k in TOP_K
        }
        results[f"map_at_{MAP_K}"] = mean_metric(
            average_precision_at_k(relevant, n_relevant, MAP_K), seed=context.seed
        )
        return results

    def describe(self) -> dict:
        return {
            "queries": "test split (clean or corrupted)",
            "gallery": "clean training split",
            "similarity": "cosine",
            "top_k": list(TOP_K),
            "map_k": MAP_K,
        }
