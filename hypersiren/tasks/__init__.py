"""The zoo: every trainable entry, registered by the name ``hypersiren fit NAME`` uses."""
from __future__ import annotations

from hypersiren.tasks.base import Task
from hypersiren.tasks.image import FitImage

TASKS: dict[str, type[Task]] = {task.name: task for task in (
    FitImage,
)}

__all__ = ["TASKS", "Task"]
