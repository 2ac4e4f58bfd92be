"""A run's training checkpoint: what the engine saves (weights, optimiser, RNG state, step) and resumes from.

Saving refuses weights that became NaN or Inf, so the last good checkpoint is never replaced by a diverged one;
only rank 0 writes under torchrun. Files go through ``hypersiren.checkpoint`` (atomic, checksummed, no pickle).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hypersiren.checkpoint import load_checkpoint, save_checkpoint
from hypersiren.errors import CheckpointError, TrainingDiverged
from hypersiren.runtime import rng_state, seed_everything, set_rng_state

if TYPE_CHECKING:
    from hypersiren.tasks.base import Task


class TrainingState:
    """The checkpoint at ``path`` of ``task`` trained by ``optimizer``; ``meta`` is stored with it (kind, model and
    configs); ``rank``: this process's rank under torchrun (0 otherwise)."""

    def __init__(self, path: Path, task: Task, optimizer: torch.optim.Optimizer, meta: dict, rank: int = 0):
        self.path, self.task, self.optimizer, self.meta, self.rank = path, task, optimizer, meta, rank

    def resume(self, seed: int) -> int:
        """Restore weights, optimiser and RNG state from the checkpoint if there is one; returns its step (else 0).
        Ranks > 0 then reseed with ``seed`` + rank + step, so they draw other batches than rank 0."""
        if not self.path.exists():
            return 0
        state, _ = load_checkpoint(self.path, kind=self.task.kind)
        try:
            self.task.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"cannot resume from {self.path}: it was written by another configuration ({err})") from None
        set_rng_state(state["rng"])
        step = int(state["step"])
        if self.rank:
            seed_everything(seed + self.rank + step)
        return step

    def save(self, step: int, final: bool = False) -> None:
        """Checkpoint after ``step`` steps (``final``: with the task's ``final_state``); TrainingDiverged, keeping the
        last good checkpoint, if the weights are not all finite."""
        if not all(bool(torch.isfinite(p).all()) for p in self.task.parameters()):  # e.g. one step with a huge lr
            raise TrainingDiverged(f"the weights became NaN or Inf by step {step}; {self.kept}")
        # the task's final state (e.g. a latent density) on every rank: it may set buffers all ranks must share
        final_state = self.task.final_state() if final else {}
        if self.rank == 0:
            state = {"model": self.task.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": step,
                     "rng": rng_state(), **final_state}
            save_checkpoint(self.path, state, self.meta)

    @property
    def kept(self) -> str:
        """What an error that stops training keeps, in words."""
        return f"the last good checkpoint (if any) is kept at {self.path}"
