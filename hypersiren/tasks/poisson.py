"""``fit poisson-grad`` / ``fit poisson-lapl``: reconstruct an image from its gradients or its Laplacian alone
(SIREN paper, section 4.1: Poisson image reconstruction).

The network is supervised only through its derivatives with respect to the coordinates (forward-mode for
SIRENs, ``hypersiren.diff``); its values are never seen. The targets are the image's Sobel gradients or its
discrete Laplacian, in the units of the [-1, 1] grid (network values ``2 v - 1``). A gradient fit can only
recover the image up to a constant, a Laplacian fit up to a harmonic function, of which the reported picture and
PSNR remove the affine part ``a + b y + c x``: they use the reconstruction plus the least-squares best constant
(gradients) or affine function (Laplacian). Other harmonic components (slow shading) remain and lower the
Laplacian fit's PSNR.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from hypersiren.data.grid import grid, grid_spacing
from hypersiren.data.image import save_image
from hypersiren.diff import value_and_derivatives, value_and_laplacian
from hypersiren.engine import EngineConfig
from hypersiren.errors import InputError
from hypersiren.registry import TASKS
from hypersiren.render import DEFAULT_CHUNK
from hypersiren.tasks.image import FitImage
from hypersiren.viz import colormap, normalize

_SOBEL_GAIN = 8.0  # scipy's Sobel filter is 8 x the per-pixel derivative ([1, 2, 1] smoothing, [-1, 0, 1] difference)


def sobel_gradients(values: Tensor, mode: str = "reflect") -> Tensor:
    """Sobel gradients of a (C, H, W) field sampled on ``grid(H, W)``, in coordinate units: (H*W, C, 2) holding
    (d/dy, d/dx), the order of the grid's coordinates. mode: scipy's border rule ("reflect", "nearest", ...)."""
    from scipy import ndimage

    array = values.detach().cpu().double().numpy()
    grads = [[ndimage.sobel(channel, axis=axis, mode=mode) / (_SOBEL_GAIN * grid_spacing(channel.shape[axis]))
              for axis in (0, 1)] for channel in array]  # per channel: on (C, H, W) scipy would smooth across channels
    return _per_point(np.stack([np.stack(g, axis=-1) for g in grads]), values)


def discrete_laplacian(values: Tensor, mode: str = "reflect") -> Tensor:
    """Second differences of a (C, H, W) field on ``grid(H, W)`` summed over both axes, in coordinate units
    (borders by scipy's ``mode``; "reflect" is ``scipy.ndimage.laplace``'s): (H*W, C)."""
    from scipy import ndimage

    array = values.detach().cpu().double().numpy()
    lap = sum(ndimage.correlate1d(array, [1.0, -2.0, 1.0], axis=1 + axis, mode=mode)
              / grid_spacing(array.shape[1 + axis]) ** 2 for axis in (0, 1))
    return _per_point(lap, values)


def _per_point(array: np.ndarray, like: Tensor) -> Tensor:
    """(C, H, W, ...) -> (H*W, C, ...) in ``like``'s dtype (float32 for integer input) and on its device."""
    tensor = torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, 0, 2)))
    dtype = like.dtype if like.is_floating_point() else torch.float32
    return tensor.reshape(-1, *tensor.shape[2:]).to(like.device, dtype)


def ambiguity_basis(coords: Tensor, derivative: str) -> Tensor:
    """The functions a derivative fit cannot see, at ``coords`` (N, 2): constants for "gradient" (N, 1),
    affine functions 1, y, x for "laplacian" (N, 3)."""
    ones = torch.ones_like(coords[:, :1])
    return ones if derivative == "gradient" else torch.cat([ones, coords], dim=1)


def ambiguity_coefficients(reconstruction: Tensor, truth: Tensor, coords: Tensor, derivative: str) -> Tensor:
    """Least-squares coefficients (k, C) of the invisible functions that bring ``reconstruction`` (N, C)
    closest to ``truth`` (N, C)."""
    basis = ambiguity_basis(coords, derivative).double()
    residual = (truth - reconstruction).double()
    return torch.linalg.lstsq(basis.cpu(), residual.cpu()).solution.to(truth.device)


