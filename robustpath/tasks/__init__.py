"""Tasks on embeddings: pure functions of clean context + one variant's embeddings."""
from robustpath.tasks.base import DEFAULT_TASKS, TEXT_TASKS, Task, TaskContext, check_task_name, create_task, list_tasks

__all__ = ["DEFAULT_TASKS", "TEXT_TASKS", "Task", "TaskContext", "check_task_name", "create_task", "list_tasks"]
