"""Differential operators of network outputs with respect to input coordinates (autograd).

Shapes: ``x`` is the coordinate tensor the output was computed from (it must require grad), (..., d);
``y`` is (..., m). Every operator keeps the graph (``create_graph=True``) so its result can enter a loss.
The faster forward-mode path for SIRENs lives in ``hypersiren.nn.siren_derivatives``.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _grad(y: Tensor, x: Tensor) -> Tensor:
    (g,) = torch.autograd.grad(y, x, grad_outputs=torch.ones_like(y), create_graph=True, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def jacobian(y: Tensor, x: Tensor) -> Tensor:
    """dy_i/dx_j: (..., m) -> (..., m, d)."""
    return torch.stack([_grad(y[..., i], x) for i in range(y.shape[-1])], dim=-2)


def gradient(y: Tensor, x: Tensor) -> Tensor:
    """Gradient of a scalar field: y (..., 1) -> (..., d)."""
    if y.shape[-1] != 1:
        raise ValueError(f"gradient needs a scalar field (..., 1), got {tuple(y.shape)}; use jacobian")
    return _grad(y, x)


def divergence(v: Tensor, x: Tensor) -> Tensor:
    """sum_i dv_i/dx_i of a vector field v (..., d) -> (..., 1)."""
    if v.shape[-1] != x.shape[-1]:
        raise ValueError(f"divergence needs a field with {x.shape[-1]} components, got {v.shape[-1]}")
    return sum(_grad(v[..., i], x)[..., i : i + 1] for i in range(v.shape[-1]))


def hessian(y: Tensor, x: Tensor) -> Tensor:
    """Second derivatives of a scalar field: y (..., 1) -> (..., d, d)."""
    return jacobian(gradient(y, x), x)


def laplacian(y: Tensor, x: Tensor) -> Tensor:
    """sum_i d^2 y/dx_i^2 for every output channel: y (..., m) -> (..., m)."""
    return torch.cat([divergence(_grad(y[..., i], x), x) for i in range(y.shape[-1])], dim=-1)


def value_and_derivatives(model, coords: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Values (..., m), Jacobian (..., m, d) and the Hessian diagonal d^2 y/dx_j^2 (..., m, d) of a pointwise
    network at ``coords`` (..., d), all differentiable with respect to the network's parameters.

    The Laplacian is ``hess_diag.sum(-1)``. This autograd version works for any network; SIRENs take the
    forward-mode path, which propagates the derivatives layer by layer in closed form.
    """
    x = coords if coords.requires_grad else coords.detach().requires_grad_(True)
    y = model(x)
    jac = jacobian(y, x)
    hess_diag = torch.stack([
        torch.stack([_grad(jac[..., i, j], x)[..., j] for j in range(x.shape[-1])], dim=-1)
        for i in range(y.shape[-1])
    ], dim=-2)
    return y, jac, hess_diag
