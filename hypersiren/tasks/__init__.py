"""The zoo: one module per entry, each registered by the name ``hypersiren fit NAME`` uses (``TASKS``)."""
from hypersiren.registry import TASKS
from hypersiren.tasks.base import Task, TaskConfig

__all__ = ["TASKS", "Task", "TaskConfig"]
