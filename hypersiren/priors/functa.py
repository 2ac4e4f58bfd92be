"""Functa (Dupont et al. 2022, "From data to functa"): one shared SIREN modulated per image by shifts.

An image's code is a latent vector z (B, latent_dim); a linear map turns it into one shift per sine unit,
(B, num_sine_layers, hidden_features), added inside every sine layer (``Siren.forward(coords, shifts=...)``).
Inferring a code starts from z = 0 and takes ``inner_steps`` SGD steps on the context pixels with meta-SGD
learning rates (one learned rate per latent dimension). Training back-propagates the target-pixel loss through
the inner steps into the shared SIREN, the latent-to-shift map and the learning rates (MAML-style outer loop).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from hypersiren.errors import InputError
from hypersiren.nn.siren import Siren
from hypersiren.priors.base import register_prior
from hypersiren.priors.inner_loop import Code, InnerLoopPrior, masked_mse


@register_prior
class Functa(InnerLoopPrior):
    """Shift-modulated SIREN 2 -> 3 with a meta-SGD inner loop over a latent vector.

    hidden_features, hidden_layers, first_omega, hidden_omega: the shared SIREN (see ``Siren``).
    latent_dim: size of each image's latent vector.
    inner_steps, inner_lr: SGD steps on the context pixels and the initial (or fixed) learning rate.
    meta_sgd: learn one inner learning rate per latent dimension (Li et al. 2017); False keeps ``inner_lr``.
    first_order: treat the inner gradients as constants in the outer update.
    """

    method = "functa"

    def __init__(self, hidden_features: int = 256, hidden_layers: int = 3, first_omega: float = 30.0,
                 hidden_omega: float = 30.0, latent_dim: int = 128, inner_steps: int = 3, inner_lr: float = 1e-2,
                 meta_sgd: bool = True, first_order: bool = False):
        super().__init__()
        if latent_dim < 1 or inner_steps < 0 or not (inner_lr > 0 and math.isfinite(inner_lr)):
            raise InputError(f"functa needs latent_dim >= 1, inner_steps >= 0 and a positive finite inner_lr, got "
                             f"latent_dim={latent_dim}, inner_steps={inner_steps}, inner_lr={inner_lr}")
        self.siren = Siren(2, 3, hidden_features, hidden_layers, first_omega, hidden_omega)
        self.to_shifts = nn.Linear(latent_dim, self.siren.num_sine_layers * hidden_features)
        nn.init.zeros_(self.to_shifts.bias)
        self.inner_steps = int(inner_steps)
        self.first_order = bool(first_order)
        lrs = torch.full((latent_dim,), float(inner_lr))
        if meta_sgd:
            self.inner_lrs = nn.Parameter(lrs)
        else:
            self.register_buffer("inner_lrs", lrs)
        self._config = dict(hidden_features=hidden_features, hidden_layers=hidden_layers,
                            first_omega=float(first_omega), hidden_omega=float(hidden_omega), latent_dim=latent_dim,
                            inner_steps=self.inner_steps, inner_lr=float(inner_lr), meta_sgd=bool(meta_sgd),
                            first_order=self.first_order)

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def latent_dim(self) -> int:
        return self._config["latent_dim"]

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
        loss, logs = self.meta_loss(images, masks, target_coords, target_values, self.first_order)
        logs["inner_lr_mean"] = self.inner_lrs.detach().mean()
        return loss, logs
