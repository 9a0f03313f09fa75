"""Image-to-image retrieval: test queries against the training split as gallery.

Neighbour order (the same on every machine, for every batch of queries): the
cosine similarity s = <q, g> / (|q| |g|) of a query q and a gallery image g is
computed in float64 from the (float32) embeddings and put in a bin of a fixed
grid, b = floor(s / h) with h = 2^-20 (about 9.5e-7).  Neighbours come in
descending bin, and within a bin in ascending gallery index (position in the
training split).  So a similarity at least h higher always ranks first, and
differences below h (float32 embeddings carry about 7 significant digits, so
such gaps are noise) are ties, broken by index; binning makes this tie rule
transitive, unlike "closer than a tolerance".  Where the fast (BLAS) similarity
lies within 2^-33 of a bin edge, far above its float64 rounding error (at most
about D * 2^-53 for D dimensions), the bin is taken from a fixed-order
evaluation instead (dimensions summed one after another, IEEE-754 float64
operations only), so the bins, and hence the order, do not depend on the BLAS
library, its thread count or which other queries share the batch.  The order
is defined per query row: computing queries in any blocks gives the same
neighbours.  Large galleries are first screened in float32 on the model's
device, and the rule above orders only the candidates that can enter the top k
(robustpath.tasks.neighbour_screen states why the result is the same).

Per query, with R = the number of gallery images of the query's class:

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

import threading

import numpy as np

from robustpath.tasks.outcomes import Outcomes
from robustpath.tasks.neighbour_screen import SCREEN_CANDIDATES, Candidates, ScreenedGallery, query_blocks
from robustpath.tasks.base import FLIP_RATE_DEFINITION, GALLERIES, OutcomeTask
from robustpath.tasks.chance import chance_record
from robustpath.tasks.registry import MetricInfo, TaskInfo, register_task
from robustpath.util.shared_work import map_blocks

TOP_K = (1, 3, 5)
VOTE_K = 5
RANK_K = 10


SIMILARITY_GRID_BITS = 20  # bin width h = 2^-20 of cosine similarity
ROUNDING_GUARD = 2.0 ** -33  # fast similarities this close to a bin edge are recomputed in a fixed order
_TOP_BIN = 2 ** SIMILARITY_GRID_BITS + 1  # above the bin of any similarity ≤ 1 (+ rounding)
_UNDEFINED_BIN = -(2 ** SIMILARITY_GRID_BITS) - 2  # NaN similarities (non-finite embeddings) rank last
_TINY_NORM = 1e-12
_BLOCK_ELEMENTS = 1 << 22  # similarities held at once (query rows × gallery size)
_CANDIDATE_ELEMENTS = 1 << 21  # float64 candidate coordinates held at once (queries × candidates × D)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(N, D) float64 → rows divided by their L2 norm (zero rows stay zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), _TINY_NORM)


def _fast_similarity(queries: np.ndarray, unit_gallery: np.ndarray) -> np.ndarray:
    """(B, D) float64 queries, (G, D) float64 unit rows → (B, G) float64 cosine (BLAS)."""
    return _unit_rows(queries) @ unit_gallery.T


def fixed_order_similarity(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine of row pairs, evaluated in one fixed order: the same bits on every IEEE-754 machine.

    queries, gallery: (P, D) float64 (pair i is queries[i], gallery[i]) → (P,) float64
    <q, g> / (max(|q|, 1e-12) · max(|g|, 1e-12)), every sum taken dimension by
    dimension with element-wise float64 operations (no BLAS, no reassociation).
    """
    dot, query_square, gallery_square = (np.zeros(len(queries)) for _ in range(3))
    for d in range(queries.shape[1]):
        q, g = queries[:, d], gallery[:, d]
        dot += q * g
        query_square += q * q
        gallery_square += g * g
    norms = np.maximum(np.sqrt(query_square), _TINY_NORM) * np.maximum(np.sqrt(gallery_square), _TINY_NORM)
    return dot / norms


def similarity_bins(similarity: np.ndarray) -> np.ndarray:
    """float64 cosine similarities → int64 bins floor(s · 2^20); NaN → below every bin."""
    finite = np.isfinite(similarity)
    scaled = np.where(finite, similarity, 0.0) * 2.0 ** SIMILARITY_GRID_BITS  # exact: a power of two
    return np.where(finite, np.floor(scaled), _UNDEFINED_BIN).astype(np.int64)


