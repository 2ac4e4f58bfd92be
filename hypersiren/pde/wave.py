"""2-D wave equation u_tt = c^2 (u_xx + u_yy) on [-1, 1]^2 with coordinates ordered (t, x, y).

The zoo entry starts from a Gaussian pulse at rest (u(0) = pulse, u_t(0) = 0) with u = 0 on the square's edges.
"""
from __future__ import annotations

import torch
from torch import Tensor


def gaussian_pulse(xy: Tensor, width: float) -> Tensor:
    """exp(-|x|^2 / (2 width^2)) at points (..., 2) (peak 1 at the origin): (...,)."""
    return torch.exp(-(xy**2).sum(dim=-1) / (2 * width**2))


def wave_residual(hess_diag: Tensor, speed: float) -> Tensor:
    """u_tt - c^2 (u_xx + u_yy) from the Hessian diagonal (..., 1, 3) of a scalar field of (t, x, y): (...,)."""
    return hess_diag[..., 0, 0] - speed**2 * hess_diag[..., 0, 1:].sum(dim=-1)
