"""``fit composite A B``: gradient-domain blending of two images (SIREN paper, section 4.1, image editing).

The network is fitted to the blended gradient field ``(1 - m) grad A + m grad B`` (Sobel, as in
``poisson-grad``) with a constant weight ``m = --weight`` (default 0.5, the paper's example) or a per-pixel
mask image (``--mask``, white = B). The composite is the fit, shifted by the constant a gradient fit cannot
see so that its mean equals that of the naive blend ``(1 - m) A + m B``; it is written as ``composite.png``
beside the inputs and the naive blend.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hypersiren.config import non_negative_int, option, positive_int, unit_fraction
from hypersiren.data.image import fit_size, from_unit, load_image, resize, save_image
from hypersiren.engine import EngineConfig
from hypersiren.registry import TASKS
from hypersiren.tasks.poisson import PoissonGradient, sobel_gradients
from hypersiren.tasks.signal_fit import SignalFit
from hypersiren.viz import side_by_side


@TASKS.register
class Composite(PoissonGradient):
    name = "composite"
    kind = "fit/composite"
    description = "blend two images in the gradient domain (0.5 grad A + 0.5 grad B, or a mask); writes composite.png"

    @dataclass(frozen=True, kw_only=True)
    class Config(SignalFit.Config):
        image_a: str = option(help="first image file, or a built-in image: camera, astronaut", positional=True)
        image_b: str = option(help="second image (resized to the first's shape after --size)", positional=True)
        mask: str | None = option(None, "grayscale mask image: per-pixel weight of B's gradients (white = B, black = "
                                        "A); resized to the images")
        weight: float = option(0.5, "weight of B's gradients without a mask", check=unit_fraction)
        size: int = option(256, "longer side in pixels after resizing", check=positive_int)
        render_size: int = option(0, "longer side of the rendered composite.png, 0 = --size", check=non_negative_int,
                                  resumable=True)
        engine: EngineConfig = EngineConfig(steps=1000)

    def load_signal(self) -> Tensor:
        """Loads A, B (same channels: RGB if either is colour) and the weight; returns the naive blend."""
        paths = (self.config.image_a, self.config.image_b)
        first, second = (load_image(path) for path in paths)
        if first.shape[0] != second.shape[0]:
            first, second = (load_image(path, mode="RGB") for path in paths)
        shape = self.fitted_shape(fit_size(*first.shape[1:], self.config.size), len(first))
        self.inputs = (resize(first, *shape), resize(second, *shape))
        if self.config.mask is not None:
            self.blend_weight = resize(load_image(self.config.mask, mode="L"), *shape)
        else:
            self.blend_weight = torch.full((1, *shape), self.config.weight)
        a, b = self.inputs
        self.image = (1 - self.blend_weight) * a + self.blend_weight * b
        return from_unit(self.image).permute(1, 2, 0)

    def derivative_targets(self) -> Tensor:
        """(1 - m) grad A + m grad B per pixel: (N, C, 2) in coordinate units of the network values."""
        a, b = (sobel_gradients(from_unit(image)) for image in self.inputs)
        weight = self.blend_weight.reshape(-1, 1, 1).to(a.device)
        return (1 - weight) * a + weight * b

    def metrics(self) -> dict[str, float]:
        """How well the composite's gradients match the blended field (no ground truth exists)."""
        mse = self.derivative_mse()
        return {"gradient_mse": mse, "gradient_relative_error": (mse / float(torch.mean(self.targets**2))) ** 0.5}

    def summaries(self, writer, step: int) -> None:
        writer.add_image("composite", self.fit_image(), step)
        writer.add_image("inputs_naive_blend_composite", self.panel(), step)
        writer.add_image("target_gradient", self.target_image(), step)
        writer.add_image("composite_gradient_magnitude", self.derivative_images()[0], step)

    def panel(self) -> Tensor:
        """A | B | naive blend | composite, side by side (3, H, W')."""
        return side_by_side([*self.inputs, self.image, self.fit_image()])

    def write_outputs(self, out_dir: Path) -> list[Path]:
        size = self.config.render_size or self.config.size
        paths = [out_dir / "composite.png", out_dir / "naive_blend.png", out_dir / "panel.png", out_dir / "target_gradient.png"]
        save_image(self.fit_image(fit_size(*self.shape, size)), paths[0])
        for image, path in zip((self.image, self.panel(), self.target_image()), paths[1:]):
            save_image(image, path)
        return paths
