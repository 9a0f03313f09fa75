"""How far a real group shift and each synthetic corruption move the embeddings.

Embeddings are centred on the mean clean training embedding c (as for embedding
drift: the component every image shares would otherwise make every shift look
small), and the distance of two embeddings u, v is the cosine distance
1 − cos(u − c, v − c) (0 = same direction, 2 = opposite).  On the test split:

- real shift between groups A and B (A before B in sorted order; the distance is
  symmetric): with pairs, the mean over the tissues present in both of the distance
  between a tissue's embedding in A and in B; without pairs, the mean over the
  classes present in both of the distance between A's and B's class centroids
  (mean embeddings; no interval: too few units to resample);
- synthetic shift (a corruption at a severity and stage): the mean over the test
  images of the distance between each image's clean and corrupted embedding (that
  is 1 − the embedding-drift cosine similarity); without pairs, the class-centroid
  distance between the clean and the corrupted test images, like for like.

The corruption whose distance is closest to a group shift's "moves the embeddings
about as far" as that shift (robustpath.tasks.group_summary).
"""
from __future__ import annotations

import numpy as np

from robustpath.tasks.chance import no_chance_level
from robustpath.tasks.embedding_drift import paired_cosine_similarity
from robustpath.tasks.registry import MetricInfo, TaskInfo, register_task

INFO = register_task(TaskInfo(
    name="shift_distance", order=140, group_shift=True,
    description="how far a group shift and each corruption move the embeddings (cosine distance)",
    metrics=(MetricInfo("embedding_distance", higher_is_better=False),), primary="embedding_distance",
    chance=no_chance_level,
    definitions=(
        "- **Embedding distance**: mean cosine distance 1 − cos between a tissue's embeddings in two groups, or between\n"
        "  an image's clean and corrupted embedding (centred on the mean clean training embedding); the closest\n"
        "  corruption moves the embeddings about as far as the group shift.",
    ),
))


def cosine_distance(a: np.ndarray, b: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(N, D), (N, D), (D,) → (N,) float64 1 − cos(a − centre, b − centre)."""
    return 1.0 - paired_cosine_similarity(a.astype(np.float64) - centre, b.astype(np.float64) - centre)


def class_centroids(embeddings: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """label → (D,) float64 mean embedding of its rows."""
    return {int(k): embeddings[labels == k].astype(np.float64).mean(axis=0) for k in np.unique(labels)}


def centroid_distances(first: np.ndarray, first_labels: np.ndarray, second: np.ndarray, second_labels: np.ndarray,
                       centre: np.ndarray) -> np.ndarray:
    """Cosine distance of the class centroids of two sets, per class present in both (ascending label)."""
    a, b = class_centroids(first, first_labels), class_centroids(second, second_labels)
    shared = sorted(set(a) & set(b))
    if not shared:
        return np.zeros(0)
    return cosine_distance(np.stack([a[k] for k in shared]), np.stack([b[k] for k in shared]), centre)


def group_pair_distances(
    embeddings: np.ndarray, labels: np.ndarray, groups: np.ndarray, pair_ids: np.ndarray | None,
    test: np.ndarray, centre: np.ndarray,
) -> dict[tuple[str, str], dict]:
    """(A, B), A < B → {"distances": per tissue (with pairs) or per class, "images": (n,) indices of the
    tissue's image in A (with pairs) or None} on the test images ``test`` (indices)."""
    groups = np.asarray(groups)
    names = sorted(set(groups[test].tolist()))
    results = {}
    for position, a in enumerate(names):
        for b in names[position + 1:]:
            in_a, in_b = test[groups[test] == a], test[groups[test] == b]
            if pair_ids is not None and any(pair_ids[in_a]):
                of_b = {pair: index for index, pair in zip(in_b.tolist(), pair_ids[in_b].tolist()) if pair}
                first = np.array([i for i in in_a if pair_ids[i] in of_b], dtype=np.int64)
                if not len(first):
                    continue
                second = np.array([of_b[pair_ids[i]] for i in first])
                results[(a, b)] = {"distances": cosine_distance(embeddings[first], embeddings[second], centre),
                                   "images": first}
            else:
                distances = centroid_distances(embeddings[in_a], labels[in_a], embeddings[in_b], labels[in_b], centre)
                if len(distances):
                    results[(a, b)] = {"distances": distances, "images": None}
    return results


def corruption_distances(clean: np.ndarray, corrupted: np.ndarray, labels: np.ndarray, centre: np.ndarray,
                         paired: bool) -> np.ndarray:
    """Clean and corrupted test embeddings (N, D) → per-image distances (paired) or per-class centroid distances."""
    if paired:
        return cosine_distance(clean, corrupted, centre)
    return centroid_distances(clean, labels, corrupted, labels, centre)
