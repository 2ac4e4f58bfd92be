"""Fitting one sampled signal (image, audio, video) with a coordinate network: the shared part.

A subclass loads its signal as network values (*shape, C) in [-1, 1] on a grid of ``shape`` and says how to
write the result; the loss is the MSE over the training samples (all of them, or a random subset of
``--batch-points`` per step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hypersiren.config import non_negative_int, option
from hypersiren.data.grid import grid
from hypersiren.metrics import psnr_from_mse
from hypersiren.nn import NetworkConfig, build_model
from hypersiren.render import DEFAULT_CHUNK, render_grid
from hypersiren.tasks.base import Task, TaskConfig


class SignalFit(Task):
    @dataclass(frozen=True, kw_only=True)
    class Config(NetworkConfig, TaskConfig):
        batch_points: int = option(0, "random samples per step, 0 = every sample (full batch)", check=non_negative_int)

    def load_signal(self) -> Tensor:
        """The signal as network values (*shape, C) in [-1, 1]; raise InputError on bad input."""
        raise NotImplementedError

    def __init__(self, config: Config, device: torch.device | str | None = None):
        super().__init__(config, device)
        signal = self.load_signal()
        self.shape = tuple(signal.shape[:-1])
        self.values = signal.reshape(-1, signal.shape[-1]).to(self.device)
        self.coords = grid(*self.shape, device=self.device)
        # what ``batch`` draws from: (N, d) coordinates and (N, ...) targets; derivative-supervised tasks replace the
        # targets, and a task that trains on part of the signal replaces both
        self.train_coords, self.targets = self.coords, self.values
        self._meta = config.network_meta(len(self.shape), signal.shape[-1])
        self.model = build_model(**self._meta).to(self.device)

    def model_meta(self) -> dict[str, Any]:
        return self._meta

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        k = self.config.batch_points
        if k == 0 or k >= len(self.train_coords):
            return self.train_coords, self.targets
        index = torch.randint(len(self.train_coords), (k,), device=self.device)
        return self.train_coords[index], self.targets[index]

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        coords, target = batch
        mse = torch.mean((model(coords).float() - target) ** 2)
        return mse, {"psnr": psnr_from_mse(float(mse.detach()))}

    def render(self, shape: tuple[int, ...] | None = None) -> Tensor:
        """Network values on a grid of ``shape`` (default: the signal's): (*shape, C)."""
        self.model.eval()
        out = render_grid(self.model, shape or self.shape, device=self.device, chunk=DEFAULT_CHUNK)
        self.model.train()
        return out

    def metrics(self) -> dict[str, float]:
        fit = self.render().reshape(-1, self.values.shape[-1])
        mse = float(torch.mean((fit.float() - self.values) ** 2))
        return {"mse": mse, "psnr": psnr_from_mse(mse)}
