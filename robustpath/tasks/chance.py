"""Chance levels: what each metric scores when the model knows nothing about the image.

Normalised AUC rescales values to (value − chance) / (clean − chance), and the
near-chance check of robustpath.results.robustness compares the clean value with chance,
so each metric states the null it is measured against.  Every level is an exact
expectation for the run's own class counts (test split: the images classified or
the retrieval queries; training split: the retrieval gallery), averaged over the
test images; K = number of classes, p_c = share of test images in class c.

Classification (linear probe, zero-shot):
- accuracy: max_c p_c, the accuracy of always predicting the most frequent test
  class, the best any classifier that ignores the image can expect (1/K for
  balanced classes; uniform guessing scores 1/K, less under imbalance);
- balanced_accuracy: 1/K, exactly, for every prediction made without the image;
- macro_f1 / weighted_f1: uniform guessing, F1 of the expected confusion matrix
  (the large-sample limit): F1_c = 2 p_c / (1 + K p_c), averaged over classes
  unweighted / weighted by p_c (1/K for balanced classes).

Retrieval, under a uniformly random ranking of the gallery (G images, R of the
query's class, k' = min(k, G) neighbours):
- top{k}_accuracy: 1 − C(G − R, k') / C(G, k');
- majority{k}_accuracy: P(the majority label of a uniformly random k'-subset of
  the gallery is the query's class), ties to the smallest class index as in the
  task (multivariate hypergeometric, summed exactly);
- map_at_{k}: E[AP@k] = (1 / min(k, R)) · Σ_{i≤k'} (1/i) · (R/G + (i − 1) · R(R − 1) / (G(G − 1)));
- recall_at_{k}: k' / G (0 for a class absent from the gallery).

embedding_drift · cosine_similarity: 0 (unrelated embeddings).

Identity retrieval (gallery: the N clean test images, robustpath.tasks.identity), under
a uniformly random ranking: identity_top{k}_accuracy = min(k, N)/N;
identity_median_rank = (N + 1)/2 (the expected rank; lower is better, best 1).
Detectability · ood_auroc: 0.5 (a score that does not tell corrupted from clean).

Lower-is-better
metrics (flip_rate, expected_calibration_error) have no chance level here (None):
normalised AUC is not computed for them.

Beside chance, each metric states its best attainable value ("best"): 1, except
recall@k, which cannot exceed min(k', R) / R per query (mean over queries), e.g.
0.1 for k = 10 and 100 gallery images per class.

Summaries read the levels a run recorded in run.json ("tasks" → task → "chance");
for a run.json written before they were recorded, ``recorded_chance`` computes them
from its per-split class counts (the same values), and says so.
"""
from __future__ import annotations

import math
import re
from math import comb
from typing import Mapping, NamedTuple, Sequence

import numpy as np

DEFINITIONS = {
    "accuracy": "max_c p_c: always predicting the most frequent test class (best image-independent classifier)",
    "balanced_accuracy": "1/K: every image-independent prediction",
    "macro_f1": "uniform guessing: mean over classes of 2 p_c / (1 + K p_c)",
    "weighted_f1": "uniform guessing: sum over classes of p_c · 2 p_c / (1 + K p_c)",
    "top": "random gallery ranking: mean over queries of 1 - C(G-R, {k}) / C(G, {k})",
    "majority": "random gallery ranking: P(majority label of {k} random gallery images = query class), ties to the smallest class",
    "map": "random gallery ranking: mean over queries of (1/min({k},R)) sum_(i<={k}) (1/i)(R/G + (i-1) R(R-1) / (G(G-1)))",
    "recall": "random gallery ranking: min({k}, G) / G",
    "cosine_similarity": "0: unrelated embeddings",
    "identity_top": "random ranking of the N clean test images: min({k}, N) / N",
    "identity_median_rank": "random ranking of the N clean test images: expected rank (N + 1) / 2",
    "ood_auroc": "0.5: a score that does not tell corrupted from clean images",
}
_IDENTITY_TOP = re.compile(r"identity_top(?P<k>\d+)_accuracy")
LABEL_FREE_METRICS = frozenset({"cosine_similarity", "identity_median_rank", "ood_auroc"})  # + identity_top{k}_accuracy
_RETRIEVAL = re.compile(r"(?:top(?P<top>\d+)_accuracy|majority(?P<majority>\d+)_accuracy|map_at_(?P<map>\d+)|recall_at_(?P<recall>\d+))")


def _shares(test_counts: Sequence[int]) -> np.ndarray:
    counts = np.asarray(test_counts, dtype=float)
    return counts / counts.sum() if counts.sum() > 0 else counts


def uniform_guess_f1(test_counts: Sequence[int]) -> np.ndarray:
    """(K,) test images per class → (K,) F1 of each class under uniform guessing (large-sample limit)."""
    shares = _shares(test_counts)
    return 2 * shares / (1 + len(shares) * shares)


def top_k_hit_chance(gallery_size: int, relevant: int, k: int) -> float:
    """P(at least one of k' = min(k, G) uniformly random gallery images is relevant) = 1 − C(G−R, k')/C(G, k')."""
    k = min(k, gallery_size)
    if k <= 0:
        return 0.0
    miss = 1.0
    for i in range(k):
        miss *= max(gallery_size - relevant - i, 0) / (gallery_size - i)
    return 1.0 - miss


