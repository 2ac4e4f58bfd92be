"""2-D Helmholtz equation with a point source inside a PML-bounded square, and its exact solution.

Equation on [-1, 1]^2 (lengths in domain units, the wavenumber k in radians per domain unit):

    L~ u + k^2 m(x) u = -f(x),

with L~ the PML-stretched Laplacian (``PML.laplacian``, the plain Laplacian outside the layer), m = 1 / c^2 the
squared slowness of the velocity model (background c = 1) and f a unit-mass Gaussian of width sigma at the
origin approximating a delta. The complex field u is carried by a network as two real outputs (Re u, Im u).
With m = 1 and no PML the outgoing solution for f = delta is G(r) = (i/4) H0^(1)(k r); for the Gaussian source
it is exp(-k^2 sigma^2 / 2) G(r) away from the source (the Gaussian's Fourier weight on the circle |xi| = k),
exact up to the Gaussian's tail.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from hypersiren.errors import InputError
from hypersiren.pde.pml import PML

VELOCITY_MODELS = ("homogeneous", "square", "circle")
SQUARE_HALF_WIDTH = 0.3  # the paper's square inclusion: |x|, |y| < 0.3 around the source
CIRCLE_RADIUS = 0.1  # the paper's circular inclusion


def squared_slowness(coords: Tensor, model: str, inclusion_velocity: float = 2.0) -> Tensor:
    """m(x) = 1 / c(x)^2 at coords (..., 2): background c = 1, ``inclusion_velocity`` inside the inclusion."""
    if model not in VELOCITY_MODELS:
        raise InputError(f"unknown velocity model {model!r}; expected one of {', '.join(VELOCITY_MODELS)}")
    ones = torch.ones(coords.shape[:-1], dtype=coords.dtype, device=coords.device)
    if model == "homogeneous":
        return ones
    if model == "square":
        inside = (coords.abs() < SQUARE_HALF_WIDTH).all(dim=-1)
    else:
        inside = coords.norm(dim=-1) < CIRCLE_RADIUS
    return torch.where(inside, ones / inclusion_velocity**2, ones)


def gaussian_source(coords: Tensor, sigma: float) -> Tensor:
    """Unit-mass Gaussian exp(-r^2 / (2 sigma^2)) / (2 pi sigma^2) centred at the origin: (...,) for coords (..., 2)."""
    r2 = (coords**2).sum(dim=-1)
    return torch.exp(-r2 / (2 * sigma**2)) / (2 * math.pi * sigma**2)


def hankel_solution(coords: np.ndarray | Tensor, wavenumber: float, sigma: float = 0.0,
                    pml: PML | None = None) -> np.ndarray:
    """Exact outgoing field exp(-k^2 sigma^2 / 2) (i/4) H0^(1)(k r~) of the homogeneous medium (complex128, (...,)).

    r~ = |x~| uses the PML-stretched coordinates when ``pml`` is given (the exact solution of the PML problem,
    inside the layer too); otherwise r = |x|. Singular at the origin: evaluate away from the source.
    """
    from scipy.special import hankel1

    coords = torch.as_tensor(coords, dtype=torch.float64)
    z = pml.stretched_coordinate(coords) if pml is not None else coords.to(torch.complex128)
    r = torch.sqrt((z**2).sum(dim=-1)).numpy()  # principal root: Im r >= 0, so H0^(1) decays in the layer
    return 0.25j * math.exp(-0.5 * (wavenumber * sigma) ** 2) * hankel1(0, wavenumber * r)


def helmholtz_residual(coords: Tensor, y: Tensor, jac: Tensor, hess_diag: Tensor, wavenumber: float,
                       slowness2: Tensor, source: Tensor, pml: PML) -> Tensor:
    """L~ u + k^2 m u + f at coords (N, 2), complex (N,).

    y (N, 2), jac (N, 2, 2), hess_diag (N, 2, 2): the network's (Re u, Im u) and their derivatives (from
    ``hypersiren.diff.value_and_derivatives``); slowness2 m (N,) and source f (N,) real.
    """
    u = torch.complex(y[..., 0], y[..., 1])
    du = torch.complex(jac[..., 0, :], jac[..., 1, :])
    d2u = torch.complex(hess_diag[..., 0, :], hess_diag[..., 1, :])
    return pml.laplacian(coords, du, d2u) + wavenumber**2 * slowness2 * u + source
