"""Zero-shot classification with a vision-language model's text tower.

Each class is represented by the mean of its prompts' L2-normalised text
embeddings, normalised again (a prompt ensemble, as CLIP does); an image is
assigned the class whose embedding has the highest cosine similarity with the
image's L2-normalised embedding.  Text is encoded once per run.
"""
from __future__ import annotations

import numpy as np

from robustpath.metrics import MetricValue, classification_metrics
from robustpath.tasks.base import TaskContext

TEXT_BATCH = 256


def class_text_embeddings(encoder, prompts, device) -> np.ndarray:
    """prompts: robustpath.prompts.ClassPrompts → (K, D) float32, rows L2-normalised."""
    import torch

    flat = [text for class_prompts in prompts.prompts for text in class_prompts]
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(flat), TEXT_BATCH):
            chunks.append(encoder.encode_text(flat[start : start + TEXT_BATCH]).float().cpu())
    embeddings = torch.nn.functional.normalize(torch.cat(chunks), dim=-1)
    rows, start = [], 0
    for class_prompts in prompts.prompts:
        rows.append(embeddings[start : start + len(class_prompts)].mean(dim=0))
        start += len(class_prompts)
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1).numpy().astype(np.float32)


def zero_shot_predict(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """(N, D) images, (K, D) normalised class embeddings → (N,) class indices by cosine similarity."""
    norms = np.maximum(np.linalg.norm(image_embeddings, axis=1, keepdims=True), 1e-12)
    similarity = (image_embeddings / norms).astype(np.float64) @ text_embeddings.astype(np.float64).T
    return similarity.argmax(axis=1)


class ZeroShotTask:
    name = "zeroshot"
    description = "cosine similarity between image embeddings and prompt-ensemble class embeddings"
    metrics = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")

    def __init__(self) -> None:
        self._context: TaskContext | None = None

    def fit(self, context: TaskContext) -> None:
        if context.text_embeddings is None:
            raise ValueError("zero-shot needs class text embeddings (a model with a text encoder)")
        self._context = context

    def evaluate(self, test_embeddings: np.ndarray) -> dict[str, MetricValue]:
        context = self._context
        predictions = zero_shot_predict(test_embeddings, context.text_embeddings)
        return classification_metrics(context.test_labels, predictions, len(context.class_names), seed=context.seed)

    def describe(self) -> dict:
        return {"similarity": "cosine", "class_embedding": "mean of L2-normalised prompt embeddings, renormalised"}
