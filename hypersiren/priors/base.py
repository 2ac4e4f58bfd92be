"""The interface every prior over SIRENs implements (hypernetwork, MAML, Reptile, functa).

Conventions: images are (B, 3, R, R) network values in [-1, 1]; masks are (B, R, R) bool, True where a pixel
is known (the context); coordinates are (B, N, 2) as (y, x) in [-1, 1] (``hypersiren.data.grid``).
A *code* is what a prior infers from a context: a latent vector (B, latent_dim) for the hypernetwork and
functa, per-sample SIREN parameters for MAML/Reptile. ``render(code, coords)`` evaluates the SIREN it
describes.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

PRIORS: dict[str, type["FunctionPrior"]] = {}


def register_prior(cls: type["FunctionPrior"]) -> type["FunctionPrior"]:
    """Class decorator: make a prior loadable by its ``method`` name."""
    PRIORS[cls.method] = cls
    return cls


class FunctionPrior(nn.Module):
    """A learned space of SIRENs. Subclasses set ``method`` and implement the four methods below."""

    method: ClassVar[str]

    def config(self) -> dict[str, Any]:
        """JSON config such that ``type(self)(**config)`` rebuilds the module (weights come separately)."""
        raise NotImplementedError

    def infer(self, images: Tensor, masks: Tensor) -> Any:
        """The code of each image from its known pixels only (pixels outside ``masks`` must not be read)."""
        raise NotImplementedError

    def render(self, code: Any, coords: Tensor) -> Tensor:
        """Values (B, N, 3) in [-1, 1] of the SIRENs ``code`` describes at ``coords`` (B, N, 2)."""
        raise NotImplementedError

    def training_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor, target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss for one batch: infer from the context, render ``target_coords`` and compare with
        ``target_values`` (B, N, 3), plus the method's regularisers; returns (loss, named scalars)."""
        raise NotImplementedError

    def forward(self, images: Tensor, masks: Tensor, target_coords: Tensor, target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The training loss, so that calling a DistributedDataParallel/compiled wrapper synchronises gradients."""
        return self.training_loss(images, masks, target_coords, target_values)

    @property
    def latent_dim(self) -> int | None:
        """Size of a flat latent vector if codes are vectors (for sampling and interpolation), else None."""
        return None
