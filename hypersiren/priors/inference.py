"""Using any trained prior: encode a context, render a code at any resolution, complete images.

The one inference path of hypersiren: ``HyperSiren``, the ``complete`` / ``eval prior`` / ``demo`` commands, the
face-prior task's metrics and the ``eval/`` scripts all call these. Images here are (B, 3, R, R) in [0, 1]
("unit"), masks (B, R, R) bool with True = known; only known pixels are read.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hypersiren.data.image import from_unit, to_unit
from hypersiren.limits import FLOAT32, check_memory
from hypersiren.priors.base import FunctionPrior, batch_size

MAX_POINTS = 1 << 20  # coordinates evaluated per network call when rendering (over the whole batch)
PIXEL_BYTES = 3 * 3 * FLOAT32  # memory per rendered pixel: three float32 copies of its colour


def encode(prior: FunctionPrior, images_unit: Tensor, masks: Tensor, refine_steps: int = 0, *, lr: float = 1e-2,
           penalty: float = 1e-2, weights: bool = False) -> Any:
    """The prior's code of each image's context, optionally refined on it (``hypersiren.priors.refine``):
    ``refine_steps`` Adam steps with learning rate ``lr`` and ``penalty``; ``weights`` refines the SIREN a
    hypernetwork generates instead of its latent (the code is then that SIREN)."""
    images = from_unit(images_unit)
    with torch.no_grad():
        code = prior.infer(images, masks)
    if refine_steps or weights:
        from hypersiren.priors.refine import refine

        code = refine(prior, code, images, masks, refine_steps, lr, penalty, weights)
    return code


def check_render(images: int, resolution: int, what: str | None = None) -> None:
    """InputError if rendering ``images`` images at ``resolution`` would exceed the memory budget; ``what``: the
    options asking for them, for the message."""
    pixels = resolution * resolution
    check_memory({what or f"rendering {images} image(s) at resolution {resolution}":
                  images * pixels * PIXEL_BYTES + pixels * 2 * FLOAT32})


@torch.no_grad()
def render(prior: FunctionPrior, code: Any, resolution: int, max_points: int = MAX_POINTS) -> Tensor:
    """The images (B, 3, r, r) in [0, 1] that ``code`` describes at any resolution r, evaluated in chunks of at
    most ``max_points`` coordinates over the batch, on the prior's device (``check_render`` first)."""
    batch = batch_size(code)
    check_render(batch, resolution)
    values = prior.render_grid(code, resolution, max_points)
    return to_unit(values.transpose(1, 2).reshape(batch, -1, resolution, resolution))


def complete(prior: FunctionPrior, images_unit: Tensor, masks: Tensor, resolution: int | None = None,
             refine_steps: int = 0, **refinement) -> Tensor:
    """Completions (B, 3, r, r) in [0, 1] of images (B, 3, R, R) in [0, 1] from their known pixels, rendered at
    ``resolution`` r (default R); ``refine_steps`` and ``refinement`` (lr, penalty, weights) as in ``encode``."""
    code = encode(prior, images_unit, masks, refine_steps, **refinement)
    return render(prior, code, resolution or images_unit.shape[-1]).to(images_unit.device)
