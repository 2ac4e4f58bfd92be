"""The interface every prior over SIRENs implements (hypernetwork, MAML, Reptile, functa).

Conventions: images are (B, 3, R, R) network values in [-1, 1]; masks are (B, R, R) bool, True where a pixel
is known (the context); coordinates are (B, N, 2) as (y, x) in [-1, 1] (``hypersiren.data.grid``).
A *code* is what a prior infers from a context: a latent vector (B, latent_dim) for the hypernetwork and
functa, per-sample SIREN parameters for MAML/Reptile. ``render(code, coords)`` evaluates the SIREN it
describes. Library functions over any prior (encode, render, complete with refinement) are in
``hypersiren.priors.inference``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from hypersiren.nn.siren import SirenConfig
from hypersiren.registry import PRIORS


@dataclass(frozen=True, kw_only=True)
class PriorConfig(SirenConfig):
    """Options of a prior: the SIREN 2 -> 3 it describes (width, depth, w0), plus each method's own fields."""


class FunctionPrior(nn.Module):
    """A learned space of SIRENs. Subclasses set ``method`` and ``Config`` (a ``PriorConfig`` dataclass), are
    decorated with ``@PRIORS.register`` (``hypersiren.registry``) and implement the four methods below.

    Build one from a config or from its options: ``HypernetPrior(config)`` or ``HypernetPrior(hypernet="light")``.
    """

    method: ClassVar[str]
    Config: ClassVar[type[PriorConfig]] = PriorConfig

    def __init__(self, config: PriorConfig | None = None, **options):
        super().__init__()
        if config is not None and options:
            raise TypeError(f"{type(self).__name__} takes a config or options, not both")
        self.config = config if config is not None else self.Config(**options)

    def infer(self, images: Tensor, masks: Tensor) -> Any:
        """The code of each image from its known pixels only (pixels outside ``masks`` must not be read)."""
        raise NotImplementedError

    def calibrate(self, batches: Iterable[Tensor], mirror: bool = False) -> None:
        """Fit, after training, what the prior estimates from its training faces rather than learns by gradient
        descent, from ``batches`` of whole faces (B, 3, R, R) in [-1, 1] and with ``mirror`` their mirror images (the
        faces ``--flip`` training sees); most priors have nothing to fit."""

    def context_scalars(self, images: Tensor, masks: Tensor) -> dict[str, Tensor]:
        """Named per-image scalars (B,) about how the prior reads the contexts ``masks`` (B, R, R) of ``images``
        (B, 3, R, R) in [-1, 1], which evaluations average and log; most priors have none."""
        return {}

    def render(self, code: Any, coords: Tensor) -> Tensor:
        """Values (B, N, 3) in [-1, 1] of the SIRENs ``code`` describes at ``coords`` (B, N, 2)."""
        raise NotImplementedError

    def render_grid(self, code: Any, resolution: int, max_points: int) -> Tensor:
        """Values (B, R*R, 3) of the SIRENs ``code`` describes on the R x R pixel grid (row-major,
        ``hypersiren.data.grid``), evaluated in chunks of at most ``max_points`` coordinates over the batch. A prior
        whose images share most of their network may override it to evaluate the shared part once."""
        from hypersiren.data.grid import grid

        batch = batch_size(code)
        coords = grid(resolution, resolution, device=next(self.parameters()).device)
        chunk = max(1, max_points // batch)
        return torch.cat([self.render(code, coords[i:i + chunk].expand(batch, -1, -1))
                          for i in range(0, len(coords), chunk)], dim=1)

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


def batch_size(code: Any) -> int:
    """How many images a code (a tensor or a nested dict of tensors) describes."""
    return code.shape[0] if isinstance(code, Tensor) else batch_size(next(iter(code.values())))


__all__ = ["PRIORS", "FunctionPrior", "PriorConfig", "batch_size"]
