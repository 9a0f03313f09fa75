"""Zero-shot classification with a vision-language model's text tower.

Each class is represented by the mean of its prompts' L2-normalised text
embeddings, normalised again (a prompt ensemble, as CLIP does); an image is
assigned the class whose embedding has the highest cosine similarity with the
image's L2-normalised embedding.  Text is encoded once per run.

Class probabilities (for expected_calibration_error) are softmax(100 · cosine):
100 is the logit scale CLIP learns (its exp(logit_scale) is clamped at 100 and
released CLIP-style checkpoints sit at or near it).  We use the fixed value for
every model so that calibration is comparable across models; it does not change
the predicted class.

Image embeddings are converted to float64 in blocks of FLOAT64_ROWS rows (the
same blocks as the linear probe's predictions), and the cosine similarities of
each block give both the predictions and the probabilities.
"""
from __future__ import annotations

import numpy as np

from robustpath.tasks.outcomes import Outcomes
from robustpath.tasks.base import CLASSIFICATION_DEFINITIONS, CLASSIFICATION_METRICS, OutcomeTask, TaskContext
from robustpath.tasks.chance import chance_record
from robustpath.tasks.registry import TaskInfo, register_task

TEXT_BATCH = 256
LOGIT_SCALE = 100.0
FLOAT64_ROWS = 8192  # image embeddings converted to float64 at once


def class_text_embeddings(encoder, prompts, device) -> np.ndarray:
    """prompts: robustpath.tasks.prompts.ClassPrompts → (K, D) float32, rows L2-normalised."""
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


def cosine_similarities(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """(N, D) images, (K, D) normalised class embeddings → (N, K) float64 cosine similarities."""
    images = image_embeddings.astype(np.float64)
    norms = np.maximum(np.linalg.norm(images, axis=1, keepdims=True), 1e-12)
    return (images / norms) @ text_embeddings.astype(np.float64).T


def zero_shot_predict(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """(N, D) images, (K, D) normalised class embeddings → (N,) class indices by cosine similarity."""
    return cosine_similarities(image_embeddings, text_embeddings).argmax(axis=1)


def zero_shot_probabilities(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """(N, D), (K, D) → (N, K) softmax(LOGIT_SCALE · cosine), rows sum to 1."""
    return _softmax_of_cosines(cosine_similarities(image_embeddings, text_embeddings))


def _softmax_of_cosines(similarity: np.ndarray) -> np.ndarray:
    """(N, K) float64 cosine similarities → (N, K) softmax(LOGIT_SCALE · cosine)."""
    logits = LOGIT_SCALE * similarity
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def zero_shot_outcomes(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D), (K, D) → (N,) int64 predictions and (N, K) probabilities, in blocks of FLOAT64_ROWS images:
    zero_shot_predict and zero_shot_probabilities of each block, from one cosine computation."""
    classes = len(text_embeddings)
    predictions = np.zeros(len(image_embeddings), dtype=np.int64)
    probabilities = np.zeros((len(image_embeddings), classes))
    for start in range(0, len(image_embeddings), FLOAT64_ROWS):
        rows = slice(start, start + FLOAT64_ROWS)
        similarity = cosine_similarities(image_embeddings[rows], text_embeddings)
        predictions[rows] = similarity.argmax(axis=1)
        probabilities[rows] = _softmax_of_cosines(similarity)
    return predictions, probabilities


INFO = register_task(TaskInfo(
    name="zeroshot", order=40, default=True, needs_text=True,
    description="cosine similarity between image embeddings and prompt-ensemble class embeddings",
    metrics=CLASSIFICATION_METRICS, primary="accuracy", chance=chance_record,
    definitions=CLASSIFICATION_DEFINITIONS, export_columns=("predicted_label", "p_{class}"),
    run_note="Zero-shot: class text embeddings (prompt ensembles) are computed once from clean prompts.",
    factory="robustpath.tasks.zeroshot:ZeroShotTask",
))

class ZeroShotTask(OutcomeTask):
    name = INFO.name
    description = INFO.description
    metrics = INFO.metric_names

    def _fit(self, context: TaskContext) -> None:
        if context.text_embeddings is None:
            raise ValueError("zero-shot needs class text embeddings (a model with a text encoder)")

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        context = self.context
        predictions, probabilities = zero_shot_outcomes(test_embeddings, context.text_embeddings)
        return Outcomes(
            n_classes=len(context.class_names),
            labels=np.asarray(context.test_labels, dtype=np.int64),
            predictions=predictions,
            probabilities=probabilities,
        )

    def describe(self) -> dict:
        return {
            "similarity": "cosine",
            "class_embedding": "mean of L2-normalised prompt embeddings, renormalised",
            "probabilities": f"softmax({LOGIT_SCALE:g} · cosine), CLIP's logit scale",
        }
