"""The zoo: every trainable entry, registered by the name ``hypersiren fit NAME`` uses."""
from __future__ import annotations

from hypersiren.tasks.base import Task
from hypersiren.tasks.audio import FitAudio
from hypersiren.tasks.helmholtz import Helmholtz
from hypersiren.tasks.composite import Composite
from hypersiren.tasks.image import FitImage
from hypersiren.tasks.poisson import PoissonGradient, PoissonLaplacian
from hypersiren.tasks.sdf import FitSdf
from hypersiren.tasks.video import FitVideo
from hypersiren.tasks.wave import Wave

TASKS: dict[str, type[Task]] = {task.name: task for task in (
    FitImage,
    FitAudio,
    FitVideo,
    Helmholtz,
    Wave,
    FitSdf,
    PoissonGradient,
    PoissonLaplacian,
    Composite,
)}

__all__ = ["TASKS", "Task"]
