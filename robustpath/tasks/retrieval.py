"""Image-to-image retrieval: test queries against the training split as gallery.

Neighbours are ranked by cosine similarity (ties broken by gallery order).  Per
query, with R = the number of gallery images of the query's class:

- top-k accuracy (k = 1, 3, 5): 1 when any of the k nearest gallery images has
  the query's label (what deep-metric-learning papers call "Recall@K");
- majority-5 accuracy: the most frequent label among the 5 nearest neighbours
  (ties → the smallest class index, as scikit-learn's KNeighborsClassifier) is
  right; this label is also the prediction behind ``flip_rate``;
- AP@k = (1 / min(k, R)) · Σ_{i≤k} precision@i · relevant_i; mAP@k is its mean;
- recall@k = (relevant images among the k nearest) / R (the information-retrieval
  definition; it is at most k / R).

Gallery: by default the clean training embeddings (``gallery="clean"``); with
``gallery="corrupted"`` the gallery is the training split under the same
corruption as the queries, which the caller passes as ``train_embeddings``.
"""
from __future__ import annotations

import numpy as np

from robustpath.outcomes import Outcomes
from robustpath.tasks.base import GALLERIES, OutcomeTask

TOP_K = (1, 3, 5)
VOTE_K = 5
RANK_K = 10


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


def recall_at_k(relevant: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """relevant: (Q, ≥k) bool ranking; n_relevant: (Q,) → (Q,) |relevant in top k| / R."""
    found = relevant[:, :k].sum(axis=1).astype(float)
    return np.divide(found, n_relevant, out=np.zeros(len(found)), where=n_relevant > 0)


def majority_vote(neighbour_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(Q, k) int labels of the nearest neighbours → (Q,) most frequent label (ties → smallest)."""
    votes = (neighbour_labels[:, :, None] == np.arange(n_classes)[None, None, :]).sum(axis=1)
    return votes.argmax(axis=1)


class RetrievalTask(OutcomeTask):
    name = "retrieval"
    description = "cosine nearest neighbours of test queries in the training gallery"
    metrics = (
        *(f"top{k}_accuracy" for k in TOP_K), f"majority{VOTE_K}_accuracy",
        f"map_at_{RANK_K}", f"recall_at_{RANK_K}", "flip_rate",
    )

    def __init__(self, gallery: str = "clean") -> None:
        super().__init__()
        if gallery not in GALLERIES:
            raise ValueError(f"gallery must be one of {GALLERIES}, got '{gallery}'")
        self.gallery = gallery
        self.needs_corrupted_training = gallery == "corrupted"

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        context = self.context
        if self.gallery == "corrupted":
            if train_embeddings is None:
                raise ValueError("gallery='corrupted' needs the variant's training embeddings (train_embeddings)")
            gallery = train_embeddings
        else:
            gallery = context.train_embeddings
        gallery_labels = np.asarray(context.train_labels)
        query_labels = np.asarray(context.test_labels, dtype=np.int64)
        n_classes = len(context.class_names)
        neighbours = nearest_neighbours(test_embeddings, gallery, max(max(TOP_K), VOTE_K, RANK_K))
        neighbour_labels = gallery_labels[neighbours]
        relevant = neighbour_labels == query_labels[:, None]
        n_relevant = np.bincount(gallery_labels, minlength=n_classes)[query_labels]
        predictions = majority_vote(neighbour_labels[:, :VOTE_K], n_classes)
        per_sample = {f"top{k}_accuracy": relevant[:, :k].any(axis=1).astype(float) for k in TOP_K}
        per_sample[f"majority{VOTE_K}_accuracy"] = (predictions == query_labels).astype(float)
        per_sample[f"map_at_{RANK_K}"] = average_precision_at_k(relevant, n_relevant, RANK_K)
        per_sample[f"recall_at_{RANK_K}"] = recall_at_k(relevant, n_relevant, RANK_K)
        return Outcomes(
            n_classes=n_classes, labels=query_labels, predictions=predictions, per_sample=per_sample,
            neighbours=neighbours.astype(np.int64),
        )

    def describe(self) -> dict:
        return {
            "queries": "test split (clean or corrupted)",
            "gallery": f"{'clean' if self.gallery == 'clean' else 'equally corrupted'} training split",
            "similarity": "cosine",
            "top_k": list(TOP_K),
            "majority_vote_k": VOTE_K,
            "map_k": RANK_K,
            "recall_k": RANK_K,
        }
