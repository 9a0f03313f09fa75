"""Tasks on embeddings: pure functions of clean context + one variant's embeddings."""
from robustpath.tasks.base import (
    GALLERIES,
    OutcomeTask,
    Task,
    TaskContext,
    check_task_name,
    create_task,
    create_tasks,
    list_tasks,
    parse_samples_per_class,
)

__all__ = [
    "DEFAULT_TASKS", "GALLERIES", "TEXT_TASKS", "OutcomeTask", "Task", "TaskContext", "check_task_name",
    "create_task", "create_tasks", "list_tasks", "parse_samples_per_class",
]


def __getattr__(name: str):
    """DEFAULT_TASKS and TEXT_TASKS come from the task registry (robustpath.tasks.registry) on first use."""
    if name in ("DEFAULT_TASKS", "TEXT_TASKS"):
        from robustpath.tasks import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
