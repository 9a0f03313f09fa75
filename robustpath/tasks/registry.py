"""The task registry: every fact about a task, declared once beside its code as a TaskInfo.

Each task module registers its TaskInfo where the task is defined::

    INFO = register_task(TaskInfo(
        name="embedding_drift", description="…", order=50,
        metrics=(MetricInfo("cosine_similarity"),), primary="cosine_similarity",
        chance=chance_record, definitions=("- **embedding_drift · …**",),
        run_note="Embedding drift: …", export_columns=("cosine_similarity",),
        factory="robustpath.tasks.embedding_drift:EmbeddingDriftTask",
    ))

The results table (higher_is_better, primary metrics, task order), the report's
definitions, run.json's notes and predictions.csv's columns read these facts from here.
Modules of this package are imported on the first look-up, so a new task is one file:
its module, with its TaskInfo.  The registry refuses a task without metrics, a primary
metric that is not one of them, a duplicate name and a chance rule that is not callable.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from robustpath.errors import UsageError, unknown_name_message


@dataclass(frozen=True)
class MetricInfo:
    """One metric of a task: its results-table name and its direction."""

    name: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class TaskInfo:
    """What a task is, what it measures and how robustpath reports it.

    name: the task's name (results.csv ``task``, ``--task``); description: one line;
    order: position in tables and plots (ascending);
    metrics: every metric the task writes, with its direction; primary: the metric
    summaries, plots and the ranking use;
    chance: the chance rule, (metrics, test_counts, gallery_counts) → {metric: {"value",
    "best", "definition"}} (robustpath.tasks.chance);
    definitions: report.md bullet lines defining the task's measures (may repeat another
    task's line: the report shows each once);
    run_note: the line run.json's ``notes`` gets when the task runs ({gallery} filled in),
    empty for none; export_columns: predictions.csv columns the task fills beyond the
    sample and the variant ("p_{class}": one per class);
    needs_text: scored against class text embeddings (vision-language models only);
    detection: measures whether a corruption is noticed, not what it costs (left out of
    the robustness summaries); default: evaluated when no --task is given;
    group_shift: measured on real shifts between groups by robustpath.tasks.group_shifts
    (not created by ``--task``); factory: "module:attribute" of the task class (None for
    group-shift tasks).
    """

    name: str
    description: str
    order: int
    metrics: tuple[MetricInfo, ...]
    primary: str
    chance: Callable
    definitions: tuple[str, ...] = ()
    run_note: str = ""
    export_columns: tuple[str, ...] = ()
    needs_text: bool = False
    detection: bool = False
    default: bool = False
    group_shift: bool = False
    factory: str | None = None
    gallery_notes: tuple[tuple[str, str], ...] = ()  # (gallery, run note) where the note depends on --gallery

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(metric.name for metric in self.metrics)

    def note(self, gallery: str = "clean") -> str:
        """The run note for this run's gallery setting."""
        return dict(self.gallery_notes).get(gallery, self.run_note)


_REGISTRY: dict[str, TaskInfo] = {}
_LOADED = False


def register_task(info: TaskInfo) -> TaskInfo:
    """Add ``info`` to the registry; ValueError for an incomplete or duplicate declaration."""
    problem = _problem(info)
    if problem:
        raise ValueError(f"task '{info.name}': {problem}")
    known = _REGISTRY.get(info.name)
    if known is not None and known != info:
        raise ValueError(f"task '{info.name}' is registered twice")
    _REGISTRY[info.name] = info
    return info


def _problem(info: TaskInfo) -> str:
    names = info.metric_names
    if not names:
        return "declares no metrics"
    if len(set(names)) != len(names):
        return "declares a metric twice"
    if info.primary not in names:
        return f"primary metric '{info.primary}' is not one of its metrics {list(names)}"
    if not callable(info.chance):
        return "its chance rule is not callable"
    if (info.factory is None) != info.group_shift:
        return "a task created by --task needs a factory, and only such a task has one"
    return ""


def _load() -> None:
    """Import every module of robustpath.tasks once, so that each registers its tasks."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    package = importlib.import_module("robustpath.tasks")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"robustpath.tasks.{module.name}")


def list_task_infos(*, group_shift: bool | None = None) -> list[TaskInfo]:
    """Every registered task in report order; ``group_shift`` True / False keeps only those / the others."""
    _load()
    infos = sorted(_REGISTRY.values(), key=lambda info: (info.order, info.name))
    return [info for info in infos if group_shift is None or info.group_shift == group_shift]


def get_task_info(name: str) -> TaskInfo:
    """The TaskInfo of ``name``; UsageError naming the registered tasks when unknown."""
    _load()
    if name not in _REGISTRY:
        raise UsageError(unknown_name_message("task", name, [info.name for info in list_task_infos()]))
    return _REGISTRY[name]


def primary_metrics(*, group_shift: bool | None = False) -> dict[str, str]:
    """task → its primary metric."""
    return {info.name: info.primary for info in list_task_infos(group_shift=group_shift)}


def lower_is_better_metrics() -> frozenset[str]:
    """Every metric name some task declares lower-is-better."""
    return frozenset(metric.name for info in list_task_infos() for metric in info.metrics if not metric.higher_is_better)
