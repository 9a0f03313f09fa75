"""Detectability: could a label-free monitor tell the corrupted images from clean ones?

A corruption that hurts a model is dangerous mostly when it is *silent*: nothing in
the embeddings says the input is unusual.  The out-of-distribution (OOD) score of a
test image is its k-NN distance to the clean training set (Sun et al., ICML 2022,
with cosine distance):

    ood_score = mean over the k = 10 nearest clean training embeddings of (1 − cosine similarity)

fitted on clean training embeddings only (no labels), with the neighbours and
similarities of robustpath.tasks.retrieval (float64, each similarity floored to the
2^-20 grid of its neighbour order, ties by training-split position: the same score
on every machine).  Per corruption × severity, ``ood_auroc`` is the AUROC of the
score separating the corrupted test images (positives) from the same images clean
(negatives): 1 = every corrupted image scores above every clean one (perfectly
detectable), 0.5 = indistinguishable (the clean row is 0.5 by construction), below
0.5 = corrupted images look *more* typical than clean ones.  Intervals: the shared
bootstrap resamples of the test images, the same images on both sides.
"""
from __future__ import annotations

import numpy as np

from robustpath.tasks.outcomes import Outcomes
from robustpath.tasks.base import OutcomeTask, TaskContext
from robustpath.tasks.retrieval import SIMILARITY_GRID_BITS, nearest_neighbour_bins
from robustpath.tasks.chance import chance_record
from robustpath.tasks.registry import MetricInfo, TaskInfo, register_task

KNN_K = 10
SCORE = "ood_score"  # the per-sample values (predictions.csv column)
AUROC = "ood_auroc"


def knn_distance(queries: np.ndarray, reference: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """(Q, D) queries, (G, D) reference embeddings → (Q,) float64 mean cosine distance of each query
    to its k' = min(k, G) nearest reference rows, each similarity floored to the 2^-20 grid.

    Computed from integer bins b (similarity ∈ [b, b + 1) · 2^-20): 1 − Σ b / (k' · 2^20), one
    rounding, so every machine gets the same bits.
    """
    _, bins = nearest_neighbour_bins(queries, reference, k)
    if bins.shape[1] == 0:
        return np.full(len(queries), np.nan)
    return 1.0 - bins.sum(axis=1).astype(np.float64) / (bins.shape[1] * 2.0 ** SIMILARITY_GRID_BITS)


INFO = register_task(TaskInfo(
    name="detectability", order=70, default=True, detection=True,
    description="AUROC of the k-NN distance to clean training embeddings, corrupted vs clean test images",
    metrics=(MetricInfo(AUROC),), primary=AUROC, chance=chance_record,
    definitions=(
        "- **detectability · ood_auroc** (no labels): AUROC of the k-NN out-of-distribution score (`ood_score` in\n"
        "  predictions.csv: mean cosine distance to the k = 10 nearest clean training embeddings) separating corrupted test\n"
        "  images from the same images clean; 0.5 = indistinguishable (the clean row), 1 = perfectly detectable. Left out of\n"
        "  the robustness summaries; a variant with a significant drop of the main task's primary metric and AUROC below 0.7\n"
        "  is flagged *harmful, hard to detect* (robustness_silent_failures.csv).",
    ),
    export_columns=(SCORE,),
    run_note="Detectability: AUROC of the mean cosine distance to the 10 nearest clean training embeddings, "
             "corrupted vs clean test images (no labels).",
    factory="robustpath.tasks.detectability:DetectabilityTask",
))

class DetectabilityTask(OutcomeTask):
    name = INFO.name
    description = INFO.description
    metrics = INFO.metric_names

    def _fit(self, context: TaskContext) -> None:
        if context.clean_test_embeddings is None:
            raise ValueError("detectability needs the clean test embeddings (TaskContext.clean_test_embeddings)")
        if len(context.train_embeddings) == 0:
            raise ValueError("detectability needs clean training embeddings")

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        return Outcomes(per_sample={SCORE: knn_distance(test_embeddings, self.context.train_embeddings)})

    def describe(self) -> dict:
        return {
            "score": f"mean cosine distance to the k = {KNN_K} nearest clean training embeddings",
            "k": KNN_K,
            "fitted_on": "clean training embeddings only (no labels)",
            "positives": "corrupted test images", "negatives": "the same test images, clean",
        }
