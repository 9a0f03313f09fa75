"""Fine-tuning: the fine-tuned model's own linear head, scored like the linear probe.

The encoder and its head were fine-tuned together on the clean training images
(``robustpath finetune``; robustpath.models.finetune): nothing is fitted here.  The run's
model is a fine-tuned set (``finetuned:DIR``, robustpath.models.finetuned) whose
``classifier_heads`` reach the task through ``TaskContext.classifier_heads``; this task
applies the head of its setting (all training images, or N per class, repeat r: the
same keys as the linear probe's data-scale sweep) to each variant's embeddings:
logits = embeddings · Wᵀ + b in float64, probabilities = softmax, prediction = argmax
(ties → the lower class index).  Metrics, intervals and paired drops are the probe's.
"""
from __future__ import annotations

import numpy as np

from robustpath.errors import UsageError
from robustpath.tasks.outcomes import Outcomes
from robustpath.tasks.base import CLASSIFICATION_DEFINITIONS, CLASSIFICATION_METRICS, OutcomeTask, TaskContext
from robustpath.tasks.chance import chance_record
from robustpath.tasks.registry import TaskInfo, register_task


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, K) float64 logits → (N, K) probabilities (max-shifted)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


INFO = register_task(TaskInfo(
    name="fine_tune", order=20,
    description="the fine-tuned encoder's own linear head (encoder + head trained on clean training images)",
    metrics=CLASSIFICATION_METRICS, primary="accuracy", chance=chance_record,
    definitions=CLASSIFICATION_DEFINITIONS, export_columns=("predicted_label", "p_{class}"),
    run_note="Fine-tuning: the encoder and a linear head were trained together on clean training images; "
    "the fine-tuned head is scored on corrupted test images.",
    factory="robustpath.tasks.fine_tune:FineTuneTask",
))

class FineTuneTask(OutcomeTask):
    name = INFO.name
    description = INFO.description
    metrics = INFO.metric_names

    def __init__(self, samples_per_class: int = 0, repeat: int = 0) -> None:
        super().__init__()
        self.samples_per_class = int(samples_per_class)
        self.repeat = int(repeat)
        self.head = None

    def _fit(self, context: TaskContext) -> None:
        heads = context.classifier_heads or {}
        if self.key not in heads:
            setting = "all training images" if not self.samples_per_class else (
                f"{self.samples_per_class} per class, repeat {self.repeat}")
            known = ", ".join(heads) or "none (not a fine-tuned model)"
            raise UsageError(f"task fine_tune: the model has no head fine-tuned on {setting}; its heads: {known}. "
                             "Fine-tune with `robustpath finetune` and the same --samples-per-class / --repeats")
        self.head = heads[self.key]
        if self.head.weight.shape[0] != len(context.class_names):
            raise UsageError(f"task fine_tune: the head has {self.head.weight.shape[0]} classes, the data "
                             f"{len(context.class_names)}")

    def predict_proba(self, test_embeddings: np.ndarray) -> np.ndarray:
        """(N_test, total D) → (N_test, K) softmax of the head's logits."""
        return softmax(self.head.logits(test_embeddings))

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        probabilities = self.predict_proba(test_embeddings)
        return Outcomes(
            n_classes=len(self.context.class_names),
            labels=np.asarray(self.context.test_labels, dtype=np.int64),
            predictions=np.argmax(probabilities, axis=1).astype(np.int64),
            probabilities=probabilities,
        )

    def describe(self) -> dict:
        return {"classifier": "the fine-tuned linear head (softmax of embeddings · Wᵀ + b)",
                "samples_per_class": self.samples_per_class or "all", "repeat": self.repeat,
                "trained_on": "clean training images (encoder and head together)"}
