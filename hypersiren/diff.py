"""Differential operators of network outputs with respect to input coordinates (autograd).

Shapes: ``x`` is the coordinate tensor the output was computed from (it must require grad), (..., d);
``y`` is (..., m). Every operator keeps the graph (``create_graph=True``) so its result can enter a loss.
The faster forward-mode path for SIRENs lives in ``hypersiren.nn.siren_derivatives``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from hypersiren.nn.siren import Siren
from hypersiren.nn.siren_derivatives import siren_derivatives


def _grad(y: Tensor, x: Tensor) -> Tensor:
    if not y.requires_grad:  # a derivative that no longer depends on x (e.g. of a linear function): zero
        return torch.zeros_like(x)
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


def value_and_derivatives(model, coords: Tensor, order: int = 2, params: dict[str, Tensor] | None = None,
                          shifts: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Values (..., m), Jacobian (..., m, d) and the Hessian diagonal d^2 y/dx_j^2 (..., m, d) of a pointwise
    network at ``coords`` (..., d), all differentiable with respect to the network's parameters.

    The Laplacian is ``hess_diag.sum(-1)``. ``order=1`` skips the Hessian (returned as None) for losses that
    need only first derivatives. A ``Siren`` takes the forward-mode path of ``hypersiren.nn.siren_derivatives``
    (closed-form propagation layer by layer, also with per-sample ``params``/``shifts`` as in
    ``Siren.forward``); any other network goes through autograd (double backward).
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    if isinstance(model, Siren):
        return siren_derivatives(model, coords, params=params, shifts=shifts, order=order)
    return autograd_value_and_derivatives(model, coords, order=order, params=params, shifts=shifts)


def value_and_laplacian(model, coords: Tensor, params: dict[str, Tensor] | None = None,
                        shifts: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Values (..., m), Jacobian (..., m, d) and Laplacian (..., m) at ``coords`` (..., d), differentiable with
    respect to the parameters. For a ``Siren`` the forward-mode path carries one Laplacian row per layer
    instead of d Hessian-diagonal rows (cheaper than ``value_and_derivatives``); other networks use autograd."""
    if isinstance(model, Siren):
        return siren_derivatives(model, coords, params=params, shifts=shifts, order=2, trace=True)
    y, jac, hess_diag = autograd_value_and_derivatives(model, coords, params=params, shifts=shifts)
    return y, jac, hess_diag.sum(-1)


def autograd_value_and_derivatives(model, coords: Tensor, order: int = 2, params: dict[str, Tensor] | None = None,
                                   shifts: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """``value_and_derivatives`` through autograd for any network (the reference the fast path is tested against)."""
    extra = {k: v for k, v in (("params", params), ("shifts", shifts)) if v is not None}
    x = coords if coords.requires_grad else coords.detach().requires_grad_(True)
    y = model(x, **extra)
    jac = jacobian(y, x)
    if order == 1:
        return y, jac, None
    hess_diag = torch.stack([
        torch.stack([_grad(jac[..., i, j], x)[..., j] for j in range(x.shape[-1])], dim=-1)
        for i in range(y.shape[-1])
    ], dim=-2)
    return y, jac, hess_diag