def _settle_near_edges(similarity: np.ndarray, bins: np.ndarray, queries: np.ndarray, gallery: np.ndarray,
                       consider: np.ndarray) -> np.ndarray:
    """Re-bin, from the fixed-order similarity, the ``consider`` entries whose fast similarity lies
    within ROUNDING_GUARD of a bin edge: (B, G) float64 similarity, (B, G) int64 bins → bins."""
    scaled = similarity * 2.0 ** SIMILARITY_GRID_BITS
    edge_distance = np.abs(scaled - np.round(scaled))
    doubtful = (edge_distance < ROUNDING_GUARD * 2.0 ** SIMILARITY_GRID_BITS) & consider
    rows, columns = np.nonzero(doubtful & np.isfinite(similarity))
    if len(rows):
        bins[rows, columns] = similarity_bins(fixed_order_similarity(queries[rows], gallery[columns]))
    return bins


def _order_keys(bins: np.ndarray) -> np.ndarray:
    """(B, G) int64 bins → (B, G) int64 keys, unique per row: ascending = higher bin, then lower index."""
    size = bins.shape[1]
    return (_TOP_BIN - bins) * size + np.arange(size)


def _block_neighbours(queries: np.ndarray, gallery: np.ndarray, unit_gallery: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, D), (G, D) float64 → (B, k) gallery indices in the documented order and (B, k) their bins."""
    similarity = _fast_similarity(queries, unit_gallery)
    bins = similarity_bins(similarity)
    size = bins.shape[1]
    # Only a bin at most 2 below the k-th largest can enter the top k once edge cases are settled.
    kth = np.partition(bins, size - k, axis=1)[:, size - k]
    bins = _settle_near_edges(similarity, bins, queries, gallery, bins >= kth[:, None] - 2)
    keys = _order_keys(bins)
    candidates = np.argpartition(keys, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(keys, candidates, axis=1), axis=1)
    neighbours = np.take_along_axis(candidates, order, axis=1)
    return neighbours, np.take_along_axis(bins, neighbours, axis=1)


def _exact_neighbours(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, D) float64 queries against the whole float64 gallery, in blocks of queries → (Q, k) neighbours, their bins."""
    neighbours = np.zeros((len(queries), k), dtype=np.int64)
    bins = np.zeros_like(neighbours)
    unit_gallery = _unit_rows(gallery)
    block = max(1, _BLOCK_ELEMENTS // len(gallery))
    for start in range(0, len(queries), block):
        rows = slice(start, start + block)
        neighbours[rows], bins[rows] = _block_neighbours(np.asarray(queries[rows], dtype=np.float64), gallery,
                                                         unit_gallery, k)
    return neighbours, bins


def _candidate_similarity(unit_queries: np.ndarray, screen: ScreenedGallery, found: Candidates) -> np.ndarray:
    """(B, D) float64 unit queries, their Candidates → (B, C) float64 cosine of each candidate within
    reach (NaN beyond it): <q/|q|, g> / |g| with the screen's gallery norms, in bounded blocks."""
    similarity = np.full(found.rows.shape, np.nan)
    dim = unit_queries.shape[1]
    for width in np.unique(found.reach):
        members = np.flatnonzero(found.reach == width)
        per_step = max(1, _CANDIDATE_ELEMENTS // (int(width) * dim))
        for begin in range(0, len(members), per_step):
            rows = members[begin : begin + per_step]
            candidates = found.rows[rows, :width]
            vectors = np.asarray(screen.gallery[candidates], dtype=np.float64)
            dots = np.einsum("bd,bcd->bc", unit_queries[rows], vectors)
            similarity[rows, :width] = dots / screen.norms[candidates]
    return similarity


def _ordered_candidates(queries: np.ndarray, unit_queries: np.ndarray, screen: ScreenedGallery,
                        found: Candidates, k: int) -> np.ndarray:
    """(B, D) float queries and their float64 unit rows, their Candidates (reach ≥ k) → (B, k) in the documented order.

    The same rule as _block_neighbours, applied to each query's candidates within
    reach only (the others cannot enter the top k: robustpath.tasks.neighbour_screen):
    any accurate float64 cosine, the fixed-order value within 2^-33 of a bin edge,
    keys (bin, gallery index).
    """
    gallery = screen.gallery
    similarity = _candidate_similarity(unit_queries, screen, found)
    within = np.arange(found.rows.shape[1]) < found.reach[:, None]
    bins = np.where(within, similarity_bins(similarity), _UNDEFINED_BIN - 1)  # beyond reach: last
    scaled = np.where(within, similarity, 0.5) * 2.0 ** SIMILARITY_GRID_BITS
    doubtful = (np.abs(scaled - np.round(scaled)) < ROUNDING_GUARD * 2.0 ** SIMILARITY_GRID_BITS) & within
    query_rows, columns = np.nonzero(doubtful)
    if len(query_rows):
        pairs = np.asarray(gallery[found.rows[query_rows, columns]], dtype=np.float64)
        exact_queries = np.asarray(queries[query_rows], dtype=np.float64)
        bins[query_rows, columns] = similarity_bins(fixed_order_similarity(exact_queries, pairs))
    keys = (_TOP_BIN - bins) * len(gallery) + found.rows
    order = np.argsort(keys, axis=1)[:, :k]
    return np.take_along_axis(found.rows, order, axis=1)


def _screened_neighbours(queries: np.ndarray, screen: ScreenedGallery, k: int, neighbours: np.ndarray) -> np.ndarray:
    """Fill ``neighbours`` for the queries the float32 screen settles; return the other query rows."""
    starts = query_blocks(len(queries), len(screen.gallery), queries.shape[1])

    def screen_block(start: int) -> np.ndarray:
        """Fill the rows of the block at ``start`` that the screen settles → its other rows."""
        block = queries[start : start + starts.step]
        unit = np.array(block, dtype=np.float64)  # a copy, divided in place: _unit_rows(block)
        unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), _TINY_NORM)
        found = screen.candidate_rows(unit, k, unit=True)
        settled = np.flatnonzero(found.sufficient)
        if len(settled) == len(block):  # the usual case: no copies of the block
            neighbours[start + settled] = _ordered_candidates(block, unit, screen, found, k)
        elif len(settled):
            chosen = Candidates(found.rows[settled], found.reach[settled], found.sufficient[settled])
            neighbours[start + settled] = _ordered_candidates(block[settled], unit[settled], screen, chosen, k)
        return start + np.flatnonzero(~found.sufficient)

    # blocks are independent (each fills its own rows): an idle scoring thread may take some
    unsettled = map_blocks(screen_block, starts)
    return np.concatenate([np.zeros(0, dtype=np.int64), *unsettled]).astype(np.int64)