def average_precision_chance(gallery_size: int, relevant: int, k: int) -> float:
    """E[AP@k] under a random ranking (see the module docstring); 0 when R = 0."""
    if relevant <= 0 or gallery_size <= 0:
        return 0.0
    pair = relevant * (relevant - 1) / (gallery_size * (gallery_size - 1)) if gallery_size > 1 else 0.0
    ranks = np.arange(1, min(k, gallery_size) + 1)
    return float(np.sum((relevant / gallery_size + (ranks - 1) * pair) / ranks) / min(k, relevant))


def recall_chance(gallery_size: int, relevant: int, k: int) -> float:
    """E[recall@k] under a random ranking: min(k, G)/G (0 when R = 0)."""
    return min(k, gallery_size) / gallery_size if relevant > 0 and gallery_size > 0 else 0.0


def _capped_polynomial(count: int, cap: int, degree: int) -> np.ndarray:
    """Σ_{n=0}^{min(cap, degree)} C(count, n) x^n as a (degree + 1,) float array."""
    terms = np.zeros(degree + 1)
    for n in range(0, min(cap, degree) + 1):
        terms[n] = float(comb(count, n))
    return terms


def _product(polynomials: list[np.ndarray], degree: int) -> list[np.ndarray]:
    """Running products of ``polynomials`` truncated at ``degree``: [1, p0, p0·p1, …]."""
    running = [np.eye(1, degree + 1)[0]]
    for polynomial in polynomials:
        running.append(np.convolve(running[-1], polynomial)[: degree + 1])
    return running


def majority_vote_distribution(gallery_counts: Sequence[int], k: int) -> np.ndarray:
    """(K,) gallery images per class → (K,) P(majority vote of a random k'-subset = class c).

    Class c wins with m votes when every class before it has fewer than m and every
    class after it at most m (ties → the smallest index); the ways to draw the other
    k' − m votes are the coefficient of x^(k'−m) in a product of capped binomial
    polynomials, taken from prefix and suffix products.
    """
    counts = [int(c) for c in gallery_counts]
    k = min(k, sum(counts))
    winning = np.zeros(len(counts))
    if k <= 0:
        return winning
    for m in range(1, k + 1):
        before = _product([_capped_polynomial(c, m - 1, k) for c in counts], k)
        after = _product([_capped_polynomial(c, m, k) for c in reversed(counts)], k)
        for c, count in enumerate(counts):
            others = np.convolve(before[c], after[len(counts) - 1 - c])[: k + 1]
            winning[c] += float(comb(count, m)) * others[k - m]
    return winning / float(comb(sum(counts), k))


def retrieval_chance(metric: str, test_counts: Sequence[int], gallery_counts: Sequence[int]) -> float | None:
    """Chance level of a retrieval metric (None for one this module does not know)."""
    match = _RETRIEVAL.fullmatch(metric)
    if match is None:
        return None
    shares = _shares(test_counts)
    size = int(np.sum(gallery_counts))
    if match["majority"]:
        return float(shares @ majority_vote_distribution(gallery_counts, int(match["majority"])))
    rule, k = next((name, int(value)) for name, value in match.groupdict().items() if value)
    per_class = {"top": top_k_hit_chance, "map": average_precision_chance, "recall": recall_chance}[rule]
    return float(sum(share * per_class(size, int(relevant), k) for share, relevant in zip(shares, gallery_counts)))


def classification_chance(metric: str, test_counts: Sequence[int]) -> float | None:
    """Chance level of a classification metric over K = len(test_counts) classes (None if unknown)."""
    shares = _shares(test_counts)
    if not len(shares) or shares.sum() == 0:
        return None
    if metric == "accuracy":
        return float(shares.max())
    if metric == "balanced_accuracy":
        return 1.0 / len(shares)
    if metric == "macro_f1":
        return float(uniform_guess_f1(test_counts).mean())
    if metric == "weighted_f1":
        return float(shares @ uniform_guess_f1(test_counts))
    return None


def label_free_chance(metric: str, test_images: int) -> float | None:
    """Chance level of a label-free metric (embedding drift, identity retrieval over N = ``test_images``
    clean test images, detectability); None for any other metric."""
    match = _IDENTITY_TOP.fullmatch(metric)
    if match is not None:
        return min(int(match["k"]), test_images) / test_images if test_images > 0 else None
    if metric == "identity_median_rank":
        return (test_images + 1) / 2.0 if test_images > 0 else None
    return {"cosine_similarity": 0.0, "ood_auroc": 0.5}.get(metric)


def chance_level(metric: str, test_counts: Sequence[int], gallery_counts: Sequence[int] | None = None) -> float | None:
    """The chance level of ``metric`` for these class counts (see the module docstring); None when undefined."""
    label_free = label_free_chance(metric, int(np.sum(test_counts)))
    if label_free is not None or metric in LABEL_FREE_METRICS:
        return label_free
    if gallery_counts is not None and _RETRIEVAL.fullmatch(metric):
        return retrieval_chance(metric, test_counts, gallery_counts)
    return classification_chance(metric, test_counts)


