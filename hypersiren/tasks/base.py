"""What a zoo entry supplies to the engine: its config, data, model, loss, metrics, summaries and outputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from hypersiren.config import Config, device_name, option
from hypersiren.engine import EngineConfig


@dataclass(frozen=True, kw_only=True)
class TaskConfig(Config):
    """What every run holds besides the task's own options: where it goes, its device and the engine's options.
    A task's Config subclasses this and sets its engine defaults: ``engine: EngineConfig = EngineConfig(steps=500)``."""

    out: str | None = option(None, "run directory (default: runs/<command>-<task>)", group="training", resumable=True)
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps", check=device_name, group="training", resumable=True)
    engine: EngineConfig = EngineConfig()


class Task:
    """One trainable entry of the zoo.

    Subclasses set ``name`` (the CLI word), ``kind`` (stored in checkpoints), ``description`` (one line for
    ``hypersiren zoo``) and ``Config`` (a ``TaskConfig`` dataclass with the task's options), and implement
    ``__init__`` (build data and ``self.model`` from ``config``; raise InputError on bad input), ``batch``,
    ``loss`` and ``metrics``. ``summaries``, ``write_outputs`` and ``memory_needs`` are optional. Decorating the
    class with ``@TASKS.register`` (``hypersiren.registry``) makes it a zoo entry.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type[TaskConfig]] = TaskConfig
    model: nn.Module

    def __init__(self, config: TaskConfig, device: torch.device | str | None = None):
        from hypersiren.limits import check_memory
        from hypersiren.runtime import resolve_device

        self.config = config
        self.device = torch.device(device) if device is not None else resolve_device(config.device)
        check_memory(self.memory_needs())

    def memory_needs(self) -> dict[str, float]:
        """Bytes the options imply, keyed by what asks for them as the user wrote it (``--mesh-resolution 5000 (the
        SDF grid)``): training steps and every output. Checked against the memory budget (``hypersiren.limits``)
        when the task is built, before its inputs are read, so an output that cannot be made is refused before
        training. Needs that depend on the input are checked once its size is known, before allocating at that
        size (``SignalFit.fitted_shape``). Default: none."""
        return {}

    def model_meta(self) -> dict[str, Any]:
        """JSON config that rebuilds ``self.model`` (stored in the checkpoint as ``meta["model"]``)."""
        return dict(getattr(self.model, "config", {}))

    def parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser trains."""
        return list(self.model.parameters())

    def batch(self, step: int) -> Any:
        """The training batch for ``step`` (drawn with torch's global RNG, which the engine seeds and saves)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float | Tensor]]:
        """Scalar loss and named scalars to log. ``model`` is ``self.model`` or its compiled/DDP wrapper."""
        raise NotImplementedError

    def metrics(self) -> dict[str, float]:
        """Evaluation metrics of the current model (called under no_grad-free context; use torch.no_grad inside)."""
        raise NotImplementedError

    def summaries(self, writer, step: int) -> None:
        """Write pictures/audio to a TensorBoard SummaryWriter; the engine calls it at every evaluation (after
        ``metrics``), the last one included."""

    def final_summaries(self, writer, step: int) -> None:
        """Write what only the trained model shows (e.g. samples from a density fitted in ``final_state``); the
        engine calls it once, after the final evaluation's ``summaries``. Default none."""

    def final_state(self) -> dict[str, Any]:
        """Extra entries of the checkpoint written when training ends (tensors, dicts, JSON scalars; default none)."""
        return {}

    def write_outputs(self, out_dir: Path) -> list[Path]:
        """Write the rendered result (PNG, WAV, mesh) into ``out_dir``; returns the paths written."""
        return []

    def close(self) -> None:
        """Release what training held besides the model (data-loading processes); the engine calls it when
        training ends. A later ``batch`` starts again."""


def engine_summary(config_cls: type[TaskConfig]) -> dict[str, Any]:
    """The engine defaults a task's config lists in ``hypersiren zoo``: steps, lr and whatever else it changes."""
    engine, base = config_cls.__dataclass_fields__["engine"].default, EngineConfig()
    return {k: v for k, v in engine.to_dict().items() if k in ("steps", "lr") or v != getattr(base, k)}
