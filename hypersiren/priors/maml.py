"""Learned initialisations of a SIREN (Tancik et al. 2021, "Learned Initializations for Optimizing
Coordinate-Based Neural Representations"): MAML and Reptile.

Both priors hold one SIREN whose weights are the meta-learned starting point. Inferring a face runs a few
plain SGD steps from that start on the context pixels only; the code of an image is the adapted SIREN, a dict
of per-sample parameters name -> (B, *shape) that ``Siren.forward(coords, params=code)`` renders in one
batched call. The inner steps are written with ``torch.func`` (functional_call, grad, vmap).

- MAML back-propagates the loss on the target pixels through the inner steps (second order, or first order
  with ``first_order=True``); the inner learning rates can be meta-learned (one per parameter tensor).
- Reptile fits each training image for ``inner_steps`` steps on its target pixels (all of them in training)
  and moves the start towards the fitted weights. The engine's optimiser applies that move: the training loss
  is the surrogate ``0.5 * mean_b ||theta - phi_b||^2`` whose gradient is ``theta - mean_b phi_b``.
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


class LearnedInit(InnerLoopPrior):
    """A meta-learned SIREN initialisation adapted to each context by ``inner_steps`` SGD steps.

    hidden_features, hidden_layers, first_omega, hidden_omega: the SIREN 2 -> 3 (see ``Siren``).
    inner_steps: SGD steps on the context pixels when inferring a code.
    inner_lr: the SGD learning rate (the starting value when it is learned).
    learn_inner_lr: meta-learn one learning rate per parameter tensor (MAML only).
    """

    def __init__(self, hidden_features: int = 256, hidden_layers: int = 3, first_omega: float = 30.0,
                 hidden_omega: float = 30.0, inner_steps: int = 3, inner_lr: float = 1e-2,
                 learn_inner_lr: bool = False):
        super().__init__()
        if inner_steps < 0 or not (inner_lr > 0 and math.isfinite(inner_lr)):
            raise InputError(f"{self.method} needs inner_steps >= 0 and a positive finite inner_lr, "
                             f"got inner_steps={inner_steps}, inner_lr={inner_lr}")
        self.siren = Siren(2, 3, hidden_features, hidden_layers, first_omega, hidden_omega)
        self.inner_steps = int(inner_steps)
        self.names = list(self.siren.parameter_shapes())
        lrs = torch.full((len(self.names),), float(inner_lr))
        if learn_inner_lr:
            self.inner_lrs = nn.Parameter(lrs)
        else:
            self.register_buffer("inner_lrs", lrs)
        self._config = dict(hidden_features=hidden_features, hidden_layers=hidden_layers,
                            first_omega=float(first_omega), hidden_omega=float(hidden_omega),
                            inner_steps=self.inner_steps, inner_lr=float(inner_lr), learn_inner_lr=bool(learn_inner_lr))

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def start(self, batch: int, like: Tensor) -> Code:
        """The meta-learned initialisation repeated for ``batch`` samples: name -> (B, *shape)."""
        return {name: p.expand(batch, *p.shape) for name, p in self.siren.named_parameters()}

    def learning_rates(self) -> Code:
        lrs = self.inner_lrs.clamp_min(0.0)
        return {name: lrs[i] for i, name in enumerate(self.names)}

    def context_loss(self, code: Code, coords: Tensor, values: Tensor, weights: Tensor) -> Tensor:
        return masked_mse(torch.func.functional_call(self.siren, code, (coords,)), values, weights)

    def render(self, code: Code, coords: Tensor) -> Tensor:
        """code: per-sample SIREN parameters name -> (B, *shape); coords (B, N, 2) -> (B, N, 3)."""
        return self.siren(coords, params=code)


@register_prior
class MAML(LearnedInit):
    """MAML: the outer loss on the target pixels is back-propagated through the inner steps."""

    method = "maml"

    def __init__(self, *args, first_order: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.first_order = bool(first_order)
        self._config["first_order"] = self.first_order

    def training_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor, target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.meta_loss(images, masks, target_coords, target_values, self.first_order)


@register_prior
class Reptile(LearnedInit):
    """Reptile: fit every training image from the learned start, then pull the start towards the fits."""

    method = "reptile"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("inner_steps", 5)
        if kwargs.get("learn_inner_lr"):
            raise InputError("reptile does not meta-learn its inner learning rate; use --method maml for that")
        super().__init__(*args, **kwargs)
        if self.inner_steps < 1:
            raise InputError(f"reptile needs inner_steps >= 1, got {self.inner_steps}")

    def training_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor, target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Surrogate loss whose gradient with respect to the start theta is ``theta - mean_b phi_b``."""
        target = (target_coords, target_values, target_values.new_ones(target_values.shape[:2]))
        with torch.no_grad():
            fitted, before = self.adapt(target, self.inner_steps, create_graph=False)
            after = masked_mse(self.render(fitted, target_coords), target_values, target[2])
        loss = sum(0.5 * ((p - fitted[name]) ** 2).sum() for name, p in self.siren.named_parameters()) / images.shape[0]
        return loss, {"target_mse_before": before.mean(), "target_mse_after": after.mean()}
