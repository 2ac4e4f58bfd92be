"""Fitting one sampled signal (image, audio, video) with a coordinate network: the shared part.

A subclass loads its signal as network values (*shape, C) in [-1, 1] on a grid of ``shape`` and says how to
write the result; the loss is the MSE over the training samples (all of them, or a random subset of
``--batch-points`` per step). Before the signal is resampled to its shape, and again before training, the memory
that shape implies (the signal, a training step, each rendered output) is checked against the budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hypersiren.config import non_negative_int, option
from hypersiren.data.grid import grid
from hypersiren.limits import FLOAT32, check_memory
from hypersiren.metrics import psnr_from_mse
from hypersiren.nn import NetworkConfig, build_model
from hypersiren.nn.measure import step_bytes
from hypersiren.render import DEFAULT_CHUNK, render_grid
from hypersiren.tasks.base import Task, TaskConfig

SIGNAL_COPIES = 4  # the signal, its network values, a render for the metrics, pictures of it
RENDER_COPIES = 3  # a rendered output: the network's values, their conversion, the array written


class SignalFit(Task):
    @dataclass(frozen=True, kw_only=True)
    class Config(NetworkConfig, TaskConfig):
        batch_points: int = option(0, "random samples per step, 0 = every sample (full batch)", check=non_negative_int)

    def load_signal(self) -> Tensor:
        """The signal as network values (*shape, C) in [-1, 1]; raise InputError on bad input. A subclass that
        resamples its input passes the new shape through ``fitted_shape`` first."""
        raise NotImplementedError

    def describe_signal(self, shape: tuple[int, ...]) -> str:
        """What sets the signal's size, as the user wrote it, and that size (for memory messages)."""
        return f"the signal ({'x'.join(map(str, shape))} samples)"

    def output_needs(self, shape: tuple[int, ...], channels: int) -> dict[str, float]:
        """Bytes of each rendered output of a signal of ``shape``, keyed by the option that sets its size."""
        return {}

    def signal_needs(self, shape: tuple[int, ...], channels: int) -> dict[str, float]:
        """Bytes a signal of ``shape`` with ``channels`` values per sample implies: itself with its coordinates and
        copies, one training step (``--batch-points``) and each output (``output_needs``)."""
        points, config = math.prod(shape), self.config
        batch = config.batch_points if 0 < config.batch_points < points else points
        step = (f"a training step on {batch:,} points (--batch-points {config.batch_points}, --hidden-features "
                f"{config.hidden_features}, --hidden-layers {config.hidden_layers})")
        return {self.describe_signal(shape): points * (channels + len(shape)) * FLOAT32 * SIGNAL_COPIES,
                step: step_bytes(batch, config.hidden_features, config.hidden_layers),
                **self.output_needs(shape, channels)}

    def fitted_shape(self, shape: tuple[int, ...], channels: int) -> tuple[int, ...]:
        """``shape``, once a signal of that shape is known to fit the memory budget (``signal_needs``)."""
        check_memory(self.signal_needs(tuple(shape), channels))
        return tuple(shape)

    def __init__(self, config: Config, device: torch.device | str | None = None):
        super().__init__(config, device)
        signal = self.load_signal()
        self.shape = self.fitted_shape(signal.shape[:-1], signal.shape[-1])  # every output, before training
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
