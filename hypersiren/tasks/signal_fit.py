"""Fitting one sampled signal (image, audio, video) with a coordinate network: the shared part.

A subclass loads its signal as network values (*shape, C) in [-1, 1] on a grid of ``shape`` and says how to
write the result; the loss is the MSE over all samples or a random subset of ``--batch-points`` per step.
"""
from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import Tensor, nn

from hypersiren.data.grid import grid
from hypersiren.metrics import psnr_from_mse
from hypersiren.render import DEFAULT_CHUNK, render_grid
from hypersiren.tasks.base import Task, add_model_arguments, model_from_config, non_negative_int


class SignalFit(Task):
    first_omega: float = 30.0  # default w0 of the first sine layer
    batch_points: int = 0  # default --batch-points (0 = full batch)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--batch-points", type=non_negative_int, default=cls.batch_points,
                            help=f"random samples per step, 0 = every sample (full batch) (default: {cls.batch_points})")
        add_model_arguments(parser, first_omega=cls.first_omega)

    def load_signal(self) -> Tensor:
        """The signal as network values (*shape, C) in [-1, 1]; raise InputError on bad input."""
        raise NotImplementedError

    def __init__(self, config: dict[str, Any], device: torch.device):
        super().__init__(config, device)
        signal = self.load_signal()
        self.shape = tuple(signal.shape[:-1])
        self.values = signal.reshape(-1, signal.shape[-1]).to(device)
        self.targets = self.values  # what ``batch`` draws per sample (N, ...); derivative-supervised tasks replace it
        self.coords = grid(*self.shape, device=device)
        self.model, self._meta = model_from_config(config, len(self.shape), signal.shape[-1])
        self.model.to(device)

    def model_meta(self) -> dict[str, Any]:
        return self._meta

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        k = self.config["batch_points"]
        if k == 0 or k >= len(self.coords):
            return self.coords, self.targets
        index = torch.randint(len(self.coords), (k,), device=self.device)
        return self.coords[index], self.targets[index]

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