def nearest_neighbours(
    queries: np.ndarray, gallery: np.ndarray, k: int, *, device="cpu", screen: ScreenedGallery | None = None
) -> np.ndarray:
    """(Q, D), (G, D) float embeddings → (Q, min(k, G)) int64 gallery indices, most similar first.

    The order is the module's: descending bin of cosine similarity (bin width
    2^-20), ties by ascending gallery index; a function of each query row and
    the gallery only (any query batching gives the same rows).  Large galleries
    are screened in float32 on ``device`` first (robustpath.tasks.neighbour_screen:
    the same order, proved there); ``screen``: that gallery prepared once, for
    many calls.
    """
    queries = np.asarray(queries)  # converted to float64 (exactly) block by block
    k = min(int(k), len(gallery))
    neighbours = np.zeros((len(queries), max(k, 0)), dtype=np.int64)
    if k <= 0 or len(queries) == 0:
        return neighbours
    rows = np.arange(len(queries))
    if k < SCREEN_CANDIDATES < len(gallery):
        screen = screen if screen is not None else ScreenedGallery(gallery, device)
        if screen.usable:
            rows = _screened_neighbours(queries, screen, k, neighbours)
    if len(rows):
        wide_queries = np.asarray(queries[rows], dtype=np.float64)
        neighbours[rows] = _exact_neighbours(wide_queries, np.asarray(gallery, dtype=np.float64), k)[0]
    return neighbours


def nearest_neighbour_bins(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, D), (G, D) float embeddings → (Q, k') int64 gallery indices, most similar first, and (Q, k')
    int64 similarity bins of those neighbours (k' = min(k, G); similarity ≈ bin · 2^-20, floored).

    The order is nearest_neighbours' (without the float32 screen: every query is
    compared with the whole gallery, in blocks); the bins are the same on every
    IEEE-754 machine.
    """
    k = min(int(k), len(gallery))
    if k <= 0 or len(queries) == 0:
        empty = np.zeros((len(queries), max(k, 0)), dtype=np.int64)
        return empty, empty.copy()
    return _exact_neighbours(np.asarray(queries), np.asarray(gallery, dtype=np.float64), k)


def _block_ranks(queries: np.ndarray, gallery: np.ndarray, unit_gallery: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(B, D), (G, D) float64, (B,) target indices → (B,) 1-based rank of each target in its query's order."""
    similarity = _fast_similarity(queries, unit_gallery)
    bins = similarity_bins(similarity)
    rows = np.arange(len(queries))
    # Only bins within 2 of the target's can change sides of it once edge cases are settled.
    near_target = np.abs(bins - bins[rows, targets][:, None]) <= 2
    near_target[rows, targets] = True
    keys = _order_keys(_settle_near_edges(similarity, bins, queries, gallery, near_target))
    return (keys < keys[rows, targets][:, None]).sum(axis=1) + 1


