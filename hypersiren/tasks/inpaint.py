"""``fit inpaint``: fill the holes of an image with a coordinate network fitted to its known pixels only.

The known pixels are those of a mask picture (``--mask``, white = known, resized to the image) or a random
``--known`` fraction of them (drawn from ``--seed``). Training is ``fit image`` on the known pixels alone; the
network's values at the other pixels are the inpainting. Metrics: PSNR over the known pixels (the fit), over the
unknown ones (the inpainting, against the image's true values) and over all. Outputs: those of ``fit image``
(``fit.png`` is the inpainted image) plus ``context.png``, the known pixels with the unknown ones gray.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hypersiren.config import Check, option
from hypersiren.data.context import hide_unknown, read_mask_picture
from hypersiren.data.image import save_image
from hypersiren.errors import InputError
from hypersiren.metrics import psnr_from_mse
from hypersiren.registry import TASKS
from hypersiren.tasks.image import FitImage
from hypersiren.viz import UNKNOWN_GRAY


@TASKS.register
class FitInpaint(FitImage):
    name = "inpaint"
    kind = "fit/inpaint"
    description = "inpaint an image: fit its known pixels (a mask picture or a random fraction), render every pixel"

    @dataclass(frozen=True, kw_only=True)
    class Config(FitImage.Config):
        mask: str | None = option(None, "mask picture, white = known, resized to the image (default: --known of the "
                                        "pixels at random)")
        known: float = option(0.1, "fraction of the pixels known when there is no --mask",
                              check=Check(float, lambda v: 0 < v <= 1, "a fraction in (0, 1]"))

    def __init__(self, config: Config, device: torch.device | str | None = None):
        super().__init__(config, device)
        self.known = self.known_pixels()
        self.train_coords, self.targets = self.coords[self.known], self.values[self.known]

    def known_pixels(self) -> Tensor:
        """Which pixels training sees: (H*W,) bool, row-major like the grid."""
        if self.config.mask is not None:
            known = read_mask_picture(self.config.mask, self.shape).reshape(-1)
            if not known.any():
                raise InputError(f"mask picture {self.config.mask} has no known (white) pixel")
        else:
            count = max(1, round(self.config.known * len(self.coords)))
            generator = torch.Generator().manual_seed(self.config.engine.seed)
            known = torch.zeros(len(self.coords), dtype=torch.bool)
            known[torch.randperm(len(self.coords), generator=generator)[:count]] = True
        return known.to(self.device)

    def metrics(self) -> dict[str, float]:
        squared = (self.render().reshape(self.values.shape).float() - self.values).square().mean(dim=-1)
        mse = float(squared.mean())
        metrics = {"mse": mse, "psnr": psnr_from_mse(mse), "psnr_known": psnr_from_mse(float(squared[self.known].mean()))}
        if not self.known.all():
            metrics["psnr_unknown"] = psnr_from_mse(float(squared[~self.known].mean()))
        return metrics

    def context_image(self) -> Tensor:
        """The image with its unknown pixels gray: (C, H, W) in [0, 1]."""
        return hide_unknown(self.image[None], self.known.reshape(1, *self.shape).cpu(), UNKNOWN_GRAY)[0]

    def summaries(self, writer, step: int) -> None:
        super().summaries(writer, step)
        writer.add_image("context", self.context_image(), step)

    def write_outputs(self, out_dir: Path) -> list[Path]:
        path = out_dir / "context.png"
        save_image(self.context_image(), path)
        return [*super().write_outputs(out_dir), path]