class PoissonFit(FitImage):
    """Fit an image's network through its derivatives only; subclasses choose ``derivative``."""

    derivative: ClassVar[str]

    @dataclass(frozen=True, kw_only=True)
    class Config(FitImage.Config):
        engine: EngineConfig = EngineConfig(steps=1000)

    def __init__(self, config: Config, device: torch.device | str | None = None):
        super().__init__(config, device)
        self.targets = self.derivative_targets()

    def derivative_targets(self) -> Tensor:
        """Per-pixel training targets: (N, C, 2) gradients or (N, C) Laplacians of the image's network values."""
        if min(self.shape) < 3:
            raise InputError(f"{self.name} needs images of at least 3x3 pixels after resizing, got "
                             f"{self.shape[0]}x{self.shape[1]}; raise --size")
        values = self.values.T.reshape(-1, *self.shape)
        return sobel_gradients(values) if self.derivative == "gradient" else discrete_laplacian(values)

    def network_derivative(self, model: nn.Module, coords: Tensor) -> Tensor:
        """The network's derivative matching the targets at ``coords`` (N, 2): (N, C, 2) or (N, C)."""
        if self.derivative == "gradient":
            return value_and_derivatives(model, coords, order=1)[1]
        return value_and_laplacian(model, coords)[2]

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        coords, target = batch
        return torch.mean((self.network_derivative(model, coords).float() - target) ** 2), {}

    def render(self, shape: tuple[int, ...] | None = None) -> Tensor:
        """The reconstruction plus the best invisible function (fitted on the training grid): (*shape, C)."""
        raw = super().render(self.shape)
        coefficients = ambiguity_coefficients(raw.reshape(len(self.coords), -1), self.values, self.coords, self.derivative)
        if shape is not None and tuple(shape) != self.shape:
            raw = super().render(shape)
        coords = grid(*raw.shape[:-1], device=raw.device)
        correction = ambiguity_basis(coords, self.derivative).double() @ coefficients
        return raw + correction.reshape(raw.shape).to(raw.dtype)

    def derivative_mse(self) -> float:
        """MSE between the network's derivatives and the targets over the whole grid (chunked)."""
        self.model.eval()
        total = 0.0
        with torch.enable_grad():  # autograd's derivatives (non-SIREN networks) need a graph
            for coords, target in zip(self.coords.split(DEFAULT_CHUNK // 4), self.targets.split(DEFAULT_CHUNK // 4)):
                total += float(torch.sum((self.network_derivative(self.model, coords).detach().float() - target) ** 2))
        self.model.train()
        return total / self.targets.numel()

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), f"{self.derivative}_mse": self.derivative_mse()}

    def target_image(self) -> Tensor:
        """The supervising derivative as a picture (3, H, W): gradient magnitude or signed Laplacian."""
        if self.derivative == "gradient":
            field = self.targets.norm(dim=-1).mean(dim=-1)
            return colormap(normalize(field.reshape(self.shape)))
        return colormap(normalize(self.targets.mean(dim=-1).reshape(self.shape), symmetric=True), "RdBu")

    def summaries(self, writer, step: int) -> None:
        super().summaries(writer, step)
        writer.add_image(f"target_{self.derivative}", self.target_image(), step)

    def write_outputs(self, out_dir: Path) -> list[Path]:
        path = out_dir / f"target_{self.derivative}.png"
        save_image(self.target_image(), path)
        return [*super().write_outputs(out_dir), path]


@TASKS.register
class PoissonGradient(PoissonFit):
    name = "poisson-grad"
    kind = "fit/poisson-grad"
    description = "reconstruct an image from its Sobel gradients alone (Poisson; PSNR up to a constant)"
    derivative = "gradient"


@TASKS.register
class PoissonLaplacian(PoissonFit):
    name = "poisson-lapl"
    kind = "fit/poisson-lapl"
    description = "reconstruct an image from its Laplacian alone (Poisson; PSNR up to an affine function)"
    derivative = "laplacian"