def best_value(metric: str, test_counts: Sequence[int], gallery_counts: Sequence[int] | None = None) -> float:
    """The highest value ``metric`` can take on these counts: mean over queries of min(k', R)/R for
    recall@k (with a gallery), else 1."""
    match = _RETRIEVAL.fullmatch(metric)
    if match is None or not match["recall"] or gallery_counts is None:
        return 1.0
    k = min(int(match["recall"]), int(np.sum(gallery_counts)))
    per_class = [min(k, int(r)) / int(r) if int(r) > 0 else 0.0 for r in gallery_counts]
    return float(_shares(test_counts) @ np.asarray(per_class, dtype=float))


def chance_definition(metric: str) -> str:
    """One line: the null model and formula behind chance_level(metric, …)."""
    match = _RETRIEVAL.fullmatch(metric)
    if match is not None:
        rule = next(name for name, value in match.groupdict().items() if value)
        return DEFINITIONS[rule].format(k=match[rule])
    match = _IDENTITY_TOP.fullmatch(metric)
    if match is not None:
        return DEFINITIONS["identity_top"].format(k=match["k"])
    return DEFINITIONS.get(metric, "none: no chance level for this metric")


def chance_record(metrics: Sequence[str], test_counts: Sequence[int], gallery_counts: Sequence[int] | None = None) -> dict:
    """metric → {"value": chance level or None, "best": best attainable value, "definition": …},
    as run.json stores it per task."""
    return {
        metric: {
            "value": chance_level(metric, test_counts, gallery_counts),
            "best": best_value(metric, test_counts, gallery_counts), "definition": chance_definition(metric),
        }
        for metric in metrics
    }


def no_chance_level(metrics: Sequence[str], test_counts: Sequence[int] | None = None,
                    gallery_counts: Sequence[int] | None = None) -> dict:
    """The chance rule of measures without a chance level (the group-shift tasks): every metric
    → {"value": None, "best": 1, "definition": "none: …"}, in chance_record's form."""
    return {metric: {"value": None, "best": 1.0, "definition": "none: no chance level for this metric"}
            for metric in metrics}


RECORDED = "run"
FROM_COUNTS = "class counts in run.json"
BALANCED_ASSUMED = "class names only: balanced classes assumed"
UNKNOWN = "unknown"


class ChanceLevel(NamedTuple):
    """A metric's chance level and best attainable value in one run, and where they came from."""

    value: float
    best: float
    source: str


def _lookup(mapping, *keys):
    """mapping[key0][key1]…, or None where a step is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _split_counts(dataset: Mapping, classes: list) -> tuple[list[int], list[int]] | None:
    counts = dataset.get("counts")
    if not isinstance(counts, Mapping) or not all(isinstance(counts.get(s), Mapping) for s in ("test", "train")):
        return None
    values = [[_finite(counts[split].get(name, 0)) for name in classes] for split in ("test", "train")]
    if any(v is None or v < 0 for split in values for v in split):
        return None
    return [int(v) for v in values[0]], [int(v) for v in values[1]]


def _stored_level(entry, best: float) -> ChanceLevel | None:
    """The chance level a run stored ({"value", "best", …}), None when the entry is missing or malformed."""
    if not isinstance(entry, Mapping) or "value" not in entry:
        return None
    stored_best = _finite(entry.get("best"))
    best = best if stored_best is None else stored_best
    if entry["value"] is None:
        return ChanceLevel(math.nan, best, RECORDED)
    value = _finite(entry["value"])
    return None if value is None else ChanceLevel(value, best, RECORDED)


def recorded_chance(record: Mapping, task: str, metric: str) -> ChanceLevel:
    """Chance level and best value of ``metric`` of ``task`` in a run.json record.

    Sources: RECORDED (the run stored it), FROM_COUNTS (older run.json: computed from its
    per-split class counts, the same value), BALANCED_ASSUMED (only the class names are
    known: classification metrics as if the test classes were balanced; retrieval
    metrics unknown), UNKNOWN (NaN).  Malformed entries count as missing.
    """
    dataset = _lookup(record, "dataset") or {}
    classes = _lookup(dataset, "classes")
    classes = [str(name) for name in classes] if isinstance(classes, list) else []
    counts = _split_counts(dataset, classes) if classes else None
    best = best_value(metric, *counts) if counts is not None else 1.0
    stored = _stored_level(_lookup(record, "tasks", task, "chance", metric), best)
    if stored is not None:
        return stored
    if counts is not None:
        value = chance_level(metric, *counts)
        return ChanceLevel(math.nan if value is None else value, best, FROM_COUNTS)
    if classes and not _RETRIEVAL.fullmatch(metric):
        value = chance_level(metric, [1] * len(classes))
        return ChanceLevel(math.nan if value is None else value, best, BALANCED_ASSUMED)
    return ChanceLevel(0.0, 1.0, RECORDED) if metric == "cosine_similarity" else ChanceLevel(math.nan, 1.0, UNKNOWN)
