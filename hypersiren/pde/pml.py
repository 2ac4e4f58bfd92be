"""Perfectly matched layer (PML) on the square [-1, 1]^2 by complex coordinate stretching, quadratic profile.

Time convention e^{-i w t}: outgoing waves look like e^{+i k r}. Along each axis the layer fills
1 - width < |x| <= 1; at depth d = |x| - (1 - width) inside it, derivatives are stretched as
d/dx -> (1/s) d/dx with s(x) = 1 + i * strength * (d / width)^2 (s = 1 outside the layer). This is the
derivative with respect to the complex coordinate x~ = x + i sign(x) strength d^3 / (3 width^2), so an outgoing
wave decays inside the layer like exp(-k strength d^3 / (3 width^2)). ``strength`` is dimensionless (the
paper's code uses a0 = 5 with width 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PML:
    width: float = 0.5
    strength: float = 5.0

    def depth(self, x: Tensor) -> Tensor:
        """Depth inside the layer along one axis, 0 outside it: same shape as ``x``."""
        return (x.abs() - (1.0 - self.width)).clamp_min(0.0)

    def stretch(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """s(x) and ds/dx (complex, same shape as the real ``x``)."""
        d = self.depth(x)
        s = torch.complex(torch.ones_like(x), self.strength * (d / self.width) ** 2)
        ds = torch.complex(torch.zeros_like(x), 2.0 * self.strength * d * torch.sign(x) / self.width**2)
        return s, ds

    def stretched_coordinate(self, x: Tensor) -> Tensor:
        """x~ = x + i sign(x) strength d^3 / (3 width^2) (complex, same shape as ``x``)."""
        d = self.depth(x)
        return torch.complex(x, torch.sign(x) * self.strength * d**3 / (3.0 * self.width**2))

    def interior(self, coords: Tensor) -> Tensor:
        """Mask of the points (..., d) outside the layer along every axis: (...,) bool."""
        return (coords.abs() <= 1.0 - self.width).all(dim=-1)

    def laplacian(self, coords: Tensor, jac: Tensor, hess_diag: Tensor) -> Tensor:
        """Stretched Laplacian sum_j (1/s_j) d/dx_j ((1/s_j) du/dx_j) of a complex field from its derivatives.

        coords (..., d) real; jac, hess_diag (..., d) complex (du/dx_j and d^2u/dx_j^2). Returns (...,) complex.
        """
        s, ds = self.stretch(coords)
        return (hess_diag / s**2 - ds * jac / s**3).sum(dim=-1)
