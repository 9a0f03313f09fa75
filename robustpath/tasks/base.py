"""What every task shares: the clean context it is fitted on, scoring, and the registry.

A task is fitted once on the clean context, then called once per variant:

    task.fit(context)
    outcomes = task.outcomes(test_embeddings)        # per-sample Outcomes
    values = task.score(outcomes)                    # metric → MetricValue (+ paired drop)
    # or, in one step: values = task.evaluate(test_embeddings)

``score`` compares each variant with the clean outcomes computed in ``fit`` from
``context.clean_test_embeddings`` (paired bootstrap, flip rate).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robustpath.errors import UsageError, unknown_name_message
from robustpath.tasks.metrics import BOOTSTRAP_RESAMPLES, MetricValue
from robustpath.tasks.outcomes import Outcomes, PairedScorer
from robustpath.tasks.registry import MetricInfo, get_task_info, list_task_infos

# The metrics of the classification tasks (linear probe, zero-shot, fine-tuning) and their definitions.
CLASSIFICATION_METRICS = (
    MetricInfo("accuracy"), MetricInfo("balanced_accuracy"), MetricInfo("macro_f1"), MetricInfo("weighted_f1"),
    MetricInfo("expected_calibration_error", higher_is_better=False), MetricInfo("flip_rate", higher_is_better=False),
)
FLIP_RATE_DEFINITION = "- **flip_rate**: share of images whose predicted class changes from the clean prediction (lower is better)."
CLASSIFICATION_DEFINITIONS = (
    FLIP_RATE_DEFINITION,
    "- **expected_calibration_error**: 15 equal-width confidence bins (lower is better); zero-shot probabilities are\n"
    "  softmax(100 · cosine).",
)


@dataclass(frozen=True)
class TaskContext:
    """Clean inputs computed once per run and reused for every variant.

    train_embeddings: (N_train, D) float32 clean embeddings of the training split;
    train_labels: (N_train,) int64; test_labels: (N_test,) int64;
    class_names: the dataset's classes, indexed by label;
    text_embeddings: (K, D) float32 L2-normalised class embeddings (prompt
    ensembles) for vision-language models, else None;
    clean_test_embeddings: (N_test, D) float32 clean embeddings of the test split
    (for measures relative to clean, e.g. embedding drift, prediction flips);
    bootstrap: resamples of the test images behind every interval and p-value;
    device: the torch device (or its name) where tasks may compute (the model's).
    classifier_heads: the fine-tuned heads of a ``finetuned:`` model, else None.
    """

    train_embeddings: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    seed: int
    text_embeddings: np.ndarray | None = None
    clean_test_embeddings: np.ndarray | None = None
    bootstrap: int = BOOTSTRAP_RESAMPLES
    device: object = "cpu"
    classifier_heads: dict | None = None  # task key → ClassifierHead of a fine-tuned model (robustpath.models.finetuned)


class Task(Protocol):
    name: str
    description: str
    metrics: tuple[str, ...]
    key: str  # unique within a run: name, or name plus its data-scale setting
    row_fields: dict  # extra results columns: samples_per_class, repeat
    needs_corrupted_training: bool  # outcomes() wants the variant's training embeddings

    def fit(self, context: TaskContext) -> None: ...

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        """test_embeddings: (N_test, D) float32 for one variant → per-sample outcomes."""
        ...

    def score(self, outcomes: Outcomes) -> dict[str, MetricValue]: ...

    def evaluate(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> dict[str, MetricValue]:
        """test_embeddings: (N_test, D) float32 for one variant → metric values."""
        ...

    def describe(self) -> dict: ...

    def chance_levels(self) -> dict:
        """metric → {"value": chance level or None, "definition": …} for the fitted context."""
        ...


class OutcomeTask:
    """Base class: subclasses implement ``_fit`` and ``outcomes``; scoring is shared."""

    name = ""
    description = ""
    metrics: tuple[str, ...] = ()
    samples_per_class = 0
    repeat = 0
    needs_corrupted_training = False

    def __init__(self) -> None:
        self.context: TaskContext | None = None
        self._scorer: PairedScorer | None = None

    @property
    def key(self) -> str:
        return self.name if not self.samples_per_class else f"{self.name}@{self.samples_per_class}-per-class#{self.repeat}"

    @property
    def row_fields(self) -> dict:
        return {"samples_per_class": int(self.samples_per_class), "repeat": int(self.repeat)}

    def fit(self, context: TaskContext) -> None:
        self.context = context
        self._fit(context)
        clean = None
        if context.clean_test_embeddings is not None:
            clean = self.outcomes(context.clean_test_embeddings, context.train_embeddings)
        self._scorer = PairedScorer(self.metrics, context.seed, clean, resamples=context.bootstrap)

    def _fit(self, context: TaskContext) -> None:  # pragma: no cover - overridden
        pass

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        raise NotImplementedError

    def score(self, outcomes: Outcomes) -> dict[str, MetricValue]:
        if self._scorer is None:
            raise RuntimeError("fit() must be called before score()")
        return self._scorer.score(outcomes)

    def evaluate(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> dict[str, MetricValue]:
        return self.score(self.outcomes(test_embeddings, train_embeddings))

    def describe(self) -> dict:
        return {}

    def chance_levels(self) -> dict:
        """Each metric's chance level for the fitted context's class counts (robustpath.tasks.chance):
        test labels for the images classified or queried, training labels for the retrieval gallery."""
        if self.context is None:
            raise RuntimeError("fit() must be called before chance_levels()")
        classes = len(self.context.class_names)
        test_counts = np.bincount(np.asarray(self.context.test_labels, dtype=np.int64), minlength=classes)
        gallery_counts = np.bincount(np.asarray(self.context.train_labels, dtype=np.int64), minlength=classes)
        return get_task_info(self.name).chance(self.metrics, test_counts, gallery_counts)


from robustpath.spec.run_spec import GALLERIES  # noqa: E402  (the option's choices have one owner)


def list_tasks() -> list[str]:
    """The tasks ``--task`` accepts (robustpath.tasks.registry), in report order."""
    return [info.name for info in list_task_infos(group_shift=False)]


def __getattr__(name: str):
    """DEFAULT_TASKS and TEXT_TASKS, derived from the registry on first use."""
    if name == "DEFAULT_TASKS":
        return tuple(info.name for info in list_task_infos(group_shift=False) if info.default)
    if name == "TEXT_TASKS":
        return frozenset(info.name for info in list_task_infos(group_shift=False) if info.needs_text)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_task_name(name: str) -> str:
    if name in list_tasks():
        return name
    raise UsageError(unknown_name_message("task", name, list_tasks()))


def create_task(name: str, **options) -> Task:
    """One task instance; ``options`` go to its constructor (e.g. gallery="corrupted")."""
    module_name, attr = get_task_info(check_task_name(name)).factory.split(":")
    return getattr(importlib.import_module(module_name), attr)(**options)


def create_tasks(
    name: str, *, samples_per_class: tuple[int, ...] = (), repeats: int = 1, gallery: str = "clean"
) -> list[Task]:
    """The task instances a run evaluates for ``name``.

    linear_probe: the probe on all training images (samples_per_class 0, repeat 0),
    then one probe per (samples_per_class, repeat) of the data-scale sweep, each on
    a seeded class-balanced subsample; fine_tune: the same settings, one fine-tuned head each.  retrieval: one task with the chosen gallery.
    Other tasks: one instance.
    """
    if name in ("linear_probe", "fine_tune"):
        sizes = sorted({int(size) for size in samples_per_class} - {0})
        if any(size < 1 for size in sizes):
            raise UsageError(f"--samples-per-class values must be positive, got {list(samples_per_class)}")
        if repeats < 1:
            raise UsageError(f"--repeats must be at least 1, got {repeats}")
        tasks = [create_task(name)]
        tasks += [create_task(name, samples_per_class=size, repeat=r) for size in sizes for r in range(repeats)]
        return tasks
    if name == "retrieval":
        if gallery not in GALLERIES:
            raise UsageError(unknown_name_message("gallery", gallery, GALLERIES, plural="galleries"))
        return [create_task(name, gallery=gallery)]
    return [create_task(name)]


def parse_samples_per_class(values: list[str] | tuple[str, ...] | str | None) -> tuple[int, ...]:
    """'16,64,256' or repeated values → (16, 64, 256); UsageError names the bad item."""
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    sizes = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise UsageError(f"--samples-per-class expects positive integers like 16,64,256; got '{part}'")
            sizes.append(int(part))
    return tuple(dict.fromkeys(sizes))
