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

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hypersiren.config import option, override
from hypersiren.errors import InputError
from hypersiren.nn.siren import Siren
from hypersiren.priors.base import PRIORS
from hypersiren.priors.inner_loop import Code, InnerLoopConfig, InnerLoopPrior, masked_mse


class LearnedInit(InnerLoopPrior):
    """A meta-learned SIREN initialisation adapted to each context by ``inner_steps`` SGD steps."""

    @dataclass(frozen=True, kw_only=True)
    class Config(InnerLoopConfig):
        learn_inner_lr: bool = option(False, "meta-learn one inner learning rate per SIREN parameter tensor")

    def __init__(self, config: Config | None = None, **options):
        super().__init__(config, **options)
        c = self.config
        self.siren = Siren(2, 3, c.hidden_features, c.hidden_layers, c.first_omega, c.hidden_omega)
        self.names = list(self.siren.parameter_shapes())
        lrs = torch.full((len(self.names),), float(c.inner_lr))
        if c.learn_inner_lr:
            self.inner_lrs = nn.Parameter(lrs)
        else:
            self.register_buffer("inner_lrs", lrs)

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


@PRIORS.register
class MAML(LearnedInit):
    """MAML: the outer loss on the target pixels is back-propagated through the inner steps."""

    method = "maml"

    @dataclass(frozen=True, kw_only=True)
    class Config(LearnedInit.Config):
        first_order: bool = option(False, "first-order outer gradient (inner gradients treated as constants)")

    def training_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor, target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.meta_loss(images, masks, target_coords, target_values, self.config.first_order)


@PRIORS.register
class Reptile(LearnedInit):
    """Reptile: fit every training image from the learned start, then pull the start towards the fits."""

    method = "reptile"

    @dataclass(frozen=True, kw_only=True)
    class Config(LearnedInit.Config):
        inner_steps: int = override(InnerLoopConfig, "inner_steps", 5)

        def __post_init__(self):
            super().__post_init__()
            if self.learn_inner_lr:
                raise InputError("reptile does not meta-learn its inner learning rate; use --method maml for that")
            if self.inner_steps < 1:
                raise InputError(f"reptile needs inner_steps >= 1, got {self.inner_steps}")

    def training_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor, target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Surrogate loss whose gradient with respect to the start theta is ``theta - mean_b phi_b``."""
        target = (target_coords, target_values, target_values.new_ones(target_values.shape[:2]))
        with torch.no_grad():
            fitted, before = self.adapt(target, self.config.inner_steps, create_graph=False)
            after = masked_mse(self.render(fitted, target_coords), target_values, target[2])
        loss = sum(0.5 * ((p - fitted[name]) ** 2).sum() for name, p in self.siren.named_parameters()) / images.shape[0]
        return loss, {"target_mse_before": before.mean(), "target_mse_after": after.mean()}
