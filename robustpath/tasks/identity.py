"""Identity retrieval: does a corrupted test image still find its own clean copy? (label-free)

Per corrupted test image i (the query), the gallery is the clean test split; its
**identity rank** is the position of its own clean embedding among all N clean test
embeddings in the neighbour order of robustpath.tasks.retrieval (cosine similarity
in float64 from float64-normalised vectors, on the 2^-20 grid; ties broken by
ascending gallery index, i.e. test-split position), 1 = its own clean copy is the
nearest.  The rank is a function of the embeddings only, the same on every machine.

Metrics (means or median over the test images, bootstrap intervals and paired drops
as every task):

- ``identity_top1_accuracy`` / ``identity_top10_accuracy``: share of images whose
  rank is at most 1 / 10 (chance k/N: a uniformly random ranking, robustpath.tasks.chance);
- ``identity_median_rank`` (lower is better): median rank (chance (N + 1)/2).

Embedding drift (cosine similarity to the clean embedding) says how far an image
moved; identity retrieval says whether it moved *past its neighbours*: a model whose
embeddings all crowd together can keep a high drift similarity and still lose the
image among the others.  Needs no labels, no classifier, no text encoder.
"""
from __future__ import annotations

import numpy as np

from robustpath.tasks.outcomes import Outcomes
from robustpath.tasks.base import OutcomeTask, TaskContext
from robustpath.tasks.retrieval import neighbour_ranks
from robustpath.tasks.chance import chance_record
from robustpath.tasks.registry import MetricInfo, TaskInfo, register_task

IDENTITY_TOP_K = (1, 10)
RANK = "identity_rank"  # the per-sample values (predictions.csv column)
MEDIAN_RANK = "identity_median_rank"


INFO = register_task(TaskInfo(
    name="identity", order=60, default=True,
    description="rank of each corrupted test image's own clean embedding among all clean test embeddings",
    metrics=(*(MetricInfo(f"identity_top{k}_accuracy") for k in IDENTITY_TOP_K),
             MetricInfo(MEDIAN_RANK, higher_is_better=False)),
    primary="identity_top1_accuracy", chance=chance_record,
    definitions=(
        "- **identity** (no labels): the rank of each corrupted test image's own clean embedding among all N clean test\n"
        "  embeddings (cosine, retrieval's neighbour order: ties by test-split position); `identity_top1_accuracy` /\n"
        "  `identity_top10_accuracy` = share with rank ≤ 1 / ≤ 10 (chance k/N), `identity_median_rank` = median rank (lower\n"
        "  is better; chance (N + 1)/2). Per image in predictions.csv (`identity_rank`).",
    ),
    export_columns=(RANK,),
    run_note="Identity retrieval: rank of each corrupted test image's own clean embedding among all clean test "
             "embeddings (no labels).",
    factory="robustpath.tasks.identity:IdentityTask",
))

def identity_ranks(queries: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """(N, D) query embeddings, (N, D) clean embeddings of the same images → (N,) int64 rank of
    clean[i] among all rows of ``clean`` for query i (1 = nearest; retrieval's neighbour order)."""
    return neighbour_ranks(queries, clean, np.arange(len(queries)))


class IdentityTask(OutcomeTask):
    name = INFO.name
    description = INFO.description
    metrics = INFO.metric_names

    def _fit(self, context: TaskContext) -> None:
        if context.clean_test_embeddings is None:
            raise ValueError("identity retrieval needs the clean test embeddings (TaskContext.clean_test_embeddings)")

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        ranks = identity_ranks(test_embeddings, self.context.clean_test_embeddings)
        per_sample = {f"identity_top{k}_accuracy": (ranks <= k).astype(float) for k in IDENTITY_TOP_K}
        per_sample[RANK] = ranks.astype(float)
        return Outcomes(per_sample=per_sample)

    def describe(self) -> dict:
        return {
            "queries": "test split (clean or corrupted)",
            "gallery": "the clean test split (each query's own clean embedding among all of them)",
            "similarity": "cosine, float64, retrieval's neighbour order (2^-20 grid, ties by test-split position)",
            "top_k": list(IDENTITY_TOP_K),
            "labels": "not used",
        }
