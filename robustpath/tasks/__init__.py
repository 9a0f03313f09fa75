"""Tasks on embeddings: pure functions of clean context + one variant's embeddings."""
from robustpath.tasks.base import (
    DEFAULT_TASKS,
    GALLERIES,
    TEXT_TASKS,
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
