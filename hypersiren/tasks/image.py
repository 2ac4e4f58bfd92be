"""``fit image``: represent one image (file or built-in ``camera``/``astronaut``) with a coordinate network."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from hypersiren.config import non_negative_int, option, positive_int
from hypersiren.data.image import fit_size, from_unit, load_image, resize, save_image, to_unit
from hypersiren.engine import EngineConfig
from hypersiren.registry import TASKS
from hypersiren.render import render_derivatives
from hypersiren.limits import FLOAT32
from hypersiren.tasks.signal_fit import RENDER_COPIES, SignalFit
from hypersiren.viz import colormap, normalize


@TASKS.register
class FitImage(SignalFit):
    name = "image"
    kind = "fit/image"
    description = "fit an image (file, or built-in camera/astronaut) from its pixels"

    @dataclass(frozen=True, kw_only=True)
    class Config(SignalFit.Config):
        input: str = option(help="image file, or a built-in image: camera, astronaut", positional=True)
        size: int = option(256, "longer side in pixels after resizing", check=positive_int)
        render_size: int = option(0, "longer side of the rendered fit.png, 0 = --size; any resolution works",
                                  check=non_negative_int, resumable=True)
        engine: EngineConfig = EngineConfig(steps=500)

    def load_signal(self) -> Tensor:
        image = load_image(self.config.input)
        self.image = resize(image, *self.fitted_shape(fit_size(*image.shape[1:], self.config.size), len(image)))
        return from_unit(self.image).permute(1, 2, 0)

    def describe_signal(self, shape: tuple[int, ...]) -> str:
        return f"--size {self.config.size} ({shape[0]}x{shape[1]} pixels)"

    def output_needs(self, shape: tuple[int, ...], channels: int) -> dict[str, float]:
        size = self.config.render_size or self.config.size
        height, width = fit_size(*shape, size)
        return {f"--render-size {size} ({height}x{width} pixels)": height * width * channels * FLOAT32 * RENDER_COPIES}

    def fit_image(self, shape: tuple[int, int] | None = None) -> Tensor:
        """The fit as an image (C, H, W) in [0, 1]."""
        return to_unit(self.render(shape)).permute(2, 0, 1)

    def derivative_images(self) -> tuple[Tensor, Tensor]:
        """Gradient magnitude and Laplacian of the fit (first channel's mean over channels), as RGB pictures."""
        _, grads, lapls = render_derivatives(self.model, self.shape, device=self.device)
        grad_norm = grads.norm(dim=-1).mean(dim=-1)
        return colormap(normalize(grad_norm)), colormap(normalize(lapls.mean(dim=-1), symmetric=True), "RdBu")

    def summaries(self, writer, step: int) -> None:
        writer.add_image("fit", self.fit_image(), step)
        writer.add_image("ground_truth", self.image, step)
        gradient, laplacian = self.derivative_images()
        writer.add_image("fit_gradient_magnitude", gradient, step)
        writer.add_image("fit_laplacian", laplacian, step)

    def write_outputs(self, out_dir: Path) -> list[Path]:
        size = self.config.render_size or self.config.size
        shape = fit_size(*self.shape, size)
        paths = [out_dir / "fit.png", out_dir / "ground_truth.png", out_dir / "fit_gradient.png", out_dir / "fit_laplacian.png"]
        save_image(self.fit_image(shape), paths[0])
        save_image(self.image, paths[1])
        for image, path in zip(self.derivative_images(), paths[2:]):
            save_image(image, path)
        return paths
