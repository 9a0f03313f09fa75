"""What every task shares: the clean context it is fitted on, and its registry."""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robustpath.errors import UsageError
from robustpath.metrics import MetricValue


@dataclass(frozen=True)
class TaskContext:
    """Clean inputs computed once per run and reused for every variant.

    train_embeddings: (N_train, D) float32 clean embeddings of the training split;
    train_labels: (N_train,) int64; test_labels: (N_test,) int64;
    class_names: the dataset's classes, indexed by label;
    text_embeddings: (K, D) float32 L2-normalised class embeddings (prompt
    ensembles) for vision-language models, else None;
    clean_test_embeddings: (N_test, D) float32 clean embeddings of the test split
    (for measures relative to clean, e.g. embedding drift, prediction flips).
    """

    train_embeddings: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    seed: int
    text_embeddings: np.ndarray | None = None
    clean_test_embeddings: np.ndarray | None = None


class Task(Protocol):
    name: str
    description: str
    metrics: tuple[str, ...]

    def fit(self, context: TaskContext) -> None: ...

    def evaluate(self, test_embeddings: np.ndarray) -> dict[str, MetricValue]:
        """test_embeddings: (N_test, D) float32 for one variant → metric values."""
        ...

    def describe(self) -> dict: ...


_TASKS = {
    "linear_probe": "robustpath.tasks.linear_probe:LinearProbeTask",
    "retrieval": "robustpath.tasks.retrieval:RetrievalTask",
    "zeroshot": "robustpath.tasks.zeroshot:ZeroShotTask",
}
TEXT_TASKS = frozenset({"zeroshot"})
DEFAULT_TASKS = ("linear_probe", "retrieval", "zeroshot")


def list_tasks() -> list[str]:
    return list(_TASKS)


def check_task_name(name: str) -> str:
    if name in _TASKS:
        return name
    close = difflib.get_close_matches(name, list(_TASKS), n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UsageError(f"unknown task '{name}'.{hint} Valid tasks: {', '.join(_TASKS)}")


def create_task(name: str) -> Task:
    module_name, attr = _TASKS[check_task_name(name)].split(":")
    return getattr(importlib.import_module(module_name), attr)()
