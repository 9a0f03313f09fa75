"""Neighbour measures across groups: paired identity retrieval and the Robustness Index.

Both use the retrieval task's neighbour order (robustpath.tasks.retrieval.
nearest_neighbours: cosine similarity in float64, binned at 2^-20, ties by the lower
index), on the clean embeddings of every image (both splits: neither measure trains
anything).

Cross-group paired identity retrieval (plismbench, Filiot et al. 2025): for an
ordered pair of groups (A, B), every image of A whose pair_id is also in B queries
the gallery of all of B's images; hit@k = 1 when its own pair (the same tissue in
B) is among its k nearest neighbours.  top-k accuracy = mean hit@k over the queries;
the summary is the mean over the ordered pairs A ≠ B.  A model robust to the shift
from A to B finds the same tissue first (top-1 = 1), whatever its class.

Robustness Index (PathoROB, Kömen et al. 2025): for every image, among its k
nearest neighbours in the whole dataset (itself and images of its own pair_id left
out: the same tissue elsewhere is not a class neighbour), SO counts those of the
same class from another group and OS those of another class from the same group;
RI = Σ SO / (Σ SO + Σ OS) over all images.  RI near 1: the neighbourhoods are
organised by biology; near 0: by group (centre, scanner, stain).  k is RI_K (10).
"""
from __future__ import annotations

import numpy as np

from robustpath.tasks.chance import no_chance_level
from robustpath.tasks.registry import MetricInfo, TaskInfo, register_task
from robustpath.tasks.retrieval import nearest_neighbours

IDENTITY_K = (1, 10)
RI_K = 10

register_task(TaskInfo(
    name="cross_group_retrieval", order=110, group_shift=True,
    description="paired identity retrieval across groups: does an image of group A find its own tissue in group B",
    metrics=tuple(MetricInfo(f"top{k}_accuracy") for k in IDENTITY_K), primary="top1_accuracy", chance=no_chance_level,
    definitions=(
        "- **Cross-group identity retrieval** (top-1 / top-10): each image of group A whose tissue (pair_id) is also in\n"
        "  group B queries all of B's images; a hit when its own tissue is among the k nearest (cosine, the retrieval\n"
        "  task's neighbour order). 1 = the model finds the same tissue whatever the centre, scanner or stain.",
    ),
))
register_task(TaskInfo(
    name="robustness_index", order=120, group_shift=True,
    description="PathoROB's Robustness Index: do an image's neighbours share its class or its group",
    metrics=(MetricInfo("robustness_index"),), primary="robustness_index", chance=no_chance_level,
    definitions=(
        "- **Robustness Index** (PathoROB): among each image's 10 nearest neighbours (itself and its own tissue left\n"
        "  out), SO = same class from another group, OS = other class from the same group; RI = ΣSO / (ΣSO + ΣOS).\n"
        "  Near 1: neighbourhoods follow biology; near 0: they follow the group.",
    ),
))


def ordered_group_pairs(groups: np.ndarray) -> list[tuple[str, str]]:
    """Every ordered pair (A, B), A ≠ B, of the sorted group names."""
    names = sorted(set(np.asarray(groups).tolist()))
    return [(a, b) for a in names for b in names if a != b]


def cross_group_identity(
    embeddings: np.ndarray, groups: np.ndarray, pair_ids: np.ndarray, k_values: tuple[int, ...] = IDENTITY_K
) -> dict[tuple[str, str], dict]:
    """(N, D) clean embeddings, (N,) groups and pair ids → (A, B) → {"queries": (Q,) image indices in A,
    "rank_hits": {k: (Q,) float 0/1}} for every ordered pair with at least one shared pair_id."""
    groups, pair_ids = np.asarray(groups), np.asarray(pair_ids)
    largest = max(k_values)
    results = {}
    for a, b in ordered_group_pairs(groups):
        gallery = np.flatnonzero(groups == b)
        position_in_gallery = {pair: position for position, pair in enumerate(pair_ids[gallery].tolist()) if pair}
        queries = np.array([i for i in np.flatnonzero(groups == a) if pair_ids[i] in position_in_gallery], dtype=np.int64)
        if not len(queries):
            continue
        targets = np.array([position_in_gallery[pair_ids[i]] for i in queries])
        neighbours = nearest_neighbours(embeddings[queries], embeddings[gallery], largest)
        found = neighbours == targets[:, None]
        results[(a, b)] = {
            "queries": queries,
            "rank_hits": {k: found[:, :k].any(axis=1).astype(float) for k in k_values},
        }
    return results


def robustness_index_counts(
    embeddings: np.ndarray, labels: np.ndarray, groups: np.ndarray, pair_ids: np.ndarray | None, k: int = RI_K
) -> tuple[np.ndarray, np.ndarray]:
    """(N, D), (N,), (N,), (N,) or None → (SO, OS): (N,) int64 counts among each image's k nearest
    neighbours, the image itself and the images of its pair_id left out."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    pairs = np.asarray(pair_ids) if pair_ids is not None else np.full(len(labels), "")
    largest_pair = max([1, *np.unique(pairs[pairs != ""], return_counts=True)[1].tolist()])
    neighbours = nearest_neighbours(embeddings, embeddings, k + largest_pair)
    rows = np.arange(len(labels))[:, None]
    same_tissue = (neighbours == rows) | ((pairs[neighbours] == pairs[:, None]) & (pairs[:, None] != ""))
    kept = ~same_tissue & (np.cumsum(~same_tissue, axis=1) <= k)  # the first k others
    same_class = labels[neighbours] == labels[:, None]
    same_group = groups[neighbours] == groups[:, None]
    so = (kept & same_class & ~same_group).sum(axis=1)
    os_ = (kept & ~same_class & same_group).sum(axis=1)
    return so.astype(np.int64), os_.astype(np.int64)
