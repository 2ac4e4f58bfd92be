"""Functa (Dupont et al. 2022, "From data to functa"): one shared SIREN modulated per image by shifts.

An image's code is a latent vector z (B, latent_dim); a linear map turns it into one shift per sine unit,
(B, num_sine_layers, hidden_features), added inside every sine layer (``Siren.forward(coords, shifts=...)``).
Inferring a code starts from z = 0 and takes ``inner_steps`` SGD steps on the context pixels with meta-SGD
learning rates (one learned rate per latent dimension). Training back-propagates the target-pixel loss through
the inner steps into the shared SIREN, the latent-to-shift map and the learning rates (MAML-style outer loop).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hypersiren.config import option, width
from hypersiren.nn.siren import Siren
from hypersiren.priors.base import PRIORS
from hypersiren.priors.inner_loop import Code, InnerLoopConfig, InnerLoopPrior, masked_mse


@PRIORS.register
class Functa(InnerLoopPrior):
    """Shift-modulated SIREN 2 -> 3 with a meta-SGD inner loop over a latent vector (the shared SIREN's options:
    ``PriorConfig``; the inner loop's: ``InnerLoopConfig``)."""

    method = "functa"

    @dataclass(frozen=True, kw_only=True)
    class Config(InnerLoopConfig):
        latent_dim: int = option(128, "latent size", check=width)
        meta_sgd: bool = option(True, "keep the inner learning rate fixed instead of learning one per latent dimension "
                                      "(Li et al. 2017)")
        first_order: bool = option(False, "first-order outer gradient (inner gradients treated as constants)")

    def __init__(self, config: Config | None = None, **options):
        super().__init__(config, **options)
        c = self.config
        self.siren = Siren(2, 3, c.hidden_features, c.hidden_layers, c.first_omega, c.hidden_omega)
        self.to_shifts = nn.Linear(c.latent_dim, self.siren.num_sine_layers * c.hidden_features)
        nn.init.zeros_(self.to_shifts.bias)
        lrs = torch.full((c.latent_dim,), float(c.inner_lr))
        if c.meta_sgd:
            self.inner_lrs = nn.Parameter(lrs)
        else:
            self.register_buffer("inner_lrs", lrs)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def shifts(self, latent: Tensor) -> Tensor:
        """latent (B, latent_dim) -> shift modulations (B, num_sine_layers, hidden_features)."""
        return self.to_shifts(latent).reshape(latent.shape[0], self.siren.num_sine_layers, -1)

    def start(self, batch: int, like: Tensor) -> Code:
        return {"latent": like.new_zeros(batch, self.latent_dim)}

    def learning_rates(self) -> Code:
        return {"latent": self.inner_lrs.clamp_min(0.0)}

    def public_code(self, code: Code) -> Tensor:
        return code["latent"]

    def context_loss(self, code: Code, coords: Tensor, values: Tensor, weights: Tensor) -> Tensor:
        return masked_mse(self.render(code["latent"][None], coords[None])[0], values, weights)

    def render(self, code: Tensor, coords: Tensor) -> Tensor:
        """code: latents (B, latent_dim); coords (B, N, 2) -> (B, N, 3)."""
        return self.siren(coords, shifts=self.shifts(code))

    def training_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor, target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        loss, logs = self.meta_loss(images, masks, target_coords, target_values, self.config.first_order)
        logs["inner_lr_mean"] = self.inner_lrs.detach().mean()
        return loss, logs