def neighbour_ranks(queries: np.ndarray, gallery: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(Q, D), (G, D) float embeddings, (Q,) int gallery indices → (Q,) int64 rank of ``targets[q]``
    among the gallery neighbours of query q in the module's order (1 = nearest).

    The same order as nearest_neighbours: ``neighbour_ranks(q, g, t)[i] - 1`` is the
    position of ``t[i]`` in ``nearest_neighbours(q, g, len(g))[i]``, computed without
    sorting the gallery (O(G) per query).
    """
    queries = np.asarray(queries)
    gallery = np.asarray(gallery, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) != len(queries) or (len(targets) and not (0 <= targets.min() and targets.max() < len(gallery))):
        raise ValueError("targets must hold one gallery index per query")
    ranks = np.zeros(len(queries), dtype=np.int64)
    if len(queries) == 0:
        return ranks
    unit_gallery = _unit_rows(gallery)
    block = max(1, _BLOCK_ELEMENTS // len(gallery))

    def rank_block(start: int) -> None:
        rows = slice(start, start + block)
        ranks[rows] = _block_ranks(np.asarray(queries[rows], dtype=np.float64), gallery, unit_gallery, targets[rows])

    map_blocks(rank_block, range(0, len(queries), block))  # independent blocks: an idle scoring thread may take some
    return ranks


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


INFO = register_task(TaskInfo(
    name="retrieval", order=30, default=True,
    description="cosine nearest neighbours of test queries in the training gallery",
    metrics=(
        *(MetricInfo(f"top{k}_accuracy") for k in TOP_K), MetricInfo(f"majority{VOTE_K}_accuracy"),
        MetricInfo(f"map_at_{RANK_K}"), MetricInfo(f"recall_at_{RANK_K}"), MetricInfo("flip_rate", higher_is_better=False),
    ),
    primary="top1_accuracy", chance=chance_record, definitions=(FLIP_RATE_DEFINITION,),
    export_columns=("predicted_label", "neighbours", "neighbour_labels"),
    run_note="Retrieval: corrupted test queries against the clean training gallery.",
    gallery_notes=(("corrupted", "Retrieval: corrupted test queries against the training gallery under the same corruption."),),
    factory="robustpath.tasks.retrieval:RetrievalTask",
))

class RetrievalTask(OutcomeTask):
    name = INFO.name
    description = INFO.description
    metrics = INFO.metric_names

    def __init__(self, gallery: str = "clean") -> None:
        super().__init__()
        if gallery not in GALLERIES:
            raise ValueError(f"gallery must be one of {GALLERIES}, got '{gallery}'")
        self.gallery = gallery
        self.needs_corrupted_training = gallery == "corrupted"
        self._screen: ScreenedGallery | None = None
        self._screen_lock = threading.Lock()  # variants may be scored in two threads (tasks.scoring)

    def _fit(self, context) -> None:
        self._screen = None  # the clean gallery is screened on first use

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        context = self.context
        if self.gallery == "corrupted":
            if train_embeddings is None:
                raise ValueError("gallery='corrupted' needs the variant's training embeddings (train_embeddings)")
            gallery = train_embeddings
        else:
            gallery = context.train_embeddings
        screen = None
        if self.gallery == "clean":  # prepared once, reused by every variant
            with self._screen_lock:
                if self._screen is None:
                    self._screen = ScreenedGallery(gallery, context.device)
                screen = self._screen
        gallery_labels = np.asarray(context.train_labels)
        query_labels = np.asarray(context.test_labels, dtype=np.int64)
        n_classes = len(context.class_names)
        neighbours = nearest_neighbours(
            test_embeddings, gallery, max(max(TOP_K), VOTE_K, RANK_K), device=context.device, screen=screen
        )
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
